"""The lab's machines as the inventory names them, and the one /24 they share."""

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from util import MACHINES, LabError, read_json, recorded_pid


@dataclass
class Node:
    name: str  # inventory name, the FQDN
    short: str  # hostname and machine name
    address: str

    @property
    def dir(self) -> Path:
        return MACHINES / self.short


# -------------------------------------------------------------------------------------- inventory


def load_inventory(path: Path) -> list[Node]:
    """Every host of every top-level group list of a pyinfra inventory file."""
    if not path.is_file():
        raise LabError(f"inventory {path} not found")
    namespace = {"__file__": str(path), "__name__": "inventory"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    hosts: dict[str, dict] = {}
    for key, value in namespace.items():
        if key.startswith("_") or not isinstance(value, list) or not value:
            continue
        if not all(isinstance(h, str) or is_host_tuple(h) for h in value):
            continue
        for host in value:
            name, data = (host, {}) if isinstance(host, str) else host
            hosts.setdefault(name, {}).update(data)
    if not hosts:
        raise LabError(f"inventory {path} defines no hosts (lists of (name, data) tuples)")
    return [make_node(name, data) for name, data in hosts.items()]


def is_host_tuple(item) -> bool:
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], dict)
    )


def make_node(name: str, data: dict) -> Node:
    address = data.get("kube_address") or data.get("ssh_hostname")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise LabError(
            f"host {name}: the lab needs an IPv4 ssh_hostname or kube_address, got {address!r}"
        ) from None
    return Node(name=name, short=name.split(".")[0], address=address)


def lab_network(nodes: list[Node]) -> ipaddress.IPv4Network:
    """The one /24 holding every node; its .1 is the bridge (the nodes' gateway)."""
    networks = {ipaddress.ip_network(f"{n.address}/24", strict=False) for n in nodes}
    if len(networks) != 1:
        listing = ", ".join(f"{n.short}={n.address}" for n in nodes)
        raise LabError(f"the lab's hosts must share one /24 network: {listing}")
    net = networks.pop()
    for field, what in (("short", "short name"), ("address", "address")):
        values = [getattr(n, field) for n in nodes]
        twice = {v for v in values if values.count(v) > 1}
        if twice:
            raise LabError(f"two inventory hosts have the same {what}: {', '.join(sorted(twice))}")
    for node in nodes:
        if ipaddress.IPv4Address(node.address) in (net[0], net[1], net[-1]):
            raise LabError(
                f"host {node.name}: {node.address} is reserved in the lab ({net[1]} is the bridge)"
            )
    return net


def gateway(net: ipaddress.IPv4Network) -> str:
    return str(net[1])


def machine_records() -> list[Node]:
    records = [read_json(d / "node.json") for d in sorted(MACHINES.glob("*/"))]
    return [Node(**r) for r in records if r]


def is_running(short: str) -> bool:
    return recorded_pid(MACHINES / short / "supervisor.json") is not None
