"""The chapters in a real JupyterLab (requirements-lab.txt), driven by Playwright in Chromium.

Run with scripts/browser_test.sh, or `.venv/bin/python -m pytest tests_browser/test_jupyterlab.py`
once requirements-lab.txt is installed. A JupyterLab server starts on 127.0.0.1 in a
temporary folder holding a copy of the chapters (so that nothing the tests type is
saved into book/), with settings of its own: no autosave, no news. Its kernels have
no PARITY_STRICT, as a reader's have not, and import the parity extension as a reader's
do: from the installed project, not from the folder they start in.

"Run All" runs three chapters, in which every kind of cell the book has occurs while
keeping the run short: the Preface (the map of the book, a `# minijax only` cell),
"custom_jvp in a nutshell" (an exercise: check, answer and solution cells) and
"Batching with vmap" (a plot, folded `hide-input` cells). The other tests check what a
reader who experiments meets: a wrong answer, a function object shown, `%timeit`,
`%tb`, something minijax lacks, and a console started from the top folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "_build" / "screenshots"))
TOKEN = "minijax-book-test"
RUN_ALL = ["preface", "custom_jvp_in_a_nutshell", "batching_with_vmap"]
KERNEL_START = 120_000  # ms: a kernel's first import of JAX is slow on a busy machine
RUN_TIMEOUT = 300_000  # ms for "Run All" of one chapter
SETTINGS = {
    # Nothing saves on its own: a test's typing must not be written anywhere.
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # No question about news in a corner of the page, no request to the internet.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Module-scoped, like the browser: both are gone before test_site.py starts its own
# Playwright (two running at once in one process is not possible with the sync API).
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server on a copy of the chapters; yields its base URL."""
    home = tmp_path_factory.mktemp("lab")
    (home / "book").mkdir()
    for notebook in BOOK.glob("*.ipynb"):
        shutil.copy(notebook, home / "book" / notebook.name)
    settings = home / ".settings"
    for name, values in SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = {key: value for key, value in os.environ.items() if key != "PARITY_STRICT"}
    env.update(JAX_PLATFORMS="cpu", JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / ".workspaces"),
               JUPYTER_CONFIG_DIR=str(home / ".config"), JUPYTER_RUNTIME_DIR=str(home / ".runtime"))
    port = free_port()
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={home}", "--LabApp.news_url=", "--ServerApp.open_browser=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (home / "server.log").read_text()) from None
                time.sleep(0.5)
        yield base
    finally:
        try:  # kernels first, so that none outlives the server
            with urllib.request.urlopen(f"{base}api/kernels?token={TOKEN}", timeout=10) as reply:
                for kernel in json.load(reply):
                    urllib.request.urlopen(urllib.request.Request(
                        f"{base}api/kernels/{kernel['id']}?token={TOKEN}", method="DELETE"),
                        timeout=30)
        except OSError:
            pass
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
    yield page
    context.close()


_WORKSPACES = iter(range(10**6))


def open_in_lab(page: Page, lab: str, path: str) -> Locator:
    """Open a notebook in a fresh workspace and wait until its kernel has started and
    is idle. Returns the notebook panel."""
    page.goto(f"{lab}lab/workspaces/test{next(_WORKSPACES)}/tree/{path}?reset&token={TOKEN}")
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + KERNEL_START / 1000
    while not kernel_idle(lab, path):  # the toolbar says "idle" before it has a kernel
        assert time.monotonic() < deadline, f"no kernel for {path}"
        time.sleep(0.25)
    wait_idle(page)
    page.wait_for_timeout(1000)  # let the page take in what the kernel told it
    return panel


def kernel_idle(lab: str, path: str) -> bool:
    """True when the server has an idle kernel, with a connection, for the notebook."""
    with urllib.request.urlopen(f"{lab}api/sessions?token={TOKEN}", timeout=10) as response:
        sessions = json.load(response)
    return any(session["path"] == path and session["kernel"]["execution_state"] == "idle"
               and session["kernel"].get("connections", 0) > 0 for session in sessions)


