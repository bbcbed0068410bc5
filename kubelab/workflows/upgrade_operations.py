"""The remote operations of an upgrade (deploys/upgrade.py), each bounded and failing with one
line naming the host and what it waited on: etcd's snapshot, the restarts, the master's waits
(the apiserver's ``/readyz``, kube-proxy's ``/livez``, a Node Ready at its new version), a
minion's drain and uncordon. Where and in which order they run: ``upgrade_steps``.
"""

import shlex

from pyinfra import host, logger
from pyinfra.api import operation

from ..components import catalog
from ..engine import bounds
from ..engine.clients import etcdctl_to_member, kubectl
from ..engine.facts import KubeVersions
from ..engine.shell import fail, last_line, or_fail
from ..settings import topology
from .node_removal import drain_command

REMOTE_BACKUPS = "/var/lib/kubelab/backups"  # on the master, until the snapshot is downloaded
WAIT_INTERVAL = 5  # seconds between two checks of a bounded wait
PROXY_LIVEZ = f"http://127.0.0.1:{catalog.port('kube-proxy', 'health port')}/livez"


# etcd's snapshot -------------------------------------------------------------------------


@operation()
def etcd_snapshot(path: str):
    """etcd's snapshot saved on the master (mode 0600), bounded by ``operation_timeout``."""
    seconds = bounds.operation_timeout()
    problem = (
        f"kubelab: {host.name}: saving etcd's snapshot from {topology.etcd_member_url()} (at most "
        f"{seconds} s: operation_timeout): "
    )
    directory = shlex.quote(path.rsplit("/", 1)[0])
    cleanup = f"rm -f {shlex.quote(path)}*; "
    yield (
        f"umask 077 && mkdir -p {directory} && err=$(timeout {seconds} env "
        f"{etcdctl_to_member()} snapshot save {shlex.quote(path)} 2>&1 >/dev/null) || "
        + or_fail(problem, last_line("err"), first=cleanup)
    )


@operation()
def removed(path: str):
    """The snapshot's copy on the master removed once it is on this machine."""
    yield f"rm -f {shlex.quote(path)}"


def backup_directory(state, host, directory):
    """python.call: the local backups directory, mode 0700."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)


def backup_kept(state, host, path):
    """python.call: the downloaded snapshot made 0600, and said where it is."""
    path.chmod(0o600)
    logger.info(f"kubelab: etcd snapshot saved to {path} (before the upgrade)")


# Restarts and the master's waits -----------------------------------------------------------


@operation()
def restarted(services, planned: list[str]):
    """Services restarted in order: those ``services()`` names at execution (None before
    execution, pyinfra without -y: then ``planned``)."""
    names = services()
    if names is None:
        names = planned
    if not names:
        host.noop("no service runs an older binary")
        return
    for name in names:
        yield f"systemctl restart {name}.service"


@operation()
def api_ready(seconds: int):
    """The apiserver answers ``/readyz`` with ok, within ``seconds``."""
    k = kubectl()
    problem = (
        f"kubelab: {host.name}: the apiserver is not ready within {seconds} s of its upgrade "
        "(upgrade_timeout; kubectl get --raw /readyz): "
    )
    yield (
        f"end=$(( $(date +%s) + {seconds} )); "
        f'until out=$({k} get --raw /readyz 2>&1) && [ "$out" = ok ]; do '
        f'if [ "$(date +%s)" -ge "$end" ]; then {fail(problem, last_line("out"))}; fi; '
        f"sleep {WAIT_INTERVAL}; done"
    )


@operation()
def proxy_live(seconds: int):
    """kube-proxy answers ``/livez`` within ``seconds``. On the master it first looks for a
    Node it will never have (30 s) and routes by its old rules meanwhile: the minions' turns,
    which move pods, wait for it."""
    problem = (
        f"kubelab: {host.name}: kube-proxy does not answer {PROXY_LIVEZ} within {seconds} s "
        "of its upgrade (upgrade_timeout)"
    )
    yield (
        f"end=$(( $(date +%s) + {seconds} )); "
        f"until curl -fsS --max-time 2 -o /dev/null {PROXY_LIVEZ} 2>/dev/null; do "
        f'if [ "$(date +%s)" -ge "$end" ]; then {fail(problem)}; fi; '
        f"sleep {WAIT_INTERVAL}; done"
    )


# A minion's drain and uncordon -------------------------------------------------------------


@operation()
def drained_for_upgrade(node: str, version: str, keep_cordoned: bool = False):
    """``node`` marked as being upgraded (the annotation tells a re-run to finish its turn),
    then cordoned and drained as deploys/remove_node.py does (``drain_timeout``,
    ``drain_force``)."""
    k = kubectl()
    quoted = shlex.quote(node)
    problem = f"kubelab: {host.name}: kubectl annotate node {node}: "
    yield (
        f"out=$({k} annotate node {quoted} --overwrite "
        f"{KubeVersions.ANNOTATION}={shlex.quote(version)}"
        f"{f' {KubeVersions.KEEP_CORDONED}=true' if keep_cordoned else ''} 2>&1) || "
        + or_fail(problem, last_line("out"))
    )
    yield drain_command(node)


@operation()
def node_upgraded(node: str, version: str, seconds: int, keep_cordoned: bool = False):
    """``node`` Ready at ``version`` within ``seconds``, then uncordoned (``keep_cordoned``:
    left cordoned, as the operator had it), its annotations removed."""
    k = kubectl()
    quoted = shlex.quote(node)
    fields = "'{.status.nodeInfo.kubeletVersion} {.status.conditions[?(@.type==\"Ready\")].status}'"
    problem = (
        f"kubelab: {host.name}: upgrading node {node}: not Ready at {version} within "
        f"{seconds} s (upgrade_timeout); it stays cordoned: "
    )
    uncordon = f"kubelab: {host.name}: kubectl uncordon {node} (and its annotation): "
    yield (
        f"end=$(( $(date +%s) + {seconds} )); "
        f"until out=$({k} get node {quoted} -o jsonpath={fields} 2>&1) && "
        f'[ "$out" = {shlex.quote(f"{version} True")} ]; do '
        f'if [ "$(date +%s)" -ge "$end" ]; then {fail(problem, last_line("out"))}; fi; '
        f"sleep {WAIT_INTERVAL}; done; "
        + ("" if keep_cordoned else f"out=$({k} uncordon {quoted} 2>&1) && ")
        + f"out=$({k} annotate node {quoted} {KubeVersions.ANNOTATION}-"
        f"{f' {KubeVersions.KEEP_CORDONED}-' if keep_cordoned else ''} 2>&1) || "
        + or_fail(uncordon, last_line("out"))
    )
