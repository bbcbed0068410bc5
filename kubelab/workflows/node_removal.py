"""Removing minions from a running cluster (modern profile): deploys/remove_node.py.

``remove_nodes=NAME[,NAME]`` names them (inventory name or short name). Before anything runs,
the inventory, the settings and the request are checked (one line naming the setting and the
host): not the master, only minions of the inventory, never the last one unless
``remove_last_minion``; the master's kubectl must list the Nodes and its etcdctl read flannel's
leases. Then, each step on every host before the next:

1. master: ``kubectl cordon`` and ``kubectl drain`` of each node whose Node object exists
   (``--ignore-daemonsets --delete-emptydir-data``, at most ``drain_timeout`` seconds;
   ``drain_force`` adds ``--force --disable-eviction``); pods that cannot be evicted stop the
   run with one line naming the node and the pods;
2. master: the Node objects deleted;
3. each removed minion: kubelab taken off the host (``teardown``: services, pods, mounts, files,
   interfaces, iptables chains); a minion pyinfra cannot reach (powered off for good) is only
   drained and deleted, and one line says its own cleanup was skipped;
4. master: the minions' flannel leases deleted from etcd (``<flannel_etcd_prefix>/subnets/``,
   the keys whose value's ``PublicIP`` is a removed minion's address);
5. this machine: the minions' certificates and keys deleted from the local PKI.

Only hosts marked as this cluster's are touched (``cluster_mark``): the master or a removed
minion marked as another cluster's, or holding kubelab's files without a mark, stops the run
before any host is touched.

The other minions get no command. A second run for nodes already removed changes nothing.
"""

import json
import shlex

from pyinfra import host, logger
from pyinfra.api import deploy, operation
from pyinfra.operations import python

from .. import engine
from ..engine import bounds, shell
from ..engine.clients import REQUEST_TIMEOUT, etcdctl, etcdctl_options, kubectl
from ..engine.common import step
from ..engine.facts import EtcdPrefix, KubeNodes
from ..pki import cluster_mark
from ..pki.certificates import pki_directory
from ..settings import topology
from ..settings.defaults import DEFAULTS, fail, setting
from ..settings.validation import validate_inventory
from . import reset, teardown
from .removal_request import check_request, removed_hosts

SKIP_WAIT_FOR_DELETE = 60  # s past a pod's grace period: a dead node never confirms deletion
SKIP_WAIT_UNREACHABLE = 1  # s, for a node pyinfra cannot reach: only the pods' grace period

# What the master sees: the Node objects and flannel's leases ---------------------------------


def existing_nodes() -> list[str]:
    """The Node objects of the cluster (read on the master at the start)."""
    master = topology.master()
    found = master.get_fact(KubeNodes, kubectl=kubectl())
    if "error" in found:
        fail(
            "remove_nodes",
            master,
            f"kubectl on the master cannot list the Nodes ({found['error']}): the apiserver "
            f"must answer (each request at most {REQUEST_TIMEOUT} s) to drain a node",
        )
    return found["nodes"]


def subnets_prefix() -> str:
    return setting("flannel_etcd_prefix").rstrip("/") + "/subnets/"


def leases_of(addresses: set[str]) -> list[str]:
    """The keys of the flannel leases held by ``addresses`` (read on the master)."""
    master = topology.master()
    found = master.get_fact(
        EtcdPrefix,
        endpoint=topology.etcd_url(),
        prefix=subnets_prefix(),
        options=etcdctl_options(),
    )
    if "error" in found:
        fail(
            "remove_nodes",
            master,
            f"etcdctl on the master cannot read flannel's leases under {subnets_prefix()} from "
            f"etcd at {topology.etcd_url()} ({found['error']}; {bounds.ETCD_DIAL_TIMEOUT} s to "
            f"connect, {bounds.ETCD_COMMAND_TIMEOUT} s to answer)",
        )
    keys = []
    for key, value in found["values"].items():
        try:
            public_ip = json.loads(value).get("PublicIP")
        except (ValueError, AttributeError):
            continue
        if public_ip in addresses:
            keys.append(key)
    return sorted(keys)


