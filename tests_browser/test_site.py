"""The built website, opened in a real browser (Chromium, driven by Playwright).

Run after the site is built (scripts/site.sh), with scripts/browser_test.sh or
`.venv/bin/python -m pytest tests_browser`. The site in _build/html (or in the folder
named by SITE_DIR) is served on 127.0.0.1, and every HTML page found there is opened,
so chapters added later are checked without changing this file. A page fails on:

- a console error or an uncaught exception in its scripts;
- a request that failed or got an HTTP error, or any request to another host
  (such requests are blocked and reported: the site must work offline);
- math that MathJax did not typeset (a TeX delimiter left in the text, a `.math`
  element without MathJax output, or a TeX error), or an image that did not load.

Further tests check the folded parity cells and exercise solutions, the copy and
download buttons, the search, and save screenshots to _build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import os
import posixpath
import re
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import nbformat
import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("SITE_DIR", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "_build" / "screenshots"))
# Folders of the build that hold assets and copies of sources, not pages.
NOT_PAGES = {"_static", "_sources", "_images", "_sphinx_design_static"}
# Words the search must find: both decorators the book is about.
SEARCH_TERMS = ["custom_jvp", "custom_vjp"]


def site_pages() -> list[str]:
    """Every HTML page of the built site, as a path relative to its root."""
    if not (SITE / "index.html").is_file():
        raise RuntimeError(f"no built site in {SITE}: run `bash scripts/site.sh` first")
    return sorted(path.relative_to(SITE).as_posix() for path in SITE.rglob("*.html")
                  if not NOT_PAGES & set(path.relative_to(SITE).parts))


def chapter_pages() -> list[str]:
    """The pages built from notebooks (they offer an .ipynb download)."""
    return [page for page in site_pages()
            if (SITE / "_sources" / page).with_suffix(".ipynb").is_file()]


def solution_counts() -> dict[str, int]:
    """Chapter page -> how many exercise solutions its notebook has (see tests/test_exercises.py)."""
    counts = {}
    for page in chapter_pages():
        cells = nbformat.read((SITE / "_sources" / page).with_suffix(".ipynb"), as_version=4).cells
        solutions = sum(cell.metadata.get("exercise") == "solution" for cell in cells)
        if solutions:
            counts[page] = solutions
    return counts


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    """The site, served over HTTP on a free port of 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class PageLog:
    """What went wrong while a page loaded: console errors, failed or foreign requests."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.problems: list[str] = []
        origin = urlsplit(base_url).netloc

        def route(route):  # every request of the page passes here
            url = route.request.url
            if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != origin:
                self.problems.append(f"request to another host: {url}")
                route.abort()
            else:
                route.continue_()

        page.route("**/*", route)
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(
            f"console error: {msg.text} ({msg.location.get('url')})"))
        page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error}"))
        page.on("requestfailed", lambda request: self.problems.append(
            f"request failed: {request.url} ({request.failure})"))
        page.on("response", lambda response: response.status >= 400 and self.problems.append(
            f"HTTP {response.status}: {response.url}"))


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)  # a local page that takes longer is broken
    page = context.new_page()
    page.log = PageLog(page, base_url)  # type: ignore[attr-defined]
    yield page
    context.close()


def open_page(page: Page, base_url: str, path: str) -> None:
    """Load a page and wait until MathJax has typeset it and every image has loaded."""
    page.goto(base_url + path, wait_until="load")
    # index.html only redirects to the first page; wait for the page it opens.
    page.wait_for_load_state("networkidle")
    try:
        page.wait_for_function("() => !window.MathJax || (window.MathJax.startup"
                               " && window.MathJax.startup.promise)", timeout=15_000)
    except PlaywrightTimeoutError:
        page.log.problems.append("MathJax did not start")  # type: ignore[attr-defined]
        return
    page.evaluate("() => window.MathJax && window.MathJax.startup"
                  " ? window.MathJax.startup.promise : null")
    page.evaluate("""async () => {
        for (const img of document.images) {
            img.scrollIntoView();
            try { await img.decode(); } catch (e) {}
        }
        window.scrollTo(0, 0);
    }""")
    page.wait_for_load_state("networkidle")


# Text outside code and MathJax's output, where a TeX delimiter means untypeset math.
VISIBLE_TEXT = """() => {
    const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const parts = [];
    while (walker.nextNode()) {
        const node = walker.currentNode;
        if (!node.parentElement.closest(skip)) parts.push(node.textContent);
    }
    return parts.join(" ");
}"""
RAW_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")


def rendering_problems(page: Page) -> list[str]:
    problems = []
    leftover = RAW_MATH.findall(page.evaluate(VISIBLE_TEXT))
    if leftover:
        problems.append(f"untypeset math: {len(leftover)} TeX delimiters in the text")
    untypeset = page.evaluate("""() => Array.from(document.querySelectorAll(".math"))
        .filter(el => !el.querySelector("mjx-container")).map(el => el.textContent)""")
    problems += [f"math not typeset: {text[:80]!r}" for text in untypeset[:5]]
    if len(untypeset) > 5:
        problems.append(f"... and {len(untypeset) - 5} more untypeset math elements")
    errors = page.evaluate("""() => Array.from(document.querySelectorAll("mjx-merror"))
        .map(el => el.getAttribute("data-mjx-error") || el.textContent)""")
    problems += [f"TeX error: {error}" for error in errors]
    broken = page.evaluate("""() => Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)""")
    problems += [f"image did not load: {src}" for src in broken]
    return problems


@pytest.mark.parametrize("path", site_pages())
def test_page_loads_cleanly(page: Page, base_url: str, path: str) -> None:
    open_page(page, base_url, path)
    problems = page.log.problems + rendering_problems(page)  # type: ignore[attr-defined]
    assert problems == [], f"{path}:\n" + "\n".join(problems)


def test_the_site_has_pages() -> None:
    assert "index.html" in site_pages()
    assert chapter_pages(), "no page was built from a notebook"


def sidebar_targets(path: str) -> set[str]:
    """The pages the main navigation of a page links to, as paths from the site root."""
    html = (SITE / path).read_text()
    start = html.find('<nav class="bd-links bd-docs-nav"')
    nav = html[start:html.find("</nav>", start)]
    folder = posixpath.dirname(path)
    return {posixpath.normpath(posixpath.join(folder, href.split("#")[0]))
            for href in re.findall(r'href="([^"]+\.html[^"]*)"', nav)}


def test_every_page_shows_the_whole_book_in_its_sidebar() -> None:
    """An incremental build can leave old pages with an old table of contents."""
    pages = [page for page in site_pages() if page.startswith("book/")]
    whole_book = set(pages)
    stale = {page: sorted(whole_book - sidebar_targets(page) - {page}) for page in pages}
    assert {page: missing for page, missing in stale.items() if missing} == {}


@pytest.mark.parametrize("path", chapter_pages())
def test_chapter_folds_its_parity_cells_and_offers_downloads(page: Page, base_url: str,
                                                             path: str) -> None:
    open_page(page, base_url, path)
    folded = page.locator(".cell.tag_hide-cell > details")
    assert folded.count() >= 2, "the parity setup and report cells should be folded"
    for i in range(folded.count()):
        cell = folded.nth(i)
        assert cell.get_attribute("open") is None, f"folded cell {i} starts open"
        assert not cell.locator(".cell_input").is_visible(), f"folded cell {i} shows its code"
    first = folded.first
    first.locator("summary").click()
    assert first.get_attribute("open") is not None
    assert "%load_ext parity" in first.locator(".cell_input").inner_text()
    last = folded.last
    last.locator("summary").click()
    assert "parity.report()" in last.locator(".cell_input").inner_text()
    report = last.locator(".cell_output")
    assert report.count() == 1, "the report cell has no output: run scripts/run_chapters.py"
    assert "all agree" in report.inner_text()
    # Copy buttons on code; the notebook itself to download.
    assert page.locator(".cell_input .copybtn").count() >= 1, "no copy button on code cells"
    link = page.locator(".dropdown-download-buttons a[href$='.ipynb']")
    assert link.count() == 1, "no .ipynb download button"
    response = page.request.get(base_url + path.rsplit("/", 1)[0] + "/"
                                + link.get_attribute("href"))
    assert response.ok and response.json()["nbformat"] == 4
    assert page.log.problems == []  # type: ignore[attr-defined]


def test_copy_button_copies_the_code(browser: Browser, base_url: str) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    path = chapter_pages()[0]
    page.goto(base_url + path, wait_until="load")
    cell = page.locator(".cell:not(.tag_hide-cell) .cell_input").first
    cell.hover()
    cell.locator(".copybtn").click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    shown = cell.inner_text()
    context.close()
    assert copied.strip() and copied.strip() in shown


@pytest.mark.parametrize("term", SEARCH_TERMS)
def test_search_finds(page: Page, base_url: str, term: str) -> None:
    page.goto(f"{base_url}search.html?q={term}", wait_until="load")
    summary = page.locator("#search-results .search-summary")
    summary.wait_for()
    page.wait_for_function("""() => {
        const s = document.querySelector("#search-results .search-summary");
        return s && !/searching|preparing/i.test(s.textContent);
    }""")
    results = page.locator("#search-results ul.search li a")
    assert results.count() >= 1, f"no result for {term!r}: {summary.inner_text()}"
    # The search page goes on fetching each result's page for its snippet; leaving
    # before those requests finish would abort them (and log them as failures).
    page.wait_for_load_state("networkidle")
    first = results.first
    first.click()
    page.wait_for_load_state("load")
    assert term in page.locator("main").inner_text()
    assert page.log.problems == []  # type: ignore[attr-defined]


def screenshot_of(page: Page, base_url: str, path: str, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    open_page(page, base_url, path)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target))
    return target


def test_screenshots(page: Page, base_url: str) -> None:
    """Pictures for a person to check: math typeset, plots shown, parity cells folded."""
    saved = [screenshot_of(page, base_url, "index.html", "landing")]
    vmap = next((p for p in chapter_pages() if p.endswith("batching_with_vmap.html")), None)
    if vmap:
        saved.append(screenshot_of(page, base_url, vmap, "batching_with_vmap"))
        page.locator(".cell_output img").first.scroll_into_view_if_needed()
        page.evaluate("() => window.scrollBy(0, -200)")
        target = SCREENSHOTS / "batching_with_vmap_plot.png"
        page.screenshot(path=str(target))
        saved.append(target)
    math_pages = sorted(chapter_pages(),
                        key=lambda p: (SITE / p).read_text().count('class="math'))
    if math_pages and 'class="math' in (SITE / math_pages[-1]).read_text():
        open_page(page, base_url, math_pages[-1])
        page.locator(".math").first.scroll_into_view_if_needed()
        target = SCREENSHOTS / "math.png"
        page.screenshot(path=str(target))
        saved.append(target)
    assert all(path.stat().st_size > 0 for path in saved)


@pytest.mark.parametrize("path, solutions", solution_counts().items())
def test_exercise_solutions_start_folded_with_their_checks_shown(page: Page, base_url: str,
                                                                  path: str,
                                                                  solutions: int) -> None:
    open_page(page, base_url, path)
    # Other hide-input cells show minijax's source; a solution's output ends its check.
    folded = page.locator(".cell.tag_hide-input").filter(
        has=page.locator(".cell_output", has_text="check passed"))
    assert folded.count() == solutions
    for i in range(solutions):
        cell = folded.nth(i)
        assert cell.locator("details").get_attribute("open") is None, f"solution {i} starts open"
        assert not cell.locator(".cell_input").is_visible(), f"solution {i} shows its code"
        assert cell.locator(".cell_output").is_visible()
