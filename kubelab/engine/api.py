"""The re-run engine as the components, the PKI, the settings and the workflows use it.

Outside ``kubelab/engine/`` a module reads the engine through these names (``from .. import
engine``, then ``engine.fact(...)``), never through ``once``, ``hoststate``, ``placement`` or
``callstack`` themselves. Each name is the engine's own function, not a wrapper: no frame is
added to the call stack pyinfra reads to order operations, and a re-run costs what it did.

- Facts and per-run results: ``fact``, ``per_run``, ``run_cache``, ``current_state``,
  ``prefetch`` (``once``).
- What kubelab manages on a host, read in one command: ``manage``, ``manage_unit``,
  ``will_ask``, ``file_state``, ``path_state``, ``exists``, ``unit_state``, ``host_now``,
  ``written_after_start``, ``differs``, ``attributes_differ``, ``sha256`` (``hoststate``).
- Files put in place: ``Step``, ``add_step``, ``changes`` (``placement``).
- The deploy file's guard against inspect's scans: ``deploy_file_is_no_module``
  (``callstack``).

The verbs a component deploys with build on these: ``place`` (a file rendered from its
template), ``put`` (a file's content), ``service`` (running, enabled, restarted on a change),
``install`` (a release artifact checked against its sha256). They are looked up when first
used (``engine.place``), not imported here: ``common`` and ``downloads`` read the settings and
the component catalog, which themselves use this interface.

Kept internal: how a host's preparation is scheduled (``once.one_host_at_a_time``, and
``hoststate.read_ahead`` at its end) is the cluster workflow's alone, so
``workflows/cluster.py`` still imports ``once`` and ``hoststate`` for those two
(the allow-list of tests/unit/test_engine_interface.py).
"""

import importlib

from . import callstack, hoststate, once, placement

VERBS = {"place": "common", "put": "common", "service": "common", "install": "downloads"}

fact = once.fact
per_run = once.per_run
run_cache = once.run_cache
current_state = once.current_state
prefetch = once.prefetch

manage = hoststate.manage
manage_unit = hoststate.manage_unit
will_ask = hoststate.will_ask
file_state = hoststate.file
path_state = hoststate.stat
exists = hoststate.exists
unit_state = hoststate.unit
host_now = hoststate.now
written_after_start = hoststate.unread
differs = hoststate.differs
attributes_differ = hoststate.attributes_differ
sha256 = hoststate.sha256

Step = placement.Step
add_step = placement.add
changes = placement.changes

deploy_file_is_no_module = callstack.deploy_file_is_no_module

__all__ = [
    "Step",
    "add_step",
    "attributes_differ",
    "changes",
    "current_state",
    "deploy_file_is_no_module",
    "differs",
    "exists",
    "fact",
    "file_state",
    "host_now",
    "manage",
    "manage_unit",
    "path_state",
    "per_run",
    "prefetch",
    "run_cache",
    "sha256",
    "unit_state",
    "will_ask",
    "written_after_start",
]


def __getattr__(name: str):
    """One of the ``VERBS``, from the module that defines it."""
    if name not in VERBS:
        raise AttributeError(f"module {__package__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{VERBS[name]}", __package__), name)
