"""Checks on the inventory and every setting, run before any operation touches a host.

Each problem is one line naming the setting, the host and what is wrong.
"""

import difflib
import ipaddress
import weakref
from collections import Counter

from pyinfra import state

from . import topology
from .defaults import DEFAULTS, setting, setting_error
from .profiles import profile

INT_RANGES = {
    "flannel_subnet_len": (1, 32),
    "flannel_vni": (0, 2**24 - 1),  # VXLAN network identifiers are 24 bits
    "etcd_client_port": (1, 65535),
    "etcd_peer_port": (1, 65535),
    "apiserver_insecure_port": (1, 65535),
    "apiserver_port": (1, 65535),
    "kube_log_level": (0, 10),
}
BOOLS = ("manage_etc_hosts", "kube_allow_privileged")
NETWORKS = ("flannel_network", "service_cluster_ip_range")

_validated = weakref.WeakSet()


def _fail(name: str, target, problem: str):
    raise setting_error(name, target, problem)


def check_groups():
    masters, minions = topology.masters(), topology.minions()
    if len(masters) != 1:
        names = ", ".join(h.name for h in masters) or "none"
        _fail("masters", None, f"the group must hold exactly one host, it holds {names}")
    if not minions:
        _fail("minions", None, "the group holds no host")
    for both in set(masters) & set(minions):
        _fail("masters", both, "the host is in both groups masters and minions")
    names = Counter(topology.short_name(h) for h in topology.cluster_hosts())
    for target in topology.cluster_hosts():
        if names[topology.short_name(target)] > 1:
            _fail("name", target, f"short name {topology.short_name(target)!r} is used twice")


def check_addresses():
    seen = {}
    for target in topology.cluster_hosts():
        value = topology.address(target)
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            _fail("kube_address", target, f"{value!r} is not an IPv4 address (set kube_address)")
        if value in seen:
            _fail("kube_address", target, f"{value} is also the address of {seen[value]}")
        seen[value] = target.name


def check_types(target):
    for name, (low, high) in INT_RANGES.items():
        value = setting(name, target)
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, target, f"{value!r} is not a whole number")
        if not low <= value <= high:
            _fail(name, target, f"{value} is out of range {low}-{high}")
    for name in BOOLS:
        if not isinstance(setting(name, target), bool):
            _fail(name, target, f"{setting(name, target)!r} is not true or false")
    for name, default in DEFAULTS.items():
        value = setting(name, target)
        if isinstance(default, str) and not isinstance(value, str):
            _fail(name, target, f"{value!r} is not a string")
        if isinstance(default, dict) and not isinstance(value, dict):
            _fail(name, target, f"{value!r} is not a mapping")


def network(name: str, target) -> ipaddress.IPv4Network:
    value = setting(name, target)
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as error:
        _fail(name, target, f"{value!r} is not an IPv4 network in CIDR form ({error})")


def check_networks(target):
    pods, services = (network(name, target) for name in NETWORKS)
    if pods.overlaps(services):
        _fail("service_cluster_ip_range", target, f"{services} overlaps flannel_network {pods}")
    subnet_len = setting("flannel_subnet_len", target)
    if subnet_len <= pods.prefixlen:
        _fail(
            "flannel_subnet_len",
            target,
            f"{subnet_len} must be larger than the prefix of flannel_network {pods}",
        )
    if subnet_len > 30:
        _fail("flannel_subnet_len", target, f"{subnet_len} leaves no room for pods (at most 30)")
    for other in topology.cluster_hosts():
        address = ipaddress.IPv4Address(topology.address(other))
        for name, net in zip(NETWORKS, (pods, services), strict=True):
            if address in net:
                _fail(name, target, f"{net} contains the address {address} of {other.name}")


def check_setting_names(target):
    """A data key one typo away from a kubelab setting is almost certainly that setting."""
    for key in target.data.dict():
        if key in DEFAULTS or key.startswith("_"):
            continue
        close = difflib.get_close_matches(key, DEFAULTS, n=1, cutoff=0.85)
        if close:
            _fail(key, target, f"unknown setting, did you mean '{close[0]}'?")


def validate_inventory():
    """Check the whole inventory once per run; raises ``SettingError`` on the first problem."""
    current = state._get_module()  # the State itself, not pyinfra's context proxy
    if current in _validated:
        return
    check_groups()
    check_addresses()
    for target in topology.cluster_hosts():
        check_setting_names(target)
        check_types(target)
        check_networks(target)
        profile(target)  # raises for an unknown profile or OS
    _validated.add(current)
