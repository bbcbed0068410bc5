"""A cluster's identity on the lab (for e2e.py, just before daytwo.reset_and_rebuild).

reset_refuses_a_host_not_marked_as_this_clusters: the cluster mark on the first minion names
another cluster, then it is gone; each time deploys/reset.py stops with the one line naming the
minion and both identities, runs no operation on any host, and every kubelab service still
runs on every host. The minion's mark is put back as it was (byte for byte, mode 0600) after.
"""

import shlex
import subprocess
from pathlib import Path

import pipeline
from daytwo import CLUSTER_NAME, hosts_of, short
from faults import ssh

from kubelab.pki import pki_files
from kubelab.pki.cluster_mark import MARK

SAVED = "/root/kubelab-cluster.saved"
ANOTHER = ("another", "0" * 64)
SERVICES = {
    "master": ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    "minion": ("containerd", "flanneld", "kubelet", "kube-proxy"),
}
PKI_DIR = Path(f"~/.kubelab/{CLUSTER_NAME}/pki").expanduser()  # pki_dir's default


def refused_reset(inventory: str, log_name: str, expected: str) -> None:
    """deploys/reset.py fails with ``expected`` in its output and runs no operation."""
    command = [*pipeline.PYINFRA, inventory, "deploys/reset.py", "-y"]
    command.append(f"--data=reset_cluster={CLUSTER_NAME}")
    log = pipeline.LOGS / f"{log_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            command, cwd=pipeline.REPO, capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        raise pipeline.StepFailed(f"{log_name}: reset.py did not stop within 300 s") from None
    output = result.stdout + result.stderr
    log.write_text(output)
    if result.returncode == 0:
        raise pipeline.StepFailed(f"{log_name}: reset.py succeeded (output in {log})")
    if expected not in output:
        raise pipeline.StepFailed(f"{log_name}: no line {expected!r} (output in {log})")
    if pipeline.OPERATION.search(output) or pipeline.changed_operations(output):
        raise pipeline.StepFailed(f"{log_name}: reset.py ran operations (output in {log})")


def services_run(inventory: str) -> None:
    masters, minions = hosts_of(inventory)
    for role, hosts in (("master", masters), ("minion", minions)):
        for name, _ in hosts:
            states = ssh(short(name), f"systemctl is-active {' '.join(SERVICES[role])}", False)
            if states.split() != ["active"] * len(SERVICES[role]):
                listing = dict(zip(SERVICES[role], states.split(), strict=False))
                raise pipeline.StepFailed(f"after the refused reset, on {name}: {listing}")


def reset_refuses_a_host_not_marked_as_this_clusters(inventory: str) -> str:
    _, minions = hosts_of(inventory)
    name = minions[0][0]
    host = short(name)
    ours = f"'{CLUSTER_NAME}' (CA sha256 {pki_files.ca_fingerprint(PKI_DIR)})"
    another = f"'{ANOTHER[0]}' (CA sha256 {ANOTHER[1]})"
    ssh(host, f"cp -p {MARK} {SAVED}")
    try:
        lines = shlex.join([f"cluster_name={ANOTHER[0]}", f"ca_sha256={ANOTHER[1]}"])
        ssh(host, f"printf '%s\\n' {lines} > {MARK}")
        refused_reset(
            inventory,
            "identity-reset-another-mark",
            f"kubelab: {name} is marked as cluster {another} ({MARK}), not as this cluster "
            f"{ours}: nothing reset",
        )
        services_run(inventory)
        ssh(host, f"rm -f {MARK}")
        refused_reset(
            inventory,
            "identity-reset-no-mark",
            f"kubelab: {name} holds kubelab's files but no cluster mark ({MARK}), so it may "
            f"belong to another cluster, not to this cluster {ours}: nothing reset",
        )
        services_run(inventory)
    finally:
        ssh(host, f"cp -p {SAVED} {MARK} && rm -f {SAVED}")
    return (
        f"reset.py refused {host} marked as cluster {ANOTHER[0]!r}, then {host} without a "
        "mark, each in one line naming both identities, before any operation; every service "
        "still runs; the mark restored"
    )