# The master's steps ------------------------------------------------------------------------


def drain_command(node: str, unreachable: bool = False) -> str:
    """Shell: cordon and drain ``node``, bounded by ``drain_timeout``; when pods stay, one line
    naming the node, the pods and kubectl's error. ``unreachable``: its kubelet will never
    confirm a pod's end, waited for only as long as the pod's grace period."""
    k = kubectl()
    seconds = setting("drain_timeout")
    force = " --force --disable-eviction" if setting("drain_force") else ""
    quoted = shlex.quote(node)
    skip = SKIP_WAIT_UNREACHABLE if unreachable else SKIP_WAIT_FOR_DELETE
    drain = (
        f"{k} drain {quoted} --ignore-daemonsets --delete-emptydir-data --timeout={seconds}s "
        f"--skip-wait-for-delete-timeout={skip}{force}"
    )
    pods = (
        f"{k} get pods -A --field-selector spec.nodeName={quoted} -o jsonpath="
        "'{range .items[*]}{.metadata.namespace}/{.metadata.name} "
        '{.metadata.ownerReferences[0].kind}{"\\n"}{end}\''
    )
    hint = (
        ""
        if force
        else "; drain_force=True deletes them without eviction (--force --disable-eviction)"
    )
    detail = f" not evicted within {seconds} s (drain_timeout; kubectl drain --timeout): "
    left = (
        f'left=$({pods} 2>/dev/null | awk \'$2 != "DaemonSet" && $1 != "" '
        '{printf "%s%s", sep, $1; sep = ", "}\'); '
        "why=$(printf '%s\\n' \"$out\" | grep -E '^error|cannot|Cannot' | tail -n 1 | "
        "cut -c1-300); "
    )
    pods_left = shell.or_fail(
        f"kubelab: {host.name}: draining node {node}: pods ",
        '"${left:-(none listed)}"',
        shlex.quote(detail),
        '"${why:-$(printf %s "$out" | tail -n 1)}"',
        shlex.quote(hint),
        first=left,
    )
    cordon = shell.or_fail(f"kubelab: {host.name}: kubectl cordon {node}: ", shell.last_line("out"))
    return f"out=$({k} cordon {quoted} 2>&1) || {cordon}; out=$({drain} 2>&1) || {pods_left}"


@operation()
def drained(nodes: list[str], unreachable: tuple = ()):
    """Each of ``nodes`` cordoned and drained (those ``unreachable`` names: see drain_command)."""
    for node in nodes:
        yield drain_command(node, node in unreachable)


@operation()
def nodes_deleted(nodes: list[str]):
    """The Node objects of ``nodes`` deleted."""
    k = kubectl()
    for node in nodes:
        quoted = shlex.quote(node)
        problem = f"kubelab: {host.name}: kubectl delete node {node}: "
        yield (
            f"out=$({k} delete node {quoted} --ignore-not-found --timeout=60s 2>&1) || "
            f"{shell.or_fail(problem, shell.last_line('out'))}"
        )


@operation()
def leases_deleted(keys: list[str]):
    """flannel's leases under ``keys`` deleted from etcd."""
    endpoint, delete = topology.etcd_url(), f"{etcdctl()} del"
    for key in keys:
        problem = (
            f"kubelab: {host.name}: deleting flannel's lease {key}: etcd at {endpoint} did not "
            f"answer ({bounds.ETCD_DIAL_TIMEOUT} s to connect, {bounds.ETCD_COMMAND_TIMEOUT} s "
            "to answer): "
        )
        yield (
            f"err=$({delete} {shlex.quote(key)} 2>&1 >/dev/null) || "
            f"{shell.or_fail(problem, shell.last_line('err'))}"
        )


def certificate_files(target) -> list:
    """The removed minion's own files in the local PKI (certificates.deploy_kubelet_certificates,
    kubelet_kubeconfig, kube-proxy's): its kubelet's serving and client certificates, its
    kube-proxy's, and their keys."""
    short = topology.short_name(target)
    directory = pki_directory()
    return [
        directory / f"{stem}.{suffix}"
        for stem in (f"kubelet-{short}", f"kubelet-serving-{short}", f"kube-proxy-{short}")
        for suffix in ("crt", "key")
    ]


