"""Small building blocks shared by the component deploys."""

from pathlib import Path

from pyinfra import host
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed

_PACKAGED = Path(__file__).parent / "templates"
TEMPLATES = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).parent.parent / "templates"


def template(path: str) -> str:
    """The template for the file at ``path`` on the host (``/etc/x`` -> ``etc/x.j2``)."""
    return str(TEMPLATES / (path.lstrip("/") + ".j2"))


def service(name: str, changed=(), units=(), restart=False):
    """
    ``name`` running and enabled; restarted when one of the ``changed`` operations (its
    configuration) or the ``units`` operations (its unit files, reloaded first) changed, or
    when ``restart`` (a bool, or a callable asked at execution) says so. A service that was
    not running before this deploy simply starts with its new files.
    """
    unit = f"{name}.service"
    was_running = host.get_fact(SystemdStatus, services=[unit]).get(unit, False)
    if units:
        systemd.daemon_reload(
            name=f"Reload systemd (the unit of {name} changed)", _if=any_changed(*units)
        )
    systemd.service(
        name=f"Ensure {name} is running and enabled", service=name, running=True, enabled=True
    )
    changed = (*changed, *units)
    if was_running and (changed or restart):
        systemd.service(
            name=f"Restart {name} (its configuration changed)",
            service=name,
            running=True,
            restarted=True,
            _if=lambda: (restart() if callable(restart) else restart) or any_changed(*changed)(),
        )
