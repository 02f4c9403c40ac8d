#!/usr/bin/env bash
# Installs everything, JupyterLab included (pinned in requirements-lab.txt), then opens
# the book in JupyterLab, in the browser, at the Preface. Extra arguments go to
# `jupyter lab` (for example --no-browser, or --port=8890).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lab.txt
as_root=()
if [ "$(id -u)" = 0 ]; then as_root=(--allow-root); fi  # JupyterLab refuses root otherwise
exec .venv/bin/jupyter lab --ServerApp.root_dir="$(pwd)" \
    --LabApp.default_url=/lab/tree/book/preface.ipynb "${as_root[@]}" "$@"
