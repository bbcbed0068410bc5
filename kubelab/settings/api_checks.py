"""The settings of how hosts reach the API: ``api_endpoint`` and ``api_balancer_port``.

Part of value_checks: each problem is one line naming the setting and the host.
"""

from .defaults import fail, setting
from .kinds import endpoint_problem

EXAMPLE = "api.example.com:6443"
# The ports that may not be the balancer's: it listens on 127.0.0.1 of masters too.
MASTER_PORTS = ("apiserver_port", "etcd_client_port", "etcd_peer_port")


def check_api_settings(target):
    endpoint = setting("api_endpoint", target)
    if endpoint is not None and endpoint_problem(endpoint):
        fail(
            "api_endpoint",
            target,
            f"{endpoint!r} is not host:port like {EXAMPLE!r} (a DNS name or an IPv4 address "
            f"and a port): it {endpoint_problem(endpoint)}",
        )
    port = setting("api_balancer_port", target)
    for name in MASTER_PORTS:
        if setting(name, target) == port:
            fail(
                "api_balancer_port",
                target,
                f"{port} is also {name}: the local load balancer listens on 127.0.0.1 of "
                "every host, masters included",
            )
