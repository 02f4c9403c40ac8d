#!/usr/bin/env bash
# Installs everything, then builds the website from the chapters' stored outputs.
# Open _build/html/index.html afterwards. Any Sphinx warning fails the build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
# --all: Sphinx would otherwise keep pages it did not re-read, with a sidebar that lacks
# chapters added since (a full build takes seconds).
.venv/bin/jupyter-book build --all -W -n --keep-going .
echo "website built: open $(pwd)/_build/html/index.html"
