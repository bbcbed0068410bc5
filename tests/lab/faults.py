"""Faults the deploy must survive, on the lab (run by e2e.py): each returns what it saw or
raises StepFailed."""

import signal
import subprocess
import time

import pipeline

MASTER, VICTIM = "kubemaster", "kubeminion2"
FQDN = ".traininglab.com"


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

    (It goes down while the victim has no command in flight: a host vanishing in the middle of
    pyinfra opening an SSH channel makes pyinfra 3.10 itself stop with paramiko's EOFError.)
    """
    ssh(MASTER, "rm -f /etc/kubernetes/kube-scheduler.yaml")  # work for the master's part
    for host in ("kubeminion1", VICTIM):  # and for the minions' part
        ssh(host, "rm -f /etc/kubernetes/kubelet-config.yaml")
    process, log = deploy_in_background(inventory, "fault-minion-stopped")
    wait_for_line(log, "Starting operation: Kubernetes cluster | Master |", process)
    ssh(VICTIM, "systemctl poweroff", check=False)
    rc = process.wait(timeout=600)
    output = log.read_text()
    outcome = {
        (host.split(".")[0], result)
        for host, op, result in pipeline.results(output)
        if op.endswith("Ensure kube-proxy is running and enabled")
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
    return f"exit {rc}, {VICTIM} named, kubeminion1 finished; once back, converged"


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
    return "config written through 8 etcd restarts, then restored"


def hand_edited_config(inventory: str) -> str:
    """A config file edited on one host: the next run restores it and restarts only its
    service, on that host only."""
    path = "/etc/kubernetes/kube-proxy-config.yaml"
    ssh("kubeminion1", f"echo '# edited by hand' >> {path}")
    output, _ = pipeline.run(
        "deploy", pipeline.deploy_command(inventory), pipeline.LOGS / "fault-hand-edit.log"
    )
    changed = pipeline.changed_operations(output)
    expected = {f"Configure {path}", "Restart kube-proxy if its configuration changed"}
    found = {op.rsplit(" | ", 1)[-1] for _, op in changed}
    hosts = {host for host, _ in changed}
    if found != expected or hosts != {f"kubeminion1{FQDN}"}:
        raise pipeline.StepFailed(f"expected {expected} on kubeminion1 only, got {changed}")
    if "edited by hand" in ssh("kubeminion1", f"cat {path}"):
        raise pipeline.StepFailed(f"{path} was not restored")
    return "restored; only kube-proxy on kubeminion1 restarted"
