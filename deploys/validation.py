"""Checks on the inventory and every setting, run before any operation touches a host.

Each problem is one line naming the setting, the host and what is wrong; the first problem found
stops the run. The checks read data and (for the profile) the hosts' OS facts, nothing else.
Order: the groups, setting names, types, SSH settings, addresses, cluster-wide agreement,
values, networks, profiles, ports.
"""

import difflib
import ipaddress
import os
from functools import cache
from pathlib import Path

from pyinfra import host, logger, state

from . import once, topology
from .addon_checks import check_addons
from .components import MASTER, fixed_ports
from .defaults import DEFAULTS, fail, setting
from .kinds import dns_problem, is_ip
from .profiles import PROFILES, SUPPORTED, distribution, profile
from .value_checks import check_values

INT_RANGES = {
    "flannel_subnet_len": (1, 32),
    "smoke_timeout": (1, 86400),  # a day
    "flannel_vni": (0, 2**24 - 1),  # VXLAN network identifiers are 24 bits
    "etcd_client_port": (1, 65535),
    "etcd_peer_port": (1, 65535),
    "apiserver_insecure_port": (1, 65535),
    "apiserver_port": (1, 65535),
    "kube_log_level": (0, 10),
    "kube_proxy_conntrack_max_per_core": (0, 2**31 - 1),  # an int32 in kube-proxy's config
    "network_timeout": (1, 3600),  # an hour
    "operation_timeout": (1, 86400),  # a day
    "drain_timeout": (1, 86400),
    "upgrade_timeout": (1, 86400),
    "dns_replicas": (1, 100),
    "addons_timeout": (1, 86400),
}
# Settings unset by default that hold a string when set.
OPTIONAL_STRINGS = (
    "profile",
    "kube_address",
    "node_name",
    "artifact_mirror",
    "reset_cluster",
    "reset_pki",
    "cluster_dns_ip",
    "dns_upstream",
)
# Settings unset by default that hold a whole number when set.
OPTIONAL_INTS = ("kube_proxy_conntrack_max_per_core",)
# Settings unset by default that hold True or False when set.
OPTIONAL_BOOLS = ("secure",)
# Ports the master's services listen on whatever the settings say, per profile.
FIXED_PORTS = {
    "el7": {10251: "kube-scheduler's port", 10252: "kube-controller-manager's port"},
    "modern": fixed_ports(MASTER),
}
NETWORKS = ("flannel_network", "service_cluster_ip_range")
SMALLEST_SERVICE_RANGE = 28  # prefix length: 16 addresses
# Read on every host, so every host must hold the master's value.
CLUSTER_WIDE = (
    "cluster_name",
    "secure",
    "service_cluster_ip_range",
    "flannel_network",
    "flannel_subnet_len",
    "flannel_backend",
    "flannel_vni",
    "flannel_etcd_prefix",
    "apiserver_insecure_port",
    "apiserver_port",
    "cluster_domain",
    "cluster_dns_ip",
    "pki_dir",
    "remove_nodes",
    "remove_last_minion",
    "drain_timeout",
    "drain_force",
    "reset_cluster",
    "reset_pki",
    "upgrade_allow_downgrade",
    "upgrade_timeout",
)
# Data keys of pyinfra's connectors; never taken for a misspelt kubelab setting.
PYINFRA_PREFIXES = (
    "ssh_",
    "docker_",
    "podman_",
    "winrm_",
    "fake_",
    "chroot_",
    "local_",
    "vagrant_",
    "terraform_",
)
SUPPORTED_TEXT = "CentOS/RHEL 7, Debian 12/13, Ubuntu 22.04/24.04, Rocky/Alma 8/9"


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


# The inventory's shape ---------------------------------------------------------------------


def check_groups():
    inventory = host.inventory
    groups = [name for name, hosts in inventory.groups.items() if hosts]
    masters = topology.masters()
    for group, hosts in (
        (topology.MASTERS_GROUP, masters),
        (topology.MINIONS_GROUP, topology.minions()),
    ):
        if hosts:
            continue
        others = [g for g in groups if g not in (topology.MASTERS_GROUP, topology.MINIONS_GROUP)]
        close = difflib.get_close_matches(group, others, n=1, cutoff=0.6)
        hint = f" (the inventory has a group {close[0]!r}: rename it {group!r})" if close else ""
        needs = "exactly one host" if group == topology.MASTERS_GROUP else "at least one host"
        fail(group, None, f"the group must hold {needs}, it holds none{hint}")
    if len(masters) != 1:
        names = ", ".join(h.name for h in masters)
        fail(
            topology.MASTERS_GROUP,
            None,
            f"the group must hold exactly one host, it holds {len(masters)}: {names}",
        )
    for target in topology.minions():
        if target in masters:
            fail("masters", target, "the host is in both groups masters and minions")
    hosts = topology.cluster_hosts()
    seen = {}
    for target in hosts:
        short = topology.short_name(target)
        if short in seen:
            fail("name", target, f"short name {short!r} is also the short name of {seen[short]}")
        seen[short] = target.name
    seen = {}
    for target in topology.minions():
        node = topology.node_name(target)
        if node in seen:
            fail("node_name", target, f"{node!r} is also the node name of {seen[node]}")
        seen[node] = target.name


