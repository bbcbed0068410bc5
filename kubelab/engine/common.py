"""Small building blocks shared by the component deploys.

Each asks ``hoststate`` (one command per host and run) whether its file, directory or service
already is as wanted, and does pyinfra's operation only when it is not. Files and directories
are steps of one operation per run of them (``placement``); a service is one operation.
"""

import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.api.util import get_template
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import files, server, systemd

from . import bounds, hoststate, placement, shell

_PACKAGED = Path(__file__).parents[1] / "templates"
TEMPLATES = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).parents[2] / "templates"
JINJA = {"trim_blocks": True, "lstrip_blocks": True}


def template(path: str) -> str:
    """The template for the file at ``path`` on the host (``/etc/x`` -> ``etc/x.j2``)."""
    return str(TEMPLATES / (path.lstrip("/") + ".j2"))


def render(path: str, **variables) -> str:
    """The file at ``path`` as its template renders it (as files.template would)."""
    data = {"host": host, "state": state, "inventory": state.inventory, **variables}
    return get_template(template(path), JINJA).render(data)


def tracked(operation, path: str):
    """Remember which file ``operation`` writes, so services can tell they have not read it."""
    operation.path = path
    return operation


def put(path: str, content: str, name: str) -> placement.Step:
    """The file at ``path`` holds ``content``; uploaded only when it does not."""
    hoststate.manage(path)
    return placement.add(
        name,
        path,
        lambda: hoststate.differs(path, content.encode()),
        lambda: files.put._inner(src=StringIO(content), dest=path),
    )


def place(path: str, name: str | None = None, **variables):
    """The file at ``path`` on the host, rendered from its template."""
    return put(path, render(path, **variables), name or f"Configure {path}")


def directory(path: str, name: str, user: str, group: str, mode: str, recursive=False):
    """The directory at ``path`` with this owner and mode (``recursive``: its contents too,
    whenever the directory itself is not)."""
    hoststate.manage(path, digest=False)
    return placement.add(
        name,
        path,
        lambda: hoststate.directory_differs(path, user, group, mode),
        lambda: files.directory._inner(
            path=path, user=user, group=group, mode=mode, recursive=recursive
        ),
    )


def stopped_or_disabled(unit: str) -> bool:
    """Whether ``unit`` is not both running and enabled, as the host's state reads it."""
    now = hoststate.unit(unit)
    return not (now["running"] and now["enabled"])


def running(name: str, label: str):
    """``name`` running and enabled; no systemctl call when it already is."""
    unit = f"{name}.service"
    hoststate.manage_unit(unit)
    return systemd.service(
        name=label,
        service=name,
        running=True,
        enabled=True,
        _if=lambda: stopped_or_disabled(unit),
    )


def active(unit: str) -> bool:
    """Whether ``unit`` runs now (read when the operation runs, as pyinfra's systemd does)."""
    return bool(host.get_fact(SystemdStatus, services=[unit]).get(unit))


def started(service: str, attempts: int, running: bool) -> str:
    """Shell: ``service`` started, or restarted when ``running``, tried up to ``attempts``
    times, each failed try said on stderr, then one line naming what the start waited on. A
    try after a failed one restarts: a start would wait out the unit's RestartSec."""
    unit = f"{service}.service"
    first = f"systemctl {'restart' if running else 'start'} {unit}"
    if attempts < 2:
        return first
    retry = shlex.quote(f"kubelab: {service} did not start, trying again")
    problem = (
        f"kubelab: {host.name}: {service} did not start in {attempts} tries, each waiting on "
        f"{bounds.service_start(service)}"
    )
    return (
        f"{first} && exit 0; for attempt in $(seq 2 {attempts}); do "
        f'echo {retry} "(try $attempt of {attempts})" >&2; '
        f"systemctl restart {unit} && exit 0; done; {shell.fail(problem)}"
    )


@operation()
def service_state(service: str, reload, restart, start, before_restart=None, attempts=1):
    """``service`` as ``reload``, ``restart`` and ``start`` (callables asked when the
    operation runs) say: systemd reloaded first, then the service restarted (after the
    commands ``before_restart()`` gives; a stopped one starts), then started and enabled,
    each as the service is by then. A start or restart is tried up to ``attempts`` times."""
    unit = f"{service}.service"
    if reload():
        yield from systemd.daemon_reload._inner()
    if restart():
        yield from before_restart() if before_restart else ()
        yield started(service, attempts, running=active(unit))
    if start():
        if not active(unit):
            yield started(service, attempts, running=False)
        if not host.get_fact(SystemdEnabled, services=[unit]).get(unit):
            yield f"systemctl enable {unit}"


def service(name: str, changed=(), units=(), restart=False, before_restart=None, attempts=1):
    """
    ``name`` running and enabled, in one operation; restarted when one of the ``changed``
    operations (its configuration) or the ``units`` operations (its unit files, reloaded
    first) changes it in this run, or when ``restart`` (a bool, or a callable asked when the
    operation runs) says so; ``before_restart()`` (asked then too) gives commands to run just
    before. The restart comes first: a service its package already started picks up its new
    files, one not yet running simply starts. A service running since before its files were
    last written (a run that stopped half-way) restarts too. systemd bounds each start; a
    failed one says what the service waits on (``bounds.service_start``). A start is tried
    up to ``attempts`` times.
    """
    unit = f"{name}.service"
    hoststate.manage_unit(unit)
    paths = [op.path for op in (*changed, *units) if hasattr(op, "path")]
    changed = (*changed, *units)

    def unread():
        return hoststate.unread(unit, paths)

    def reload():
        unit_files = [path for path in unread() if path.startswith("/etc/systemd/")]
        return bool(unit_files) or any(placement.changes(op) for op in units)

    def restarts():
        return (
            bool(unread())
            or (restart() if callable(restart) else restart)
            or any(placement.changes(op) for op in changed)
        )

    label = f"{name} running and enabled, restarted if its configuration changed"
    operation = service_state(
        name=label,
        service=name,
        reload=reload,
        restart=restarts,
        start=lambda: stopped_or_disabled(unit),
        before_restart=before_restart,
        attempts=attempts,
    )
    bounds.waits_on(operation, label, bounds.service_start(name))


def system_user(user: str, home: str, shell: str):
    """The system user ``user`` with this home (not created) and shell."""
    hoststate.manage_user(user)
    return server.user(
        name=f"System user {user}",
        user=user,
        system=True,
        home=home,
        shell=shell,
        ensure_home=False,
        _if=lambda: hoststate.user(user) != {"home": home, "shell": shell},
    )


@operation(is_idempotent=True)
def nothing(**_arguments):
    """The step does not apply to this host."""
    yield from ()


def step(applies: bool, operation_function, **arguments):
    """One step: ``operation_function`` on the hosts it ``applies`` to, ``nothing`` on the
    others, from the same line: every host then runs the same operations in the same order,
    and each step is done on every host before the next one starts (the pyinfra CLI orders
    the operations of different hosts by the lines calling them, its API by their position)."""
    return (operation_function if applies else nothing)(**arguments)
