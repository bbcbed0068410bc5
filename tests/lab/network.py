"""The lab's bridge: the machines' one network, with no route to anywhere else."""

import ipaddress
import json

from nodes import gateway
from util import LabError, log, output, run

BRIDGE = "br-lab"


# ---------------------------------------------------------------------------------------- network


def bridge_address() -> str | None:
    if run("ip", "link", "show", BRIDGE, check=False, capture_output=True).returncode != 0:
        return None
    for info in json.loads(output("ip", "-j", "-4", "addr", "show", "dev", BRIDGE)):
        for addr in info.get("addr_info", []):
            return f"{addr['local']}/{addr['prefixlen']}"
    return ""


def check_subnet_is_free(net: ipaddress.IPv4Network) -> None:
    """Lab addresses must never be routed anywhere but the bridge."""
    for route in json.loads(output("ip", "-j", "-4", "route", "show", "table", "all")):
        dst = route.get("dst", "default")
        if route.get("dev") == BRIDGE or dst == "default" or route.get("type") == "local":
            continue
        if ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False).overlaps(net):
            raise LabError(f"{net} is already routed on this host ({dst} dev {route.get('dev')})")


def bridge_up(net: ipaddress.IPv4Network, any_running: bool) -> None:
    wanted = f"{gateway(net)}/{net.prefixlen}"
    current = bridge_address()
    if current == wanted:
        run("ip", "link", "set", BRIDGE, "up")
        return
    if current is not None and any_running:
        raise LabError(f"the running lab uses {current}; run `down` before using {net}")
    check_subnet_is_free(net)
    if current is None:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "flush", "dev", BRIDGE)
    run("ip", "addr", "add", wanted, "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    log(f"bridge {BRIDGE} {wanted}")


def bridge_down() -> None:
    if bridge_address() is None:
        return
    for link in json.loads(output("ip", "-j", "link", "show", "master", BRIDGE)):
        run("ip", "link", "del", link["ifname"], check=False)
    run("ip", "link", "del", BRIDGE)
    log(f"removed bridge {BRIDGE}")
