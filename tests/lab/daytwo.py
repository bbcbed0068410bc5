"""Day two on the lab (for e2e.py): a minion removed while its pods serve, and the cluster reset
and rebuilt. Each returns what it saw or raises StepFailed.

remove_minion: the last minion of the inventory leaves through deploys/remove_node.py while a
loop on the master keeps asking nginx's cluster IP (failures counted); then its Node is gone, the
host holds nothing of kubelab's, a second removal changes nothing, and cluster.py on the inventory
without it changes nothing either (that inventory: ``inventory_without_last_minion``).

reset_and_rebuild: deploys/reset.py on every host of the inventory, each host then checked for
what is left of kubelab (listed, none expected), a second reset changes nothing; cluster.py
rebuilds under the same CA, the final test passes, a re-run changes nothing.
"""

import shlex
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import addons
import kube
import pipeline
from faults import ssh

from kubelab.components import catalog
from kubelab.pki import cluster_mark
from kubelab.settings.defaults import DEFAULTS
from kubelab.workflows import teardown

MASTER = "kubemaster"
CLUSTER_NAME = "kubelab"  # the lab's cluster_name (the default)
STOP_FLAG = "/tmp/kubelab-daytwo-stop"
LOOP_DEADLINE = 900  # s: the loop on the master ends by itself after this
# A share of the requests during the drain may meet a pod being stopped (kube-proxy on the
# master follows the endpoints within a second or two): more than this fails the scenario.
MAX_FAILED_SHARE = 0.05


def hosts_of(inventory: str) -> tuple[list, list]:
    """(masters, minions) of an inventory file, as (name, data) pairs."""
    groups: dict = {}
    exec(compile(Path(inventory).read_text(), inventory, "exec"), {}, groups)
    return list(groups["masters"]), list(groups["minions"])


def short(name: str) -> str:
    return name.split(".")[0]


def inventory_without_last_minion(inventory: str) -> str:
    """``inventory`` without its last minion (what the user writes after the removal)."""
    masters, minions = hosts_of(inventory)
    path = pipeline.LOGS / "inventory-removed.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"masters = {masters!r}\n\nminions = {minions[:-1]!r}\n{pipeline.LAB_GROUP}")
    return str(path)


def run_pyinfra(inventory: str, script: str, log_name: str, *data: str) -> list:
    """pyinfra on ``script``; the (host, operation) pairs that changed something."""
    command = [*pipeline.PYINFRA, inventory, script, "-y", *(f"--data={d}" for d in data)]
    output, _ = pipeline.run(f"deploy ({log_name})", command, pipeline.LOGS / f"{log_name}.log")
    return pipeline.changed_operations(output)


def leftovers(host: str) -> list[str]:
    """What is left of kubelab on ``host`` (a lab machine's short name): services running, unit
    files, binaries, configuration and state, the kubelet's and containerd's contents (bind
    mounts in the lab), pods' mounts, interfaces, iptables chains."""
    services = " ".join(teardown.SERVICES)
    paths = " ".join(
        shlex.quote(p)
        for p in (*teardown.binaries(), *teardown.CONFIG, *teardown.STATE, cluster_mark.MARK)
        if "*" not in p and p not in ("/var/lib/kubelet", "/var/lib/containerd")
    )
    roots = "|".join(teardown.MOUNT_ROOTS)
    links = " ".join(catalog.devices(SimpleNamespace(**DEFAULTS)))  # the lab's settings
    script = (
        f"for u in {services}; do "
        "systemctl is-active -q $u 2>/dev/null && echo service $u running; "
        "[ -e /etc/systemd/system/$u.service ] && echo unit $u.service; done; "
        f'for p in {paths} /run/netns/cni-*; do [ -e "$p" ] && echo path $p; done; '
        "for d in /var/lib/kubelet /var/lib/containerd; do "
        '[ -n "$(ls -A $d 2>/dev/null)" ] && echo contents of $d; done; '
        f"findmnt -rn -o TARGET | grep -E '^({roots})' | sed 's/^/mount /'; "
        f"for l in {links}; do ip link show $l >/dev/null 2>&1 && echo link $l; done; "
        "for c in iptables ip6tables; do $c-save 2>/dev/null | "
        "grep -E '^:(KUBE|FLANNEL)-' | sed \"s/^:/$c chain /; s/ .*//\"; done; true"
    )
    return [line for line in ssh(host, script).splitlines() if line.strip()]


