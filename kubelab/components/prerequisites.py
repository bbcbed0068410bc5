"""Every host: names resolve, firewalld is out of the way, time is in sync, packages install."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt, server, systemd

from .. import engine
from ..engine import bounds, packages
from ..engine.common import place, put, running
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from ..settings.profiles import family, profile

HOSTS_FILE = "/etc/hosts"
FIREWALLD = "firewalld.service"
APT_CACHE_SECONDS = 24 * 3600
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"  # what apt.update's cache_time reads
MODERN_PACKAGES = ["curl", "ca-certificates", "tar", "iptables", "conntrack", "socat"]


def apt_index_is_old() -> bool:
    """Whether apt.update's cache_time has passed since the last update (no stamp: it has)."""
    stamp, now = engine.path_state(APT_STAMP), engine.host_now()
    return not stamp or now is None or stamp["mtime"] <= (now - APT_CACHE_SECONDS) * 1_000_000


def hosts_file_lines() -> list[str]:
    """One ``address FQDN short-name`` line per cluster host."""
    lines = []
    for target in topology.cluster_hosts():
        names = [target.name]
        if topology.short_name(target) != target.name:
            names.append(topology.short_name(target))
        lines.append(" ".join([topology.address(target), *names]))
    return lines


def merged_hosts_file(current: list[str], wanted: list[str]) -> str:
    """``current`` with the cluster's lines replacing any line that names a cluster host; as it
    is when it holds each of them already and no other line names a cluster host (a line of a
    host that left the cluster stays where it is: a re-run after a removal changes nothing)."""
    names = {name for line in wanted for name in line.split()[1:]}
    kept = [
        line for line in current if line.startswith("#") or not names.intersection(line.split()[1:])
    ]
    if len(kept) + len(wanted) == len(current) and set(wanted) <= set(current):
        return "\n".join(current) + "\n"
    return "\n".join([*kept, *wanted]) + "\n"


@deploy("Prerequisites", data_defaults=DEFAULTS)
def deploy_prerequisites():
    """Names resolve, firewalld is out of the way, packages install, time is in sync and
    (modern) the kernel passes bridged traffic to iptables. The files all of that needs come
    first: they are one operation (``placement``)."""
    modern = profile() == "modern"
    if setting("manage_etc_hosts"):
        current = engine.fact(FileContents, path=HOSTS_FILE) or []
        put(
            HOSTS_FILE,
            merged_hosts_file(current, hosts_file_lines()),
            name="Name every cluster host in /etc/hosts",
        )
    if family() == "debian":
        place(
            bounds.APT_CONFIG,
            name="Bound apt's fetches, and fail an update that cannot fetch a source",
            cluster_name=setting("cluster_name"),
            network_timeout=bounds.network_timeout(),
            retries=bounds.PACKAGE_RETRIES,
        )
    sysctl = kernel_networking_files() if modern else None

    engine.manage_unit(FIREWALLD)
    systemd.service(
        name="Stop and disable firewalld",
        service="firewalld",
        running=False,
        enabled=False,
        _if=lambda: any(engine.unit_state(FIREWALLD)[key] for key in ("running", "enabled")),
    )

    if family() == "debian":
        refresh = "Refresh the package index (daily)"
        engine.manage(APT_STAMP, digest=False)
        update = apt.update(
            name=refresh,
            cache_time=APT_CACHE_SECONDS,
            _timeout=bounds.operation_timeout(),
            _if=apt_index_is_old,
        )
        bounds.waits_on_packages(update, refresh)

    packages.install(["chrony", *(MODERN_PACKAGES if modern else [])])
    running("chrony" if family() == "debian" else "chronyd", "Keep time in sync with chrony")

    if sysctl:
        # A container may have br_netfilter built in and no right to modprobe: look first.
        server.shell(
            name="Apply the sysctl settings",
            commands=[
                "test -d /proc/sys/net/bridge || modprobe br_netfilter",
                "sysctl -q -p /etc/sysctl.d/90-kubelab.conf",
            ],
            _if=sysctl.did_change,
        )


def kernel_networking_files():
    """br_netfilter and forwarding at every boot; returns the sysctl file's step."""
    place("/etc/modules-load.d/kubelab.conf", name="Load overlay and br_netfilter at boot")
    return place(
        "/etc/sysctl.d/90-kubelab.conf",
        name="Bridge netfilter and IP forwarding (sysctl)",
        host_name=host.name,
    )
