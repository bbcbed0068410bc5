"""Steps 4 and 5 of the smoke test from every host (see ``smoke_deploy``): what the master
listed (the service's cluster IP, the nginx pods, their nodes and IPs) read at execution time,
then checked from the host: the service, the pods on other minions, the minion's flannel lease."""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from pyinfra import logger
from pyinfra.api import StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

from .. import engine
from .smoke_test import FLANNEL_SUBNET_FILE, RC, answers, script, wait_until


class Pod(NamedTuple):
    name: str
    node: str
    ip: str


class Listing(NamedTuple):
    cluster_ip: str
    port: str
    pods: list[Pod]


def parse_listing(lines: list[str]) -> Listing | None:
    """What the master's listing printed; None without a service line."""
    service, pods = None, []
    for line in lines:
        fields = line.split()
        if fields[:1] == ["service"] and len(fields) == 3:
            service = fields[1:]
        elif fields[:1] == ["pod"] and len(fields) == 4:
            pods.append(Pod(*fields[1:]))
    return Listing(service[0], service[1], pods) if service else None


def parse_subnet_env(text: str) -> ipaddress.IPv4Network | None:
    for line in text.splitlines():
        name, _, value = line.strip().partition("=")
        if name == "FLANNEL_SUBNET":
            try:
                return ipaddress.ip_interface(value.strip().strip("\"'")).network
            except ValueError:
                return None
    return None


def lease_problem(found: Listing, node: str, subnet_env: str | None) -> str | None:
    """Why the nginx pods on ``node`` do not all have IPs inside its flannel lease."""
    lease = parse_subnet_env(subnet_env or "")
    if lease is None:
        return f"node {node} has no flannel lease (FLANNEL_SUBNET in {FLANNEL_SUBNET_FILE})"
    for pod in found.pods:
        if pod.node == node and ipaddress.ip_address(pod.ip) not in lease:
            return (
                f"pod {pod.name} on node {node} has IP {pod.ip}, outside the node's flannel "
                f"lease {lease} ({FLANNEL_SUBNET_FILE})"
            )
    return None


def host_checks(found: Listing, where: str, node: str | None, seconds: int) -> str:
    """The checks from one host: the service's cluster IP; from a minion (``node``) also every
    nginx pod on another node, by pod IP."""
    service = f"http://{found.cluster_ip}:{found.port}/"
    parts = [wait_until(answers(service, f"service {RC} ({service})", where), seconds)]
    if node is not None:
        for pod in found.pods:
            if pod.node != node:
                url = f"http://{pod.ip}:80/"
                what = f"nginx pod {pod.name} ({url} on {pod.node})"
                parts.append(wait_until(answers(url, what, where), seconds))
    return script(*parts)


def _connector_arguments(host) -> dict:
    """The operation's connector arguments (_sudo, ...), for commands a python.call runs."""
    arguments = host.current_op_global_arguments or {}
    return {key: arguments[key] for key in CONNECTOR_ARGUMENT_KEYS if key in arguments}


def _failed(host, message: str) -> bool:
    host.log_styled(message, log_func=logger.error, fg="red")
    return False


def _run(host, command: str):
    return host.run_shell_command(StringCommand(command), **_connector_arguments(host))


def check_from_host(state, host, where: str, node: str | None, minions: int, seconds: int):
    """python.call: steps 4 and 5 on this host (``node``: the minion's node name, None on the
    master), from what the master's listing printed."""
    listing_op = engine.run_cache("smoke", state).get("listing")
    found = None
    if listing_op is not None and listing_op.is_complete() and listing_op.did_succeed():
        found = parse_listing(listing_op.stdout_lines)
    if found is None:
        return _failed(
            host,
            f"smoke test: nothing checked from {where}: the master's part of the smoke test "
            "failed or did not run (see its error)",
        )
    if node is not None:
        ok, output = _run(host, f"cat {FLANNEL_SUBNET_FILE}")
        problem = lease_problem(found, node, output.stdout if ok else None)
        if problem:
            return _failed(host, f"smoke test: {problem}")
        others = [pod for pod in found.pods if pod.node != node]
        if not others and minions > 1:
            return _failed(host, f"smoke test: no nginx pod runs on another node than {node}")
    ok, output = _run(host, host_checks(found, where, node, seconds))
    if not ok:
        lines = output.stderr_lines or [f"smoke test: the checks from {where} failed"]
        for line in lines:
            host.log_styled(line, log_func=logger.error, fg="red")
        return False
    return True
