#!/usr/bin/env bash
# Installs everything, then runs the tests in tests/ and re-runs every chapter under
# nbval, comparing its outputs with the stored ones. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"
# --dist loadfile keeps each notebook's cells on one worker, as nbval needs.
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
