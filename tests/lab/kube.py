"""The lab's cluster as kubectl on the master sees it (for e2e.py and demo.py)."""

import json
import subprocess
import time

import pipeline

MASTER = "kubemaster"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig --request-timeout=20s"
# the smoke test's namespace (kubelab/workflows/smoke_test.py): nginx is there
SMOKE = "-n kubelab-smoke"


def kubectl(args: str) -> str:
    command = [*pipeline.LAB, "ssh", MASTER, f"{KUBECTL} {args}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise pipeline.StepFailed(
            f"kubectl {args} failed: {result.stderr.strip()}; the apiserver's last words:\n"
            + apiserver_journal()
        )
    return result.stdout


def apiserver_journal(lines: int = 15) -> str:
    command = f"journalctl -u kube-apiserver -n {lines} --no-pager -o cat"
    result = subprocess.run([*pipeline.LAB, "ssh", MASTER, command], capture_output=True, text=True)
    return result.stdout.strip()


def wait_ready(timeout: float = 120) -> float:
    """Seconds until the apiserver's /readyz passes (after etcd restarted under it, say)."""
    started = time.monotonic()
    command = [*pipeline.LAB, "ssh", MASTER, f"{KUBECTL} get --raw /readyz"]
    while True:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode == 0 and result.stdout.strip() == "ok":
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise pipeline.StepFailed(
                f"the apiserver's /readyz did not pass within {timeout:g} s: "
                f"{(result.stdout + result.stderr).strip()}\n{apiserver_journal()}"
            )
        time.sleep(2)


def nginx_pods() -> dict[str, dict]:
    """name -> node, phase, restarts, uid of every pod of the smoke test's nginx RC, but those
    stopping (their preStop keeps them listed for a few seconds after a scale-down)."""
    pods = {}
    for pod in json.loads(kubectl(f"{SMOKE} get pods -l app=nginx -o json"))["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        statuses = pod["status"].get("containerStatuses", [])
        pods[pod["metadata"]["name"]] = {
            "node": pod["spec"].get("nodeName", ""),
            "phase": pod["status"]["phase"],
            "restarts": sum(s["restartCount"] for s in statuses),
            "uid": pod["metadata"]["uid"],
        }
    return pods


def pods_kept(before: dict, after: dict) -> tuple[bool, str]:
    """Whether the same pods still run, none restarted."""
    same = before.keys() == after.keys() and all(
        after[n]["uid"] == before[n]["uid"] for n in before
    )
    running = all(p["phase"] == "Running" and p["restarts"] == 0 for p in after.values())
    states = ", ".join(f"{n} {p['phase']} restarts={p['restarts']}" for n, p in after.items())
    return same and running, states


def scale_until_on(node: str, replicas: int, timeout: float = 180) -> str:
    """Scale the nginx RC until one of its pods runs on ``node``; then back to 3."""
    kubectl(f"{SMOKE} scale rc nginx --replicas={replicas}")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            on_node = [
                n for n, p in nginx_pods().items() if p["node"] == node and p["phase"] == "Running"
            ]
            if on_node:
                return on_node[0]
            time.sleep(3)
        raise pipeline.StepFailed(f"no nginx pod Running on {node} after {timeout:g} s")
    finally:
        kubectl(f"{SMOKE} scale rc nginx --replicas=3")


def cluster_state() -> str:
    """The Nodes, every pod and the last events, as the master's kubectl sees them (printed
    when the lab end to end fails, before the lab goes down); what kubectl said if it cannot."""
    commands = (
        "get nodes -o wide",
        "get pods -A -o wide",
        "get events -A --sort-by=.lastTimestamp",
    )
    parts = []
    for args in commands:
        command = [*pipeline.LAB, "ssh", MASTER, f"{KUBECTL} {args} 2>&1 | tail -n 40"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
            parts.append(f"$ kubectl {args}\n{result.stdout.strip()}{result.stderr.strip()}")
        except subprocess.TimeoutExpired:
            parts.append(f"$ kubectl {args}\n(no answer within 60 s)")
    return "\n".join(parts)
