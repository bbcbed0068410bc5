"""A cheaper call stack for pyinfra's CLI.

pyinfra's CLI orders operations by the line numbers of the call stack that declared them, which
it reads with ``inspect.stack()`` for every operation. For every frame inspect looks up the
frame's module; the deploy file pyinfra executes (``deploys/cluster.py``) is no module, so each
lookup of its frame scans all of ``sys.modules`` (some 700), three times per operation. Telling
inspect once that the file is no module's turns those scans into one dict lookup and changes
no answer: inspect's lookup gives no module for that file either way.
"""

import inspect
import os

from pyinfra import state


def deploy_file_is_no_module():
    """Cache inspect's answer for the deploy file being executed (no module)."""
    filename = state.current_deploy_filename
    if filename:
        path = os.path.normcase(os.path.abspath(filename))
        inspect.modulesbyfile.setdefault(path, "")
