#!/usr/bin/env bash
# Opens every page of the built site (_build/html, from scripts/site.sh) in Chromium and
# fails on console errors, failed or off-site requests, untypeset math and broken images;
# also checks the folded parity cells, copy and download buttons, and the search. Then
# opens chapters in a real JupyterLab (requirements-lab.txt) and runs them as a reader
# would. Screenshots go to _build/screenshots/. Extra arguments go to pytest.
# Needs Debian's Chromium at /usr/bin/chromium (or set CHROMIUM): apt-get install -y chromium
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r requirements-browser.txt -r requirements-lab.txt
.venv/bin/python -m pytest tests_browser "$@"
