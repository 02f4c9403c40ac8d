"""Settings shared by pytest and the notebook kernels that nbval starts.

nbval's kernels inherit this process's environment; giving it the variables
that scripts/run_chapters.py gives its kernels makes both produce the same outputs.
"""

import os

from run_chapters import KERNEL_ENV  # scripts/ is on pytest's pythonpath

os.environ.update(KERNEL_ENV)