# Setting names and types -------------------------------------------------------------------


@cache
def pyinfra_data_keys() -> frozenset:
    """Data keys pyinfra itself reads: its connectors' settings and operation arguments."""
    from pyinfra.api.arguments import all_global_arguments
    from pyinfra.api.connectors import get_all_connectors

    keys = {name for name, _ in all_global_arguments()}
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}))
    return frozenset(keys)


def check_setting_names(target):
    """A data key one typo away from a kubelab setting is almost certainly that setting."""
    for key in target.data.dict():
        if not isinstance(key, str) or key in DEFAULTS or key.startswith("_"):
            continue
        if key in pyinfra_data_keys() or key.startswith(PYINFRA_PREFIXES):
            continue
        close = difflib.get_close_matches(key.lower(), DEFAULTS, n=1, cutoff=0.85)
        if close:
            fail(key, target, f"unknown setting, did you mean {close[0]!r}?")


def _expected_type(name: str, default):
    if default is None:
        optional = {**dict.fromkeys(OPTIONAL_STRINGS, str), **dict.fromkeys(OPTIONAL_INTS, int)}
        return {**optional, **dict.fromkeys(OPTIONAL_BOOLS, bool)}.get(name)
    return type(default)


def check_types(target):
    for name, default in DEFAULTS.items():
        value = setting(name, target)
        expected = _expected_type(name, default)
        if expected is None or (default is None and value is None):
            continue
        if expected is bool and not isinstance(value, bool):
            if isinstance(value, str):
                fail(
                    name,
                    target,
                    f"{value!r} is a string, not True or False (write True or False without "
                    "quotes)",
                )
            fail(name, target, f"{value!r} is not True or False")
        if expected is int:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                fail(
                    name,
                    target,
                    f"{value!r} is a string, not a whole number (write {value.strip()} "
                    "without quotes)",
                )
            if isinstance(value, bool) or not isinstance(value, int):
                fail(name, target, f"{value!r} is not a whole number")
            low, high = INT_RANGES.get(name, (value, value))
            if not low <= value <= high:
                fail(name, target, f"{value} is out of range {low}-{high}")
        if expected is str and not isinstance(value, str):
            fail(name, target, f"{value!r} is not a string")
        if expected is dict and not isinstance(value, dict):
            fail(name, target, f"{value!r} is not a mapping (a dict)")


# SSH: only for hosts pyinfra reaches with its ssh connector ---------------------------------


def uses_ssh(target) -> bool:
    return getattr(target.connector_cls, "__name__", "") == "SSHConnector"


def _key_candidates(key: str) -> list[Path]:
    """Where pyinfra looks for ``ssh_key``: the path itself, then relative to the deploy's cwd."""
    path = Path(key).expanduser()
    candidates = [path]
    current = state._get_module()
    cwd = getattr(current, "cwd", None) if current is not None else None
    if cwd and not path.is_absolute():
        candidates.append(Path(cwd) / path)
    return candidates


def check_ssh(target):
    if not uses_ssh(target):
        return
    hostname = target.data.get("ssh_hostname")
    if hostname is not None and (not isinstance(hostname, str) or not hostname.strip()):
        fail("ssh_hostname", target, f"{hostname!r} is not a host name or address")
    if hostname and not is_ip(hostname) and dns_problem(hostname):
        fail(
            "ssh_hostname",
            target,
            f"{hostname!r} is neither an IP address nor a DNS name: it {dns_problem(hostname)}",
        )
    port = target.data.get("ssh_port")
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int):
            kind = "a string, not a port number" if isinstance(port, str) else "not a port number"
            fail("ssh_port", target, f"{port!r} is {kind} (a whole number 1-65535)")
        if not 1 <= port <= 65535:
            fail("ssh_port", target, f"{port} is out of range 1-65535")
    user = target.data.get("ssh_user")
    if user is not None and (not isinstance(user, str) or not user.strip()):
        fail("ssh_user", target, f"{user!r} is not a user name")
    key = target.data.get("ssh_key")
    if key is None or key == "":  # pyinfra connects without a key file
        return
    if not isinstance(key, (str, os.PathLike)) or not str(key).strip():
        fail("ssh_key", target, f"{key!r} is not a file name")
    candidates = _key_candidates(str(key))
    found = next((path for path in candidates if path.exists()), None)
    if found is None:
        fail("ssh_key", target, f"the key file {str(key)!r} does not exist")
    if not found.is_file():
        fail("ssh_key", target, f"{str(found)!r} is not a file")
    if not os.access(found, os.R_OK):
        fail("ssh_key", target, f"the key file {str(found)!r} is not readable by this user")


