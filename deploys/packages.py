"""Installing distribution packages with the host's own package manager, in bounded time."""

from pyinfra.operations import apt, yum

from . import bounds
from .profiles import family

# Where a package is named differently on EL than on Debian/Ubuntu.
REDHAT_NAMES = {"conntrack": "conntrack-tools"}


def install(names: list[str], name: str | None = None):
    """The packages installed; apt's bounds come from APT_CONFIG (see prerequisites), yum's
    from its own options; pyinfra ends either after operation_timeout."""
    label = name or f"Install {', '.join(names)}"
    if family() == "debian":
        operation = apt.packages(
            name=label,
            packages=names,
            no_recommends=True,
            _timeout=bounds.operation_timeout(),
        )
    else:
        operation = yum.packages(
            name=label,
            packages=[REDHAT_NAMES.get(n, n) for n in names],
            extra_install_args=bounds.yum_options(),
            _timeout=bounds.operation_timeout(),
        )
    return bounds.waits_on_packages(operation, label)
