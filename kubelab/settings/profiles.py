"""Which profile a host gets: ``el7`` (CentOS 7 packages) or ``modern`` (upstream binaries)."""

from pyinfra import host
from pyinfra.facts.server import LinuxDistribution

from .. import engine
from .defaults import fail, setting, setting_error

PROFILES = ("el7", "modern")

# (os-release ID, major version) -> profile
SUPPORTED = {
    ("centos", 7): "el7",
    ("rhel", 7): "el7",
    ("debian", 12): "modern",
    ("debian", 13): "modern",
    ("ubuntu", 22): "modern",
    ("ubuntu", 24): "modern",
    ("rocky", 8): "modern",
    ("rocky", 9): "modern",
    ("almalinux", 8): "modern",
    ("almalinux", 9): "modern",
}


def distribution(target=None) -> tuple[str, int]:
    facts = engine.fact(LinuxDistribution, target)  # the OS cannot change during a run
    os_id = facts.get("release_meta", {}).get("ID") or facts.get("name") or "unknown"
    return os_id.lower(), int(facts.get("major") or 0)


def profile(target=None) -> str:
    """The profile data pins, else the one this host's OS calls for."""
    target = host if target is None else target
    pinned = setting("profile", target)
    if pinned:
        if pinned not in PROFILES:
            raise setting_error(
                "profile", target, f"{pinned!r} is not one of {', '.join(PROFILES)}"
            )
        return pinned
    name, major = distribution(target)
    try:
        return SUPPORTED[(name, major)]
    except KeyError:
        raise setting_error(
            "profile",
            target,
            f"unsupported OS {name} {major or '?'} (supported: CentOS/RHEL 7, Debian 12/13, "
            "Ubuntu 22.04/24.04, Rocky/Alma 8/9)",
        ) from None


def family(target=None) -> str:
    """``debian`` or ``redhat``: which package tools the host has."""
    name, _ = distribution(target)
    return "debian" if name in ("debian", "ubuntu") else "redhat"


def require_modern(name: str, target, doing: str, el7_note: str):
    """Stop with one line, under the setting ``name``, unless ``target`` runs the modern
    profile: ``doing`` (a day-two operation) exists for it only."""
    if profile(target) != "modern":
        fail(
            name,
            target,
            f"{doing} is supported on the modern profile only (this cluster is el7{el7_note})",
        )