# Addresses ---------------------------------------------------------------------------------


def check_address(target):
    """The address the cluster uses for ``target``: set, IPv4, reachable by the other hosts."""
    kube_address = target.data.get("kube_address")
    ssh_hostname = target.data.get("ssh_hostname")
    if kube_address:
        if _ipv4(kube_address) is None:
            fail("kube_address", target, f"{kube_address!r} is not an IPv4 address")
    elif ssh_hostname:
        if _ipv4(ssh_hostname) is None:
            fail(
                "kube_address",
                target,
                f"unset, and ssh_hostname {ssh_hostname!r} is not an IPv4 address: set "
                "kube_address to the address the cluster should use for the host",
            )
    elif _ipv4(target.name) is None:
        fail(
            "kube_address",
            target,
            "the host has no address: set ssh_hostname or kube_address (its name "
            f"{target.name!r} is not an IP address)",
        )
    address = _ipv4(topology.address(target))
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        fail("kube_address", target, f"{address} is not an address the other hosts can reach")


def check_addresses():
    seen = {}
    for target in topology.cluster_hosts():
        check_address(target)
        value = str(_ipv4(topology.address(target)))
        if value in seen:
            fail("kube_address", target, f"{value} is also the address of {seen[value]}")
        seen[value] = target.name


# Values ------------------------------------------------------------------------------------


def check_cluster_wide(target, master):
    """Settings every host reads must be the master's: one cluster, one network."""
    if target is master:
        return
    for name in CLUSTER_WIDE:
        if name not in DEFAULTS:
            continue
        mine, masters = setting(name, target), setting(name, master)
        if mine != masters:
            fail(
                name,
                target,
                f"{mine!r} differs from {masters!r} on the master {master.name}: "
                "a cluster-wide setting must be the same on every host",
            )


def network(name: str, target) -> ipaddress.IPv4Network:
    value = setting(name, target)
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as error:
        fail(name, target, f"{value!r} is not an IPv4 network in CIDR form ({error})")


def check_networks(target):
    pods, services = (network(name, target) for name in NETWORKS)
    if "/" not in setting("flannel_network", target):
        fail("flannel_network", target, f"{pods.network_address} has no prefix length (like /16)")
    if "/" not in setting("service_cluster_ip_range", target):
        fail(
            "service_cluster_ip_range",
            target,
            f"{services.network_address} has no prefix length (like /16)",
        )
    if services.prefixlen > SMALLEST_SERVICE_RANGE:
        fail(
            "service_cluster_ip_range",
            target,
            f"{services} holds {services.num_addresses} address(es), too few for the cluster's "
            f"Services (the apiserver's own takes the first host address): at most "
            f"/{SMALLEST_SERVICE_RANGE}",
        )
    if pods.overlaps(services):
        fail("service_cluster_ip_range", target, f"{services} overlaps flannel_network {pods}")
    subnet_len = setting("flannel_subnet_len", target)
    if subnet_len <= pods.prefixlen:
        fail(
            "flannel_subnet_len",
            target,
            f"{subnet_len} must be larger than the prefix of flannel_network {pods}",
        )
    if subnet_len > 30:
        fail("flannel_subnet_len", target, f"{subnet_len} leaves no room for pods (at most 30)")
    hosts = topology.cluster_hosts()
    usable = 2 ** (subnet_len - pods.prefixlen) - 1  # flannel leases from the second subnet on
    if usable < len(hosts):
        fail(
            "flannel_subnet_len",
            target,
            f"/{subnet_len} subnets of flannel_network {pods} leave {usable} to lease "
            f"(flannel skips the first) for {len(hosts)} hosts",
        )
    for other in hosts:
        address = ipaddress.IPv4Address(topology.address(other))
        for name, net in zip(NETWORKS, (pods, services), strict=True):
            if address in net:
                fail(
                    name,
                    target,
                    f"{net} overlaps the hosts' subnet: it contains {address}, the address of "
                    f"{other.name}",
                )


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
    once.per_run("validation", lambda: _validate_inventory(unreachable_ok))


def _validate_inventory(unreachable_ok: bool = False):
    check_groups()
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
