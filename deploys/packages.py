"""Installing distribution packages with the host's own package manager."""

from pyinfra.operations import apt, yum

from .profiles import family

# Where a package is named differently on EL than on Debian/Ubuntu.
REDHAT_NAMES = {"conntrack": "conntrack-tools"}


def install(names: list[str], name: str | None = None):
    label = name or f"Install {', '.join(names)}"
    if family() == "debian":
        return apt.packages(name=label, packages=names, no_recommends=True)
    return yum.packages(name=label, packages=[REDHAT_NAMES.get(n, n) for n in names])
