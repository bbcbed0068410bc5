"""Installing distribution packages with the host's own package manager, in bounded time."""

from pyinfra.facts.deb import DebPackages
from pyinfra.facts.rpm import RpmPackages
from pyinfra.operations import apt, yum

from ..settings.profiles import family
from . import bounds, hoststate, once

# Where a package is named differently on EL than on Debian/Ubuntu.
REDHAT_NAMES = {"conntrack": "conntrack-tools"}


def installed_packages():
    """The fact listing the host's installed packages."""
    return DebPackages if family() == "debian" else RpmPackages


def missing(names: list[str]) -> bool:
    """Whether one of ``names`` was not installed when the run first asked (read once per
    host and run: a package installed since only makes pyinfra's own check run again)."""
    return not set(names) <= set(once.fact(installed_packages()))


def install(names: list[str], name: str | None = None):
    """The packages installed; apt's bounds come from APT_CONFIG (see prerequisites), yum's
    from its own options; pyinfra ends either after operation_timeout. No package operation
    runs when every package is installed already."""
    label = name or f"Install {', '.join(names)}"
    hoststate.will_ask(installed_packages())
    if family() == "debian":
        operation = apt.packages(
            name=label,
            packages=names,
            no_recommends=True,
            _timeout=bounds.operation_timeout(),
            _if=lambda: missing(names),
        )
    else:
        names = [REDHAT_NAMES.get(n, n) for n in names]
        operation = yum.packages(
            name=label,
            packages=names,
            extra_install_args=bounds.yum_options(),
            _timeout=bounds.operation_timeout(),
            _if=lambda: missing(names),
        )
    return bounds.waits_on_packages(operation, label)