def wait_idle(page: Page, timeout: int = KERNEL_START) -> None:
    """Wait until no cell of the notebook is queued or running and the kernel is idle."""
    page.wait_for_function("""() => ![...document.querySelectorAll(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputArea-prompt")]
        .some(prompt => prompt.textContent.includes("*"))""", timeout=timeout)
    indicator = page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator")
    expect(indicator).to_have_attribute("data-status", "idle", timeout=timeout)


def is_modified(page: Page) -> bool:
    """True when JupyterLab marks the current notebook's tab as modified."""
    return page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count() > 0


def run_all(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    page.wait_for_timeout(1000)  # the cells are queued
    wait_idle(page, RUN_TIMEOUT)


def error_outputs(panel: Locator) -> list[str]:
    """The text of every error and stderr output: JupyterLab shows both with this type."""
    outputs = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return [outputs.nth(i).inner_text() for i in range(outputs.count())]


def output_of(cell: Locator) -> str:
    return cell.locator(".jp-OutputArea").inner_text()


def replace_code(cell: Locator, code: str) -> None:
    """Type ``code`` into a cell in place of its source, as a reader pastes it."""
    editor = cell.locator(".cm-content")
    editor.click()
    page = cell.page
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)  # one input, so the editor adds no indentation


def run_cell(cell: Locator) -> str:
    """Run a cell (Ctrl+Enter keeps it selected); return its output."""
    prompt = cell.locator(".jp-InputArea-prompt")
    before = prompt.inner_text()
    cell.locator(".cm-content").click()
    cell.page.keyboard.press("Control+Enter")
    expect(prompt).not_to_have_text(before, timeout=KERNEL_START)
    expect(prompt).not_to_contain_text("*", timeout=KERNEL_START)
    wait_idle(cell.page)
    return output_of(cell)


def new_cell_below(panel: Locator, cell: Locator, code: str) -> Locator:
    """Insert a cell below ``cell``, type ``code`` into it and run it; return it."""
    cell.locator(".jp-InputPrompt").first.click()  # select the cell, in command mode
    panel.page.keyboard.press("Escape")
    panel.page.keyboard.press("b")
    added = panel.locator(".jp-Cell.jp-mod-selected")
    replace_code(added, code)
    run_cell(added)
    return added


def report_cell(panel: Locator) -> Locator:
    return panel.locator(".jp-CodeCell").last


def unfold(cell: Locator) -> None:
    """Show a collapsed cell's source and outputs."""
    for collapser in [".jp-InputCollapser", ".jp-OutputCollapser"]:
        if cell.locator(".jp-InputPlaceholder, .jp-OutputPlaceholder").count():
            cell.locator(collapser).first.click()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"jupyterlab_{name}.png"))


# ---------------------------------------------------------------------------
# Opening and running the book's chapters


@pytest.mark.parametrize("chapter", RUN_ALL)
def test_run_all_gives_no_error_and_the_report_passes(page: Page, lab: str, chapter: str) -> None:
    panel = open_in_lab(page, lab, f"book/{chapter}.ipynb")
    # Complete metadata: opening the notebook and starting its kernel changes nothing.
    assert not is_modified(page), "opening the notebook marked it modified"
    # The cells folded on the website start folded here: the parity cells at least.
    setup = panel.locator(".jp-CodeCell").first
    assert setup.locator(".jp-InputPlaceholder").count() == 1, "the setup cell is not folded"
    run_all(page)
    assert error_outputs(panel) == []
    report = report_cell(panel)
    unfold(report)
    assert "all agree." in output_of(report)
    assert "Your own cells" not in output_of(report)
    screenshot(page, f"run_all_{chapter}")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_map_of_the_book_reads_as_a_list_of_links(page: Page, lab: str) -> None:
    panel = open_in_lab(page, lab, "book/preface.ipynb")
    rendered = panel.locator(".jp-MarkdownCell .jp-RenderedMarkdown", has_text="Pitfalls").first
    # JupyterLab resolves a relative link to the file's URL, and opens it on a click.
    links = rendered.locator("ol > li > a[href*='.ipynb']")
    assert links.count() >= 18
    assert links.first.inner_text() == "Tracing and forward mode"
    assert "book/tracing_and_forward_mode:" not in rendered.inner_text()
    assert "chapter-map" not in rendered.inner_text()


