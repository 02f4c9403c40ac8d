#!/usr/bin/env bash
# Installs everything, then builds the website from the chapters' stored outputs.
# Open _build/html/index.html afterwards. Any Sphinx warning fails the build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
.venv/bin/jupyter-book build -W -n --keep-going .
echo "website built: open $(pwd)/_build/html/index.html"