def start_service_loop(cluster_ip: str, on: str = MASTER) -> subprocess.Popen:
    """On the host ``on``, GET nginx's cluster IP every 0.2 s until STOP_FLAG exists (or the
    deadline); it prints ``ok=N failed=N`` at the end."""
    ssh(on, f"rm -f {STOP_FLAG}")
    loop = (
        f"end=$(( $(date +%s) + {LOOP_DEADLINE} )); ok=0; failed=0; "
        f'while [ ! -e {STOP_FLAG} ] && [ "$(date +%s)" -lt "$end" ]; do '
        f"if curl -s --max-time 2 http://{cluster_ip}/ | grep -q 'Welcome to nginx'; "
        "then ok=$((ok + 1)); else failed=$((failed + 1)); fi; sleep 0.2; done; "
        'echo "ok=$ok failed=$failed"'
    )
    return subprocess.Popen(
        [*pipeline.LAB, "ssh", on, loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_service_loop(loop: subprocess.Popen, on: str = MASTER) -> tuple[int, int]:
    ssh(on, f"touch {STOP_FLAG}")
    output, _ = loop.communicate(timeout=60)
    ssh(on, f"rm -f {STOP_FLAG}")
    counts = dict(part.split("=") for part in output.split() if "=" in part)
    if "ok" not in counts:
        raise pipeline.StepFailed(f"the request loop on {on} printed no counts: {output!r}")
    return int(counts["ok"]), int(counts["failed"])


def while_nginx_serves(
    what: str, action, on: str = MASTER, max_failed_share: float = MAX_FAILED_SHARE
) -> tuple[int, int, float, str]:
    """``action`` while a loop on the host ``on`` asks nginx's cluster IP and pods on the
    minions look its name up: (answered, failed, seconds, the lookups' summary); more than
    ``max_failed_share`` of either failed fails the scenario."""
    service = f"{kube.SMOKE} get service nginx -o jsonpath={{.spec.clusterIP}}"
    cluster_ip = kube.kubectl(service).strip()
    lookups = addons.DnsLookups(what)
    lookups.start()
    loop = start_service_loop(cluster_ip, on)
    started = time.monotonic()
    try:
        time.sleep(3)  # a few answers before
        action()
    finally:
        ok, failed = stop_service_loop(loop, on)
        looked_up = lookups.stop()
    total = ok + failed
    if not total or failed > max_failed_share * total:
        raise pipeline.StepFailed(
            f"nginx's cluster IP failed {failed} of {total} requests during {what} "
            f"(at most {max_failed_share:.0%} allowed)"
        )
    return ok, failed, time.monotonic() - started, looked_up


def remove_minion(inventory: str) -> str:
    """The last minion removed while nginx's cluster IP is asked from the master."""
    _, minions = hosts_of(inventory)
    if len(minions) < 2:
        raise pipeline.StepFailed("remove_minion needs an inventory of two minions or more")
    name = minions[-1][0]
    host = short(name)
    pipeline.smoke(inventory, "daytwo-smoke-before")  # nginx and its service are there
    ok, failed, seconds, looked_up = while_nginx_serves(
        "the removal",
        lambda: run_pyinfra(
            inventory, "deploys/remove_node.py", "daytwo-remove", f"remove_nodes={host}"
        ),
    )
    total = ok + failed
    nodes = kube.kubectl("get nodes -o name").split()
    if f"node/{name}" in nodes:
        raise pipeline.StepFailed(f"{name} is still a Node after its removal: {nodes}")
    left = leftovers(host)
    if left:
        raise pipeline.StepFailed(f"{host} still holds after its removal: {'; '.join(left)}")
    again = run_pyinfra(
        inventory, "deploys/remove_node.py", "daytwo-remove-again", f"remove_nodes={host}"
    )
    if again:
        raise pipeline.StepFailed(f"a second removal of {host} changed {again}")
    smaller = inventory_without_last_minion(inventory)
    changes, _ = pipeline.deploy(smaller, "daytwo-after-remove")
    if changes:
        raise pipeline.StepFailed(f"cluster.py without {host} changed {dict(changes)}")
    pipeline.smoke(smaller, "daytwo-smoke-after-remove")
    return (
        f"{host} removed in {seconds:.0f} s; nginx's cluster IP answered {ok} of {total} "
        f"requests meanwhile ({failed} failed); {looked_up}; Node gone, host clean, second "
        "removal and "
        f"cluster.py on {smaller} changed nothing"
    )


def master_ca() -> str:
    return ssh(MASTER, "cat /etc/kubernetes/pki/ca.crt")


def reset_and_rebuild(inventory: str) -> str:
    """Reset every host, list what is left (nothing expected), rebuild, the final test."""
    masters, minions = hosts_of(inventory)
    hosts = [short(name) for name, _ in masters + minions]
    ca = master_ca()
    run_pyinfra(inventory, "deploys/reset.py", "daytwo-reset", f"reset_cluster={CLUSTER_NAME}")
    left = {host: leftovers(host) for host in hosts}
    remaining = {host: items for host, items in left.items() if items}
    if remaining:
        listing = "; ".join(f"{host}: {', '.join(items)}" for host, items in remaining.items())
        raise pipeline.StepFailed(f"after the reset: {listing}")
    again = run_pyinfra(
        inventory, "deploys/reset.py", "daytwo-reset-again", f"reset_cluster={CLUSTER_NAME}"
    )
    if again:
        raise pipeline.StepFailed(f"a second reset changed {again}")
    changes, seconds = pipeline.deploy(inventory, "daytwo-rebuild")
    if not changes:
        raise pipeline.StepFailed("the rebuild after the reset changed nothing")
    if master_ca() != ca:
        raise pipeline.StepFailed("the rebuilt master holds another CA than before the reset")
    pipeline.smoke(inventory, "daytwo-smoke-rebuild")
    again_changes, _ = pipeline.deploy(inventory, "daytwo-rebuild-again")
    if again_changes:
        raise pipeline.StepFailed(f"a re-run after the rebuild changed {dict(again_changes)}")
    return (
        f"reset left nothing on {', '.join(hosts)}; a second reset changed nothing; rebuilt in "
        f"{seconds:.0f} s under the same CA, the final test passes, a re-run changes nothing"
    )
