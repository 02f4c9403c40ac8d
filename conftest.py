"""Settings shared by pytest and the notebook kernels that nbval starts.

nbval's kernels inherit this process's environment; giving it the variables
that scripts/run_chapters.py gives its kernels makes both produce the same outputs.
"""

import os

from run_chapters import KERNEL_ENV  # scripts/ is on pytest's pythonpath

os.environ.update(KERNEL_ENV)


def pytest_configure(config):
    """Execute every notebook under book/ and compare its stored outputs (nbval's
    --nbval), on this environment's Python whatever kernels are installed elsewhere
    on the machine (--nbval-current-env). `-p no:nbval` runs the tests alone."""
    if config.pluginmanager.hasplugin("nbval"):
        config.option.nbval = True
        config.option.nbval_current_env = True