def test_solutions_and_setup_cells_start_folded(page: Page, lab: str) -> None:
    panel = open_in_lab(page, lab, "book/custom_jvp_in_a_nutshell.ipynb")
    solution = panel.locator(".jp-CodeCell").nth(-2)
    assert solution.locator(".jp-InputPlaceholder").count() == 1, "the solution is not folded"
    report = report_cell(panel)
    assert report.locator(".jp-InputPlaceholder").count() == 1
    assert report.locator(".jp-OutputPlaceholder").count() == 1


# ---------------------------------------------------------------------------
# A reader who experiments


def test_exercises_answer_cell_solution_and_a_wrong_answer(page: Page, lab: str) -> None:
    panel = open_in_lab(page, lab, "book/custom_jvp_in_a_nutshell.ipynb")
    run_all(page)
    assert error_outputs(panel) == []
    answer = panel.locator(".jp-CodeCell").nth(-3)  # then the solution and the report
    assert "# Your answer" in answer.locator(".jp-Editor").inner_text()
    assert "check_logaddexp: no answer yet" in output_of(answer)
    solution = panel.locator(".jp-CodeCell").nth(-2)
    unfold(solution)
    shown = output_of(solution)
    assert "This is the exercise's solution, folded away" in shown
    assert "check passed" not in shown and "gradient at" not in shown
    # A wrong answer: no rule, so exp(1000) overflows.
    replace_code(answer, "import minijax.numpy as jnp\n\n"
                         "def logaddexp(x, y):\n"
                         "    return jnp.log(jnp.exp(x) + jnp.exp(y))\n\n"
                         "check_logaddexp(logaddexp)")
    message = run_cell(answer)
    screenshot(page, "wrong_answer")
    assert "check_logaddexp failed, at line 16 of the check cell" in message
    assert "Not equal to tolerance rtol=0.0001" in message
    assert "(%tb shows the whole traceback.)" in message
    assert "Traceback" not in message and "minijax/" not in message
    assert len(message.strip().splitlines()) <= 12
    # The right answer passes.
    replace_code(answer, "import minijax.numpy as jnp\nfrom minijax import custom_jvp\n\n"
                         "@custom_jvp\ndef logaddexp(x, y):\n"
                         "    m = jnp.maximum(x, y)\n"
                         "    return m + jnp.log(jnp.exp(x - m) + jnp.exp(y - m))\n\n"
                         "logaddexp.defjvps(lambda x_dot, out, x, y: jnp.exp(x - out) * x_dot,\n"
                         "                  lambda y_dot, out, x, y: jnp.exp(y - out) * y_dot)\n\n"
                         "check_logaddexp(logaddexp)")
    passed = run_cell(answer)
    assert passed.strip().endswith("check passed"), passed
    assert error_outputs(panel) == []
    # The reader's cells do not fail the chapter's own check.
    report = report_cell(panel)
    unfold(report)
    assert "all agree." in run_cell(report)


