"""Faults the deploy must survive, on the lab (run by e2e.py): each returns what it saw or
raises StepFailed."""

import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager, suppress

import cgroups
import kube
import nodes
import pipeline
import util

MASTER, VICTIM = "kubemaster", "kubeminion2"
FQDN = ".traininglab.com"
STALLED_PORT = 3143
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"  # pyinfra's "updated lately" mark
KUBE_PROXY_SERVICE = "kube-proxy running and enabled, restarted if its configuration changed"


def ssh(host: str, command: str, check: bool = True) -> str:
    result = subprocess.run([*pipeline.LAB, "ssh", host, command], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise pipeline.StepFailed(f"{host}: {command!r} failed: {result.stderr.strip()}")
    return result.stdout


def deploy_in_background(inventory: str, log_name: str, *data: str):
    log = pipeline.LOGS / f"{log_name}.log"
    handle = log.open("w")
    process = subprocess.Popen(
        pipeline.deploy_command(inventory, *data),
        cwd=pipeline.REPO,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    return process, log


def wait_for_line(log, text: str, process, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise pipeline.StepFailed(f"the deploy never reached {text!r} ({log})")
        time.sleep(0.2)


def minion_stopped_during_deploy(inventory: str) -> str:
    """The victim powers off while the master's part runs: the run fails naming it, the others
    finish; once it is back, a re-run converges.

    pyinfra is held (SIGSTOP) from the master's first operation until the victim is down: a
    host vanishing in the middle of pyinfra opening an SSH channel to it makes pyinfra 3.10
    itself stop with paramiko's EOFError, and the master's part of a re-run is now too short
    to outlast a shutdown.
    """
    ssh(MASTER, "rm -f /etc/kubernetes/kube-scheduler.yaml")  # work for the master's part
    for host in ("kubeminion1", VICTIM):  # and for the minions' part
        ssh(host, "rm -f /etc/kubernetes/kubelet-config.yaml")
    process, log = deploy_in_background(inventory, "fault-minion-stopped")
    wait_for_line(log, "Starting operation: Kubernetes cluster | Master |", process)
    process.send_signal(signal.SIGSTOP)
    try:
        how = power_off(VICTIM)  # over before pyinfra goes on: `up` must find it stopped
    finally:
        process.send_signal(signal.SIGCONT)
    rc = process.wait(timeout=600)
    output = log.read_text()
    outcome = {
        (host.split(".")[0], result)
        for host, op, result in pipeline.results(output)
        if op.endswith(KUBE_PROXY_SERVICE)
    }
    if rc == 0:
        raise pipeline.StepFailed(f"expected a failed run ({log})")
    if f"[{VICTIM}{FQDN}] Error" not in output:
        raise pipeline.StepFailed(f"the run names no error on {VICTIM} ({log})")
    if ("kubeminion1", "No changes") not in outcome and ("kubeminion1", "Success") not in outcome:
        raise pipeline.StepFailed(f"kubeminion1 did not finish after {VICTIM} stopped ({log})")
    pipeline.lab_up(inventory)
    changes, _ = pipeline.deploy(inventory, "fault-minion-back")
    again, _ = pipeline.deploy(inventory, "fault-minion-converged")
    if again:
        raise pipeline.StepFailed(f"after {VICTIM} returned, a second re-run changed {again}")
    return f"{VICTIM} {how}; exit {rc}, {VICTIM} named, kubeminion1 finished; once back, converged"


def power_off(host: str, timeout: float = 90) -> str:
    """`systemctl poweroff` inside ``host``; one still up after ``timeout`` seconds (seen now
    and then with pods) loses its power instead: its processes killed, as `lab.py down` does,
    its disk kept."""
    ssh(host, "systemctl poweroff --no-block", check=False)
    if util.wait_until(lambda: not nodes.is_running(host), timeout, 0.5):
        return "powered off"
    cgroups.kill_cgroup(host)
    if not util.wait_until(lambda: not nodes.is_running(host), 15, 0.5):
        raise pipeline.StepFailed(f"{host} still runs after its power was cut")
    return f"lost its power ({timeout:g} s without powering off)"


def deploy_killed_midway(inventory: str) -> str:
    """pyinfra killed while the master's services are being set up; the re-run converges and
    leaves nothing twice (no /etc/hosts line, no flannel lease)."""
    ssh(MASTER, "rm -f /etc/kubernetes/kube-scheduler.yaml /etc/default/etcd")
    process, log = deploy_in_background(inventory, "fault-killed")
    wait_for_line(log, "Starting operation: Kubernetes cluster | Master |", process)
    time.sleep(2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    pipeline.deploy(inventory, "fault-killed-rerun")
    again, _ = pipeline.deploy(inventory, "fault-killed-converged")
    if again:
        raise pipeline.StepFailed(f"the run after the killed one left work: {again}")
    for host in (MASTER, "kubeminion1", VICTIM):
        lines = [line for line in ssh(host, "cat /etc/hosts").splitlines() if FQDN in line]
        if len(lines) != len(set(lines)):
            raise pipeline.StepFailed(f"{host}: /etc/hosts holds a line twice: {lines}")
    return "re-run converged; /etc/hosts lines unique"


def etcd_restarting_while_config_written(inventory: str) -> str:
    """etcd restarts over and over while a new flannel network is written: the config in etcd
    is right afterwards (the specs read it back)."""
    flapping = subprocess.Popen(
        [
            *pipeline.LAB,
            "ssh",
            MASTER,
            "for i in $(seq 8); do systemctl restart etcd; sleep 1.5; done",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pipeline.deploy(inventory, "fault-etcd-flapping", "flannel_network=10.30.0.0/16")
    finally:
        flapping.wait(timeout=120)
    stored = ssh(MASTER, "ETCDCTL_API=3 etcdctl get /atomic.io/network/config --print-value-only")
    if '"10.30.0.0/16"' not in stored:
        raise pipeline.StepFailed(f"flannel config after etcd restarts: {stored!r}")
    pipeline.deploy(inventory, "fault-etcd-restore")
    ready = kube.wait_ready()  # the apiserver rides out etcd's restarts in its own time
    after_network_change(inventory)
    return f"config written through 8 etcd restarts, restored; apiserver ready {ready:.0f} s later"


def after_network_change(inventory: str) -> None:
    """What docs/operations.md asks after a pod network change: each minion's CNI bridge
    still has its address from the old lease, and the pods theirs: drop the bridge, recreate
    the pods (of every namespace: the smoke test's, the add-ons')."""
    for host in ("kubeminion1", VICTIM):
        ssh(host, "ip link delete cni0 2>/dev/null; true")
    kube.kubectl("delete pods --all --all-namespaces --wait=false")


def hand_edited_config(inventory: str) -> str:
    """A config file edited on one host: the next run restores it and restarts only its
    service, on that host only."""
    path = "/etc/kubernetes/kube-proxy-config.yaml"
    ssh("kubeminion1", f"echo '# edited by hand' >> {path}")
    output, _ = pipeline.run(
        "deploy", pipeline.deploy_command(inventory), pipeline.LOGS / "fault-hand-edit.log"
    )
    changed = pipeline.changed_operations(output)
    expected = {"kube-proxy | Put files in place", f"kube-proxy | {KUBE_PROXY_SERVICE}"}
    found = {" | ".join(op.split(" | ")[-2:]) for _, op in changed}
    hosts = {host for host, _ in changed}
    if found != expected or hosts != {f"kubeminion1{FQDN}"}:
        raise pipeline.StepFailed(f"expected {expected} on kubeminion1 only, got {changed}")
    if "edited by hand" in ssh("kubeminion1", f"cat {path}"):
        raise pipeline.StepFailed(f"{path} was not restored")
    return "restored; only kube-proxy on kubeminion1 restarted"


@contextmanager
def stalled_source(address: str, port: int):
    """A package source that accepts connections and never answers (on the lab's bridge)."""
    listener = socket.create_server((address, port))
    listener.settimeout(0.5)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            with suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])  # kept open, never read, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{port}/"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def package_source_stalls(inventory: str) -> str:
    """apt on one minion also reads a source that never answers: the deploy fails within its
    bound naming the host and the source, the other hosts finish; once the source is gone a
    re-run converges."""
    host, timeout = "kubeminion1", 5
    sources = "/etc/apt/sources.list.d/lab-stalled.list"
    with stalled_source(pipeline.GATEWAY, STALLED_PORT) as url:
        ssh(host, f"echo 'deb [trusted=yes] {url} ./' > {sources}; rm -f {APT_STAMP}")
        started = time.monotonic()
        try:
            pipeline.deploy(inventory, "fault-stalled-source", f"network_timeout={timeout}")
        except pipeline.StepFailed:
            pass
        else:
            raise pipeline.StepFailed("the deploy passed although a package source never answers")
        seconds = time.monotonic() - started
    output = (pipeline.LOGS / "fault-stalled-source.log").read_text()
    named = [
        line
        for line in output.splitlines()
        if f"[{host}{FQDN}]" in line and url.rstrip("/") in line
    ]
    if not named:
        raise pipeline.StepFailed(f"no line names {host} and {url} (fault-stalled-source.log)")
    others = {h for h, _, result in pipeline.results(output) if result == "Error"}
    if others != {f"{host}{FQDN}"}:
        raise pipeline.StepFailed(f"expected errors on {host} only, got {sorted(others)}")
    ssh(host, f"rm -f {sources}")
    pipeline.deploy(inventory, "fault-stalled-source-gone")
    again, _ = pipeline.deploy(inventory, "fault-stalled-source-converged")
    if again:
        raise pipeline.StepFailed(f"after the source was removed, a re-run changed {again}")
    return f"failed in {seconds:.0f} s naming {host} and {url}; converged once it was gone"
