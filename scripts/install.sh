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
    --disable-pip-version-check -r requirements.txt -r requirements-lint.txt -e .
