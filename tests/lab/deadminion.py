"""A minion powered off for good, removed (for e2e.py, issue 17.13).

remove_dead_minion: the last minion of the inventory is powered off (faults.power_off); once
its nginx pods are out of the service's endpoints (the node controller marks them not ready
when the Node stops reporting), deploys/remove_node.py removes it while a loop on the master
asks nginx's cluster IP. The run must succeed although pyinfra cannot reach that host, say in
one line that its cleanup was skipped, and leave its Node gone; a second removal changes
nothing, cluster.py on the inventory without it changes nothing, and the final test passes on
the remaining minions.
"""

import time

import daytwo
import faults
import kube
import pipeline

ENDPOINTS_DEADLINE = 180  # s: the node controller's grace period (50 s) and then some
ENDPOINTS = (
    kube.SMOKE + " get endpointslices -l kubernetes.io/service-name=nginx -o jsonpath='{range "
    '.items[*].endpoints[*]}{.nodeName} {.conditions.ready}{"\\n"}{end}\''
)


def ready_endpoints_on(node: str) -> list[str]:
    lines = kube.kubectl(ENDPOINTS).splitlines()
    return [line for line in lines if line.split() == [node, "true"]]


def wait_endpoints_gone(node: str) -> float:
    """Seconds until nginx's service holds no ready endpoint on ``node``."""
    started = time.monotonic()
    while ready_endpoints_on(node):
        if time.monotonic() - started > ENDPOINTS_DEADLINE:
            raise pipeline.StepFailed(
                f"nginx's service still lists a ready endpoint on {node} "
                f"{ENDPOINTS_DEADLINE} s after it was powered off"
            )
        time.sleep(2)
    return time.monotonic() - started


def remove_dead_minion(inventory: str) -> str:
    _, minions = daytwo.hosts_of(inventory)
    if len(minions) < 2:
        raise pipeline.StepFailed("remove_dead_minion needs an inventory of two minions or more")
    name = minions[-1][0]
    host = daytwo.short(name)
    pipeline.smoke(inventory, "dead-smoke-before")  # nginx and its service are there
    how = faults.power_off(host)
    waited = wait_endpoints_gone(name)
    ok, failed, seconds, looked_up = daytwo.while_nginx_serves(
        "the removal of a powered-off minion",
        lambda: daytwo.run_pyinfra(
            inventory, "deploys/remove_node.py", "dead-remove", f"remove_nodes={host}"
        ),
    )
    line = f"kubelab: {name} unreachable: drained and deleted from the cluster by the master"
    if line not in (pipeline.LOGS / "dead-remove.log").read_text():
        raise pipeline.StepFailed(f"the removal did not say {line!r} (dead-remove.log)")
    nodes = kube.kubectl("get nodes -o name").split()
    if f"node/{name}" in nodes:
        raise pipeline.StepFailed(f"{name} is still a Node after its removal: {nodes}")
    again = daytwo.run_pyinfra(
        inventory, "deploys/remove_node.py", "dead-remove-again", f"remove_nodes={host}"
    )
    if again:
        raise pipeline.StepFailed(f"a second removal of the powered-off {host} changed {again}")
    smaller = daytwo.inventory_without_last_minion(inventory)
    changes, _ = pipeline.deploy(smaller, "dead-after-remove")
    if changes:
        raise pipeline.StepFailed(f"cluster.py without {host} changed {dict(changes)}")
    pipeline.smoke(smaller, "dead-smoke-after-remove")
    total = ok + failed
    return (
        f"{host} {how}, its endpoints gone after {waited:.0f} s; removed in {seconds:.0f} s "
        f"with one line for its skipped cleanup; nginx's cluster IP answered {ok} of {total} "
        f"requests meanwhile ({failed} failed); {looked_up}; Node gone, second removal and "
        "cluster.py without it changed nothing, the final test passes"
    )
