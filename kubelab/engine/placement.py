"""The files kubelab puts on a host, written by as few operations as pyinfra needs.

pyinfra spends most of a no-change run declaring operations (it walks the call stack for each
one), so the files a component puts one after another (binaries, certificates, configuration,
units) are steps of one operation, ``Put files in place``: a step joins the operation of the
step before it when no other operation was declared on the host in between, so everything
still happens in the order the deploy says. At execution that operation does, in order, the
steps whose path differs from what ``hoststate`` read at the start of the run.

A step's ``did_change()`` says whether its path differed at the start of the run, that is,
whether this run writes (or wrote) it: what ``common.service`` restarts a service on. pyinfra
without ``-y`` shows each operation's changes before asking to go on: there (and for a step
named while operations already run) each step is an operation of its own, named after it.
"""

import gevent
from pyinfra import host, state
from pyinfra.api import operation

from . import once

NAME = "Put files in place"


class Step:
    """``path`` put in place by ``commands()`` (pyinfra commands) when ``differs()``."""

    def __init__(self, path: str, differs, commands):
        self.path, self.differs, self.commands = path, differs, commands

    def did_change(self) -> bool:
        return self.differs()


@operation()
def put_in_place(steps: list[Step]):
    """Each of ``steps`` whose path differs, in order."""
    for step in steps:
        if step.differs():
            yield from step.commands()


def add(name: str, path: str, differs, commands) -> Step:
    """A step putting ``path`` in place (``name``: what it does, for a step of its own)."""
    # A pause for the SSH exchanges of the hosts already prepared (once.one_host_at_a_time).
    gevent.sleep(0)
    step = Step(path, differs, commands)
    open_steps = once.run_cache("placement")
    current = open_steps.get(host.name)
    if current and current["declared"] == len(host.op_hash_order):
        current["steps"].append(step)
        return step
    steps = [step]
    alone = state.should_check_for_changes() or state.is_executing
    put_in_place(name=name if alone else NAME, steps=steps)
    if not alone:
        open_steps[host.name] = {"steps": steps, "declared": len(host.op_hash_order)}
    return step


def changes(operation) -> bool:
    """Whether ``operation`` (a step or a pyinfra operation) changes the host in this run:
    once it ran, whether it did; while pyinfra prepares the run (without ``-y``), whether it
    would."""
    if isinstance(operation, Step) or operation.is_complete():
        return operation.did_change()
    return operation.will_change