def master_done(current) -> bool:
    """Whether the master drained the nodes and deleted their Node objects (at execution):
    a minion is taken apart only then."""
    operations = engine.run_cache("removal", current).get("master steps", ())
    return bool(operations) and all(
        op.is_complete() and op.did_succeed(_raise_if_not_complete=False) for op in operations
    )


def unreachable_minions(removed: list) -> list:
    """The removed minions pyinfra cannot reach (asked once per run), named in one line; they
    do not fail the run (pyinfra's CLI counts a host it could not connect to as failed):
    removing a dead minion is what was asked."""
    dead = [target for target in removed if topology.unreachable(target)]
    if not dead:
        return dead
    names = ", ".join(target.name for target in dead)
    logger.warning(
        f"kubelab: {names} unreachable: drained and deleted from the cluster by the master, "
        "its own cleanup skipped (kubelab's services and files stay on it: wipe it before "
        "using it again)"
    )
    engine.current_state().failed_hosts.difference_update(dead)
    return dead


def delete_local_files(state, host, paths):
    """python.call: the removed minions' PKI files deleted on this machine."""
    for path in paths:
        path.unlink(missing_ok=True)
    logger.info(f"kubelab: deleted from the local PKI: {', '.join(p.name for p in paths)}")


@deploy("Remove minions", data_defaults=DEFAULTS)
def deploy_remove_node():
    """Remove the minions ``remove_nodes`` names from the cluster (see the module's text)."""
    engine.deploy_file_is_no_module()
    removed = removed_hosts()
    # read before unreachable_minions takes them off pyinfra's failed hosts
    offline = engine.per_run(
        "offline hosts", lambda: [t for t in topology.cluster_hosts() if topology.unreachable(t)]
    )
    # the others: only their OS is read; a powered-off minion: nothing
    touched = [topology.master(), *removed]
    for target in sorted(topology.cluster_hosts(), key=lambda target: target != host):
        if target not in offline:
            facts = reset.first_facts(target)
            engine.prefetch(target, facts if target in touched else facts[:1])
    validate_inventory(unreachable_ok=True)
    if not topology.is_cluster_host():  # validation names it
        return
    check_request()
    dead = engine.per_run("unreachable minions", lambda: unreachable_minions(removed))
    cluster_mark.refuse_others(
        [target for target in touched if target not in dead],
        reset.this_cluster(),
        "removed",
        teardown.holds_kubelab,
    )
    nodes = [topology.node_name(target) for target in removed]
    names = ", ".join(nodes)
    master = topology.is_first_master()  # the first master drains and deletes (several: one)
    existing, keys, files = [], [], []
    if master:  # what is left to do, read before anything changes
        existing = [node for node in existing_nodes() if node in nodes]
        keys = leases_of({topology.address(target) for target in removed})
        files = [path for t in removed for path in certificate_files(t) if path.exists()]
    label = f"Cordon and drain {names}"
    unreachable = tuple(topology.node_name(target) for target in dead)
    drain = step(
        master and bool(existing), drained, name=label, nodes=existing, unreachable=unreachable
    )
    bounds.waits_on(
        drain,
        label,
        f"the pods to leave (kubectl drain, at most {setting('drain_timeout')} s: drain_timeout)",
    )
    delete = step(
        master and bool(existing), nodes_deleted, name=f"Delete the Node of {names}", nodes=existing
    )
    current = engine.current_state()
    if master:  # the minions' cleanup waits on them (master_done)
        engine.run_cache("removal", current)["master steps"] = (drain, delete)
    teardown.clean_host(host in removed, only_if=lambda: master_done(current))
    step(
        master and bool(keys),
        leases_deleted,
        name=f"Delete the flannel leases of {names} from etcd",
        keys=keys,
    )
    step(
        master and bool(files),
        python.call,
        name=f"Delete the certificates of {names} from the local PKI",
        function=delete_local_files,
        paths=files,
    )
