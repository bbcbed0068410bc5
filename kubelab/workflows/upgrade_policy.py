"""What an upgrade may do (deploys/upgrade.py), checked before any host is touched: the modern
profile only, every host at one Kubernetes release, and the step from the running versions
(read on the master: the apiserver's ``/version`` through kubectl, every Node's kubelet and
container runtime, ``etcd --version``) allowed by upstream's version skew policy: one minor
version at a time, no kubelet newer than the apiserver (nor more than three minors older), no
downgrade unless ``upgrade_allow_downgrade`` (then of a patch release only). The first problem
stops the run with one line naming the setting and the host.
"""

import re

from .. import engine
from ..engine.clients import kubectl
from ..engine.facts import KubeVersions
from ..settings import topology
from ..settings.defaults import fail, setting
from ..settings.profiles import require_modern

ETCD = "/usr/local/bin/etcd"
RELEASE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
# What --serial and --no-wait would break (refusals.require_hosts_in_step).
IN_STEP = ("deploys/upgrade.py", "it drains and upgrades one minion at a time")
# The skew policy: a kubelet may be this many minor versions older than the apiserver.
KUBELET_MAX_MINORS_BEHIND = 3


# Versions ----------------------------------------------------------------------------------


def release(value) -> tuple[int, int, int] | None:
    """``v1.35.8`` (or ``3.6.14``, ``containerd://2.2.9``) -> (1, 35, 8); None if none."""
    match = RELEASE.search(str(value or ""))
    return tuple(int(part) for part in match.groups()) if match else None


def shown(version: tuple) -> str:
    return "v" + ".".join(str(part) for part in version)


def minor(version: tuple) -> str:
    return f"{version[0]}.{version[1]}"


def running_versions() -> dict:
    """What the master reads: the apiserver's, the Nodes', etcd's versions (once per run)."""
    return engine.fact(KubeVersions, topology.master(), kubectl=kubectl(), etcd=ETCD)


def step_problem(component: str, running: tuple, wanted: tuple, allow_downgrade: bool):
    """Why going from ``running`` to ``wanted`` is not allowed, or None."""
    if wanted == running:
        return None
    if wanted[0] != running[0]:
        return (
            f"{shown(running)} -> {shown(wanted)} changes the major version of {component}: "
            "not supported"
        )
    if wanted < running:
        if not allow_downgrade:
            return (
                f"{shown(wanted)} is older than {shown(running)}, which {component} runs: a "
                "downgrade (set upgrade_allow_downgrade=True to install an older patch release)"
            )
        if wanted[:2] != running[:2]:
            return (
                f"{shown(wanted)} would take {component} back a minor version from "
                f"{shown(running)} ({minor(running)} -> {minor(wanted)}), which upstream does not "
                "support even with upgrade_allow_downgrade: restore the etcd snapshot an upgrade "
                "saved instead"
            )
        return None
    if wanted[1] > running[1] + 1:
        return (
            f"{shown(running)} -> {shown(wanted)} skips a minor version of {component}: upgrade "
            f"one minor at a time ({minor(running)} -> {running[0]}.{running[1] + 1} first)"
        )
    return None


def check_request() -> dict:
    """The upgrade is possible: modern, the running versions readable and the step allowed.
    Returns the running versions."""
    master = topology.master()
    require_modern(
        "kube_version",
        master,
        "upgrading",
        ", built from CentOS 7's packages at the versions they hold",
    )
    wanted_text = setting("kube_version", master)
    for target in topology.minions():
        if setting("kube_version", target) != wanted_text:
            fail(
                "kube_version",
                target,
                f"{setting('kube_version', target)!r} differs from {wanted_text!r} on the master "
                f"{master.name}: an upgrade takes every host to one Kubernetes release",
            )
    found = running_versions()
    if found["error"] or not found["api"]:
        fail(
            "kube_version",
            master,
            f"kubectl on the master cannot read the apiserver's /version and the Nodes "
            f"({found['error'] or 'no version in the answer'}): the apiserver must answer (each "
            "request at most 20 s) to upgrade the cluster",
        )
    allow = setting("upgrade_allow_downgrade", master)
    api, wanted = release(found["api"]), release(wanted_text)
    problem = step_problem("the apiserver", api, wanted, allow)
    if problem:
        fail("kube_version", master, problem)
    for target in topology.minions():
        node = topology.node_name(target)
        info = found["nodes"].get(node)
        if info is None:
            fail(
                "kube_version",
                target,
                f"the cluster has no Node {node!r} (its Nodes: "
                f"{', '.join(sorted(found['nodes'])) or 'none'}): build the cluster with "
                "deploys/cluster.py before upgrading it",
            )
        kubelet = release(info["kubelet"])
        if kubelet is None:
            fail("kube_version", target, f"Node {node} reports no kubelet version")
        if kubelet[:2] > wanted[:2]:
            fail(
                "kube_version",
                target,
                f"the kubelet of Node {node} is {shown(kubelet)}, newer than the apiserver "
                f"would be ({wanted_text}): the version skew policy allows no kubelet newer "
                "than the apiserver",
            )
        if wanted[1] - kubelet[1] > KUBELET_MAX_MINORS_BEHIND:
            fail(
                "kube_version",
                target,
                f"the kubelet of Node {node} is {shown(kubelet)}, more than "
                f"{KUBELET_MAX_MINORS_BEHIND} minor versions older than {wanted_text}: the "
                "version skew policy allows a kubelet at most 3 minors behind the apiserver",
            )
        if kubelet > wanted:  # the same minor: a patch downgrade of the kubelet
            problem = step_problem(f"the kubelet of Node {node}", kubelet, wanted, allow)
            if problem:
                fail("kube_version", target, problem)
        runtime = release(info["runtime"])
        containerd = release(setting("containerd_version", target))
        if runtime and info["runtime"].startswith("containerd://") and containerd < runtime:
            problem = step_problem(f"containerd on Node {node}", runtime, containerd, allow)
            if problem:
                fail("containerd_version", target, problem)
    etcd_running = release(found["etcd"])
    if etcd_running is None:
        fail(
            "etcd_version",
            master,
            f"{ETCD} --version on the master names no version: build the cluster with "
            "deploys/cluster.py before upgrading it",
        )
    problem = step_problem("etcd", etcd_running, release(setting("etcd_version", master)), allow)
    if problem:
        fail("etcd_version", master, problem)
    return found
