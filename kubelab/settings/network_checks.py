"""Checks on the cluster's networks: flannel's pod network and the Services' range, in CIDR form,
apart from each other and from the hosts' addresses, with room for every host's subnet."""

import ipaddress

from . import topology
from .defaults import fail, setting

NETWORKS = ("flannel_network", "service_cluster_ip_range")
SMALLEST_SERVICE_RANGE = 28  # prefix length: 16 addresses


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
