"""Small building blocks shared by the component deploys.

Each asks ``hoststate`` (one command per host and run) whether its file, directory or service
already is as wanted, and calls pyinfra's operation only when it is not.
"""

from io import StringIO
from pathlib import Path

from pyinfra import host, state
from pyinfra.api import operation
from pyinfra.api.util import get_template
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from . import bounds, hoststate

_PACKAGED = Path(__file__).parent / "templates"
TEMPLATES = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).parent.parent / "templates"
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


def put(path: str, content: str, name: str):
    """The file at ``path`` holds ``content``; uploaded only when it does not."""
    hoststate.manage(path)
    operation = files.put(
        name=name,
        src=StringIO(content),
        dest=path,
        _if=lambda: hoststate.differs(path, content.encode()),
    )
    return tracked(operation, path)


def place(path: str, name: str | None = None, **variables):
    """The file at ``path`` on the host, rendered from its template."""
    return put(path, render(path, **variables), name or f"Configure {path}")


def directory(path: str, name: str, user: str, group: str, mode: str, recursive=False):
    """The directory at ``path`` with this owner and mode (``recursive``: its contents too,
    whenever the directory itself is not)."""
    hoststate.manage(path, digest=False)
    return files.directory(
        name=name,
        path=path,
        user=user,
        group=group,
        mode=mode,
        recursive=recursive,
        _if=lambda: hoststate.directory_differs(path, user, group, mode),
    )


def running(name: str, label: str):
    """``name`` running and enabled; no systemctl call when it already is."""
    unit = f"{name}.service"
    hoststate.manage_unit(unit)

    def differs():
        now = hoststate.unit(unit)
        return not (now["running"] and now["enabled"])

    return systemd.service(name=label, service=name, running=True, enabled=True, _if=differs)


def service(name: str, changed=(), units=(), restart=False):
    """
    ``name`` running and enabled; restarted when one of the ``changed`` operations (its
    configuration) or the ``units`` operations (its unit files, reloaded first) changed, or
    when ``restart`` (a bool, or a callable asked at execution) says so. The restart comes
    first: a service its package already started picks up its new files, one not yet running
    simply starts. A service running since before its files were last written (a run that
    stopped half-way) restarts too. systemd bounds each start; a failed one says what the
    service waits on (``bounds.service_start``).
    """
    unit = f"{name}.service"
    hoststate.manage_unit(unit)
    paths = [op.path for op in (*changed, *units) if hasattr(op, "path")]

    def unread():
        return hoststate.unread(unit, paths)

    if units:
        systemd.daemon_reload(
            name=f"Reload systemd (the unit of {name} changed)",
            _if=lambda: (
                any(path.startswith("/etc/systemd/") for path in unread()) or any_changed(*units)()
            ),
        )
    changed = (*changed, *units)
    if changed or restart:
        label = f"Restart {name} if its configuration changed"
        bounds.waits_on(
            systemd.service(
                name=label,
                service=name,
                running=True,
                restarted=True,
                _if=lambda: (
                    bool(unread())
                    or (restart() if callable(restart) else restart)
                    or any_changed(*changed)()
                ),
            ),
            label,
            bounds.service_start(name),
        )
    label = f"Ensure {name} is running and enabled"
    bounds.waits_on(running(name, label), label, bounds.service_start(name))


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
