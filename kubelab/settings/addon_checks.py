"""The add-ons' settings checked before any host is touched: the cluster DNS address and the
upstream resolvers (one line naming the setting and the host, like every check)."""

import ipaddress

from .defaults import fail, setting


def service_network(target) -> ipaddress.IPv4Network | None:
    """``service_cluster_ip_range`` as a network (None when it is no network: that check says
    so)."""
    try:
        return ipaddress.IPv4Network(setting("service_cluster_ip_range", target))
    except ValueError:
        return None


def default_dns_ip(services: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """kubeadm's rule: the 10th address of the service range."""
    return services[10]


def dns_ip(target) -> str:
    """The cluster DNS service's address for ``target``'s cluster."""
    chosen = setting("cluster_dns_ip", target)
    return chosen if chosen else str(default_dns_ip(service_network(target)))


def upstreams(value: str) -> list[str]:
    """``dns_upstream``'s resolvers, as written (commas or spaces between them)."""
    return value.replace(",", " ").split()


def upstream_address(item: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a resolver written ``IP``, ``IPv4:port`` or ``[IPv6]:port``."""
    host, port = item, None
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":") if rest else None
    elif item.count(":") == 1:
        host, port = item.split(":")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_cluster_dns_ip(target):
    services = service_network(target)
    if services is None:
        return
    chosen = setting("cluster_dns_ip", target)
    if not chosen:  # the range's 10th address: validation.check_networks keeps room for it
        return
    try:
        address = ipaddress.IPv4Address(chosen)
    except ValueError:
        fail("cluster_dns_ip", target, f"{chosen!r} is not an IPv4 address")
    if address not in services or address in (services.network_address, services[-1]):
        fail(
            "cluster_dns_ip",
            target,
            f"{address} is not a service address of service_cluster_ip_range {services}",
        )
    if address == services[1]:
        fail(
            "cluster_dns_ip",
            target,
            f"{address} is the API's service address (kubernetes.default, the first of "
            f"{services}): choose another, such as {default_dns_ip(services)}",
        )


def check_dns_upstream(target):
    value = setting("dns_upstream", target)
    if value is None:
        return
    items = upstreams(value)
    if not items:
        fail("dns_upstream", target, f"{value!r} names no resolver (unset it to use the nodes')")
    for item in items:
        address = upstream_address(item)
        if address is None:
            fail(
                "dns_upstream",
                target,
                f"{item!r} is not a resolver address like '192.168.122.1' or '10.0.0.2:5353'",
            )
        if address.is_loopback or address.is_unspecified:
            fail(
                "dns_upstream",
                target,
                f"{item!r} is a loopback address: inside CoreDNS's pod it is CoreDNS itself (a "
                "forwarding loop)",
            )
        if str(address) == dns_ip(target):
            fail(
                "dns_upstream",
                target,
                f"{item!r} is the cluster DNS service itself (cluster_dns_ip): a forwarding loop",
            )


def check_addons(target):
    check_cluster_dns_ip(target)
    check_dns_upstream(target)
