"""Stopping a run that cannot go on safely: before any host is touched, in one line (as a bad
setting does), or at the operation that finds out, failing that host with one line."""

import sys

import greenlet
from pyinfra import logger
from pyinfra.api import FunctionCommand
from pyinfra.api.exceptions import PyinfraError
from pyinfra_cli.exceptions import CliError


class Refused(PyinfraError, CliError):
    """The run cannot go on safely; raised before any operation changes a host (pyinfra's CLI
    prints it as its one line)."""


def failure(message: str) -> FunctionCommand:
    """A command failing its host with ``message`` (one line), which runs nothing there."""

    def fail(state, host):
        host.log_styled(message, fg="red", log_func=logger.error)
        return False

    return FunctionCommand(fail, (), {})


# Where pyinfra holds its run mode: the CLI's parsed flags while it prepares the deploy, the
# arguments of run_ops while it runs the operations (from the CLI or a script).
RUN_MODE_FRAMES = {("pyinfra_cli.cli", "_main"), ("pyinfra.api.operations", "run_ops")}
ON_THEIR_OWN = {"serial": "--serial", "no_wait": "--no-wait"}


def _frames():
    """This greenlet's frames, then those of the main greenlet (where pyinfra's CLI waits
    while greenlets prepare or run the hosts)."""
    frame = sys._getframe(1)
    while frame is not None:
        yield frame
        frame = frame.f_back
    root = greenlet.getcurrent()
    while root.parent is not None:
        root = root.parent
    if root is not greenlet.getcurrent():
        frame = root.gr_frame
        while frame is not None:
            yield frame
            frame = frame.f_back


def hosts_on_their_own() -> list[str]:
    """The pyinfra flags of this run under which each host runs all its operations without
    waiting for the others (``--serial``, ``--no-wait``); empty when pyinfra waits for every
    host after each operation, or when the run mode cannot be seen (a script preparing the
    deploy before it calls ``run_ops``)."""
    for frame in _frames():
        if (frame.f_globals.get("__name__"), frame.f_code.co_name) in RUN_MODE_FRAMES:
            return [flag for name, flag in ON_THEIR_OWN.items() if frame.f_locals.get(name)]
    return []
