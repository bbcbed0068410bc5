"""Small building blocks shared by the component deploys."""

from pathlib import Path

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from . import bounds
from .facts import FilesNewerThanService

_PACKAGED = Path(__file__).parent / "templates"
TEMPLATES = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).parent.parent / "templates"


def template(path: str) -> str:
    """The template for the file at ``path`` on the host (``/etc/x`` -> ``etc/x.j2``)."""
    return str(TEMPLATES / (path.lstrip("/") + ".j2"))


def tracked(operation, path: str):
    """Remember which file ``operation`` writes, so services can tell they have not read it."""
    operation.path = path
    return operation


def place(path: str, name: str | None = None, **variables):
    """The file at ``path`` on the host, rendered from its template."""
    operation = files.template(
        name=name or f"Configure {path}",
        src=template(path),
        dest=path,
        jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
        **variables,
    )
    return tracked(operation, path)


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
    paths = [op.path for op in (*changed, *units) if hasattr(op, "path")]
    unread = host.get_fact(FilesNewerThanService, unit=f"{name}.service", paths=paths)
    if units:
        unread_unit = any(path.startswith("/etc/systemd/") for path in unread)
        systemd.daemon_reload(
            name=f"Reload systemd (the unit of {name} changed)",
            _if=lambda: unread_unit or any_changed(*units)(),
        )
    changed = (*changed, *units)
    if changed or restart or unread:
        label = f"Restart {name} if its configuration changed"
        bounds.waits_on(
            systemd.service(
                name=label,
                service=name,
                running=True,
                restarted=True,
                _if=lambda: (
                    bool(unread)
                    or (restart() if callable(restart) else restart)
                    or any_changed(*changed)()
                ),
            ),
            label,
            bounds.service_start(name),
        )
    label = f"Ensure {name} is running and enabled"
    bounds.waits_on(
        systemd.service(name=label, service=name, running=True, enabled=True),
        label,
        bounds.service_start(name),
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
