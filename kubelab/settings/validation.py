"""Checks on the inventory and every setting, run before any operation touches a host.

Each problem is one line naming the setting, the host and what is wrong; the first problem found
stops the run. The checks read data and (for the profile) the hosts' OS facts, nothing else.
Order: the groups, setting names, types, SSH settings, addresses (inventory_checks,
setting_checks), cluster-wide agreement, values (value_checks), networks (network_checks),
profiles, ports, the add-ons (addon_checks).
"""

import ipaddress

from pyinfra import logger

from .. import engine
from ..components.catalog import MASTER, fixed_ports
from . import topology
from .addon_checks import check_addons
from .defaults import DEFAULTS, fail, setting
from .inventory_checks import (
    check_addresses,
    check_groups,
    check_masters_for_profile,
    check_masters_reachable,
    check_ssh,
    uses_ssh,
)
from .network_checks import check_networks
from .profiles import PROFILES, SUPPORTED, distribution, profile
from .setting_checks import check_cluster_wide, check_setting_names, check_types
from .value_checks import check_values

# Ports the master's services listen on whatever the settings say, per profile.
FIXED_PORTS = {
    "el7": {10251: "kube-scheduler's port", 10252: "kube-controller-manager's port"},
    "modern": fixed_ports(MASTER),
}
SUPPORTED_TEXT = "CentOS/RHEL 7, Debian 12/13, Ubuntu 22.04/24.04, Rocky/Alma 8/9"


# Profiles and ports ------------------------------------------------------------------------


def check_profile(target) -> str:
    """The host's profile; a pinned one must be the one the host's OS calls for."""
    pinned = setting("profile", target)
    if pinned and pinned not in PROFILES:
        fail(
            "profile",
            target,
            f"{pinned!r} is not a profile: el7 (CentOS/RHEL 7) or modern (the other supported "
            "OSes); unset, it is chosen from the host's OS",
        )
    os_id, major = distribution(target)
    wanted = SUPPORTED.get((os_id, major))
    if wanted is None:
        fail(
            "profile",
            target,
            f"unsupported OS {os_id} {major or '?'} (supported: {SUPPORTED_TEXT})",
        )
    if pinned and pinned != wanted:
        fail(
            "profile",
            target,
            f"{pinned!r} does not fit the host's OS {os_id} {major}, which takes {wanted!r} "
            "(unset profile to choose it from the OS)",
        )
    return profile(target)


def check_ports(master, master_profile: str):
    """The master's listening ports must differ from each other."""
    names = ["etcd_client_port", "etcd_peer_port", "apiserver_port"]
    if master_profile == "el7":
        names.append("apiserver_insecure_port")
    seen = dict(FIXED_PORTS[master_profile])
    if uses_ssh(master):  # sshd listens there: the port pyinfra reaches the master on
        seen[master.data.get("ssh_port") or 22] = "the master's SSH port (ssh_port)"
    for name in names:
        if name not in DEFAULTS:
            continue
        port = setting(name, master)
        if port in seen:
            fail(name, master, f"{port} is also {seen[port]} (both listen on the master)")
        seen[port] = name


def validate_inventory(unreachable_ok: bool = False):
    """Check the whole inventory once per run; raises ``SettingError`` on the first problem.
    ``unreachable_ok``: a host pyinfra could not connect to is not asked for its OS (the
    removal of a dead minion)."""
    engine.per_run("validation", lambda: _validate_inventory(unreachable_ok))


def _validate_inventory(unreachable_ok: bool = False):
    check_groups()
    if not unreachable_ok:
        check_masters_reachable()
    hosts = topology.cluster_hosts()
    master = topology.master()
    for check in (check_setting_names, check_types, check_ssh):
        for target in hosts:
            check(target)
    check_addresses()
    for target in hosts:
        check_cluster_wide(target, master)
    for target in hosts:
        check_values(target)
        check_networks(target)
    master_profile = check_profile(master)
    check_masters_for_profile(master_profile)
    for target in hosts:
        if unreachable_ok and topology.unreachable(target):
            continue
        if check_profile(target) != master_profile:
            os_id, major = distribution(target)
            fail(
                "profile",
                target,
                f"the host ({os_id} {major}) takes {profile(target)!r} but the master "
                f"{master.name} takes {master_profile!r}: every host of a cluster needs the "
                "same profile",
            )
    check_ports(master, master_profile)
    if master_profile == "modern":
        for target in hosts:
            check_addons(target)
    warn_if_open(master, master_profile)
    say_outside_hosts()


def say_outside_hosts():
    """One line per run naming the inventory's hosts that every deploy leaves alone."""
    outside = topology.outside_hosts()
    if outside:
        count = f"{len(outside)} host{'s' if len(outside) > 1 else ''}"
        names = ", ".join(target.name for target in outside)
        logger.info(f"kubelab: leaving {count} outside masters/minions untouched: {names}")


# Kubernetes 1.5's kubelet: anonymous requests allowed (AlwaysAllow), a read-only port.
EL7_KUBELETS_OPEN = (
    "each minion's kubelet answers anyone on port 10250 (Kubernetes 1.5 authorizes anonymous "
    "requests: commands run in any pod) and on its read-only port 10255"
)


def warn_if_open(master, master_profile: str):
    """One line at the start of each run saying what the cluster leaves open to anyone."""
    etcd = f"etcd serves {topology.etcd_url()} to anyone, without client certificates"
    if master_profile == "modern":
        if not topology.secure():
            logger.warning(
                f"kubelab: this modern cluster is open: {etcd} (whoever reaches it reads and "
                "writes every Secret and the whole cluster's state); secure=True (unset: the "
                "modern default) closes it"
            )
        return
    if topology.secure():
        logger.warning(
            f"kubelab: this el7 cluster's kubelets are open: {EL7_KUBELETS_OPEN}; secure=True "
            "does not close them on Kubernetes 1.5 (let only the master reach those ports)"
        )
        return
    bind = setting("apiserver_insecure_bind_address", master)
    api = (
        ""
        if ipaddress.IPv4Address(bind).is_loopback
        else f", and the apiserver's plain port {setting('apiserver_insecure_port', master)} "
        f"listens on {bind} without authentication (whoever reaches it is cluster admin)"
    )
    logger.warning(
        f"kubelab: this el7 cluster is open: {etcd}{api}; secure=True closes that, not the "
        f"kubelets: {EL7_KUBELETS_OPEN}"
    )
