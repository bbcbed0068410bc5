"""Stopping a run that cannot go on safely: before any host is touched, in one line (as a bad
setting does), or at the operation that finds out, failing that host with one line."""

import sys

import greenlet
from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation
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


def in_step_problem(flags: list[str], deploy: str, why: str) -> str:
    return (
        f"kubelab: {deploy} refuses pyinfra's {' and '.join(flags)}: {why}, which needs every "
        "host to finish each operation before the next begins; under "
        f"{' and '.join(flags)} each host runs all its operations on its own: run it without"
    )


def require_hosts_in_step(deploy: str, why: str):
    """Before any host is touched: stop, in one line, a run of ``deploy`` under ``--serial``
    or ``--no-wait`` (seen here while pyinfra's CLI prepares the deploy)."""
    flags = hosts_on_their_own()
    if flags:
        raise Refused(in_step_problem(flags, deploy, why))


@operation()
def hosts_in_step(deploy: str, why: str):
    """The first operation of ``deploy``: the same check when the operations run (a script
    that prepared the deploy and then called ``run_ops`` itself): under ``--serial`` or
    ``--no-wait`` this host fails with the line before anything else runs on it."""
    flags = hosts_on_their_own()
    if flags:
        yield failure(in_step_problem(flags, deploy, why))
    else:
        host.noop("every host finishes each operation before the next begins")
