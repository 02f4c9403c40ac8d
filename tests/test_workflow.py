"""The GitHub Actions workflow of .github/workflows/: actionlint passes on it, and it
runs the README's commands.

actionlint comes from requirements-lint.txt, which scripts/install.sh installs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
README_COMMANDS = ["bash scripts/test.sh", "bash scripts/site.sh", "bash scripts/browser_test.sh"]


def actionlint() -> str | None:
    found = Path(sys.executable).parent / "actionlint"
    return str(found) if found.is_file() else shutil.which("actionlint")


def test_there_is_a_workflow():
    assert [path.name for path in WORKFLOWS] == ["book.yml"]


def test_actionlint_passes():
    program = actionlint()
    assert program is not None, "actionlint is not installed: pip install -r requirements-lint.txt"
    result = subprocess.run([program, "-no-color", *map(str, WORKFLOWS)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def steps(workflow: dict) -> dict[str, list[dict]]:
    return {name: job.get("steps", []) for name, job in workflow["jobs"].items()}


def test_the_workflow_runs_the_readmes_commands_on_every_push_and_pull_request():
    workflow = yaml.safe_load(WORKFLOWS[0].read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    assert triggers["push"] is None and triggers["pull_request"] is None  # every branch
    runs = [step["run"].strip() for job in steps(workflow).values() for step in job
            if "run" in step]
    for command in README_COMMANDS:
        assert command in runs, f"the workflow does not run {command!r}"
        assert command in (ROOT / "README.md").read_text()


def test_the_site_is_published_from_main_only_after_the_tests():
    workflow = yaml.safe_load(WORKFLOWS[0].read_text())
    publish = workflow["jobs"]["publish"]
    assert set(publish["needs"]) == {"test", "site"}
    assert publish["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert publish["permissions"] == {"pages": "write", "id-token": "write"}
    assert [step["uses"].split("@")[0] for step in publish["steps"]] == ["actions/deploy-pages"]
    uploads = [step for step in steps(workflow)["site"]
               if step.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert len(uploads) == 1 and uploads[0]["with"]["path"] == "_build/html"
    assert uploads[0]["if"] == publish["if"]


def test_jupyterlab_is_pinned_and_opened_by_the_third_command():
    pins = [line for line in (ROOT / "requirements-lab.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert any(line.startswith("jupyterlab==") for line in pins)
    assert all("==" in line for line in pins), "every package of requirements-lab.txt is pinned"
    lab = (ROOT / "scripts" / "lab.sh").read_text()
    assert "-r requirements-lab.txt" in lab and "jupyter lab" in lab
    assert "bash scripts/lab.sh" in (ROOT / "README.md").read_text()
    assert "-r requirements-lab.txt" in (ROOT / "scripts" / "browser_test.sh").read_text()
