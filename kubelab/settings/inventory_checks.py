"""Checks on the inventory's shape and how the hosts are reached: the groups, the hosts' names,
SSH settings (for hosts pyinfra reaches with its ssh connector), the address the cluster uses for
each host. Each problem stops the run with one line naming the setting and the host (``fail``).
"""

import difflib
import ipaddress
import os
from pathlib import Path

from pyinfra import host, state

from . import topology
from .defaults import fail
from .kinds import dns_problem, is_ip


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


# etcd keeps a majority of its members (one per master): an even count tolerates no more
# failures than the odd count below it, and more than 7 members slow every write down.
MASTER_COUNTS = (1, 3, 5, 7)
MASTER_COUNTS_TEXT = "1, 3, 5 or 7 hosts"


def check_master_count(masters):
    """The masters' count is one etcd can keep a majority of: 1, 3, 5 or 7."""
    if len(masters) in MASTER_COUNTS:
        return
    names = ", ".join(h.name for h in masters)
    why = "an even count" if len(masters) % 2 == 0 else "more than 7"
    fail(
        topology.MASTERS_GROUP,
        None,
        f"the group must hold {MASTER_COUNTS_TEXT} (one etcd member each, and etcd needs a "
        f"majority of them: {why} adds no failure it survives), it holds {len(masters)}: "
        f"{names}",
    )


def check_masters_for_profile(master_profile: str):
    """el7 (the packaged etcd 3.3 and Kubernetes 1.5) has one master."""
    masters = topology.masters()
    if master_profile == "el7" and len(masters) > 1:
        fail(
            topology.MASTERS_GROUP,
            masters[1],
            f"the el7 profile has one master, the group holds {len(masters)}: keep "
            f"{masters[0].name} alone in it (several masters need the modern profile)",
        )


def check_masters_reachable():
    """Every master is reached in this run: a deploy changes each etcd member, and growing
    etcd or starting a new one waits on a majority of them."""
    for target in topology.masters():
        if topology.unreachable(target):
            fail(
                topology.MASTERS_GROUP,
                target,
                "the master is unreachable (pyinfra could not connect): a deploy needs every "
                "master; nothing was changed on any host",
            )


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
        needs = MASTER_COUNTS_TEXT if group == topology.MASTERS_GROUP else "at least one host"
        fail(group, None, f"the group must hold {needs}, it holds none{hint}")
    check_master_count(masters)
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