def test_a_readers_cells_with_objects_magics_and_missing_names(page: Page, lab: str) -> None:
    panel = open_in_lab(page, lab, "book/custom_jvp_in_a_nutshell.ipynb")
    run_all(page)
    first_example = panel.locator(".jp-CodeCell").nth(1)
    # A cell that shows a custom_jvp function: an object, printed with its address.
    shown = new_cell_below(panel, first_example, "f")
    assert "custom_jvp" in output_of(shown)
    assert error_outputs(panel) == []
    # %timeit prints a timing that differs every time; %time runs its code on both.
    new_cell_below(panel, shown, "%timeit -n 3 -r 2 f(1.0, 2.0)")
    timed = new_cell_below(panel, shown, "%time z = f(2.0, 3.0)")
    assert "Wall time" in output_of(timed)
    assert error_outputs(panel) == []
    # Something minijax lacks: one line says so.
    missing = new_cell_below(panel, shown, "from minijax import hessian")
    errors = error_outputs(panel)
    assert len(errors) == 1 and len(errors[0].strip().splitlines()) == 1, errors
    assert "minijax.hessian does not exist; JAX has jax.hessian" in errors[0]
    # %tb shows the traceback once, from the cell, not from the parity check.
    tb = new_cell_below(panel, missing, "%tb")
    assert output_of(tb).count("ImportError: cannot import name 'hessian'") == 1
    assert "parity.py" not in output_of(tb)
    # A reader's cell that disagrees: a side-by-side note, not an error.
    differing = new_cell_below(panel, tb, "import minijax\n"
                                          "1.0 if minijax.__name__ == 'minijax' else 2.0")
    note = output_of(differing)
    assert "minijax and JAX differ on this cell. It is yours" in note
    assert "Traceback" not in note and "ParityError" not in note
    screenshot(page, "reader_cells")
    report = report_cell(panel)
    unfold(report)
    final = run_cell(report)
    assert "all agree." in final
    assert "Your own cells:" in final and "1 differs" in final
    assert page.errors == []  # type: ignore[attr-defined]


def console_idle(lab: str) -> bool:
    with urllib.request.urlopen(f"{lab}api/sessions?token={TOKEN}", timeout=10) as response:
        sessions = json.load(response)
    return any(session["type"] == "console" and session["kernel"]["execution_state"] == "idle"
               and session["kernel"].get("connections", 0) > 0 for session in sessions)


def test_a_console_started_in_the_top_folder_loads_the_checks(page: Page, lab: str) -> None:
    page.goto(f"{lab}lab/workspaces/console{next(_WORKSPACES)}?reset&token={TOKEN}")
    page.locator(".jp-LauncherCard[title^='Python 3'][data-category='Console']").first.click()
    prompt = page.locator(".jp-CodeConsole-promptCell .cm-content")
    prompt.wait_for(timeout=60_000)
    deadline = time.monotonic() + KERNEL_START / 1000
    while not console_idle(lab):
        assert time.monotonic() < deadline, "the console's kernel did not start"
        time.sleep(0.25)
    done = page.locator(".jp-CodeConsole-content .jp-CodeCell")

    def run(code: str) -> str:
        """Run code at the prompt; return what it printed, once it has run."""
        count = done.count()
        prompt.click()
        page.keyboard.insert_text(code)
        page.keyboard.press("Shift+Enter")
        expect(done).to_have_count(count + 1, timeout=KERNEL_START)
        cell = done.nth(count)
        expect(cell.locator(".jp-InputArea-prompt")).not_to_contain_text("*", timeout=KERNEL_START)
        expect(cell.locator(".jp-InputArea-prompt")).to_contain_text("[", timeout=KERNEL_START)
        return cell.locator(".jp-OutputArea").inner_text()

    top = run("import os; print(os.getcwd())").strip()
    assert top == str(Path(top)) and not (Path(top) / "parity.py").exists()
    assert (Path(top) / "book").is_dir()  # the server's top folder, where the book is
    assert "Error" not in run("%load_ext parity")
    # The Preface's first example, a cell of the book: it counts in the report.
    assert "0.5403023" in run("import minijax.numpy as jnp\nfrom minijax import grad\n\n"
                              "grad(jnp.sin)(1.0)")
    report = run("import parity\n\nparity.report()")
    assert "1 cell compared with JAX" in report and "all agree." in report
