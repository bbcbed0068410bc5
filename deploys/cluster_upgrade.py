"""Upgrading a running modern cluster to the versions its settings name: deploys/upgrade.py.

``kube_version`` (and ``etcd_version``, ``flannel_version``, ``containerd_version``,
``runc_version``, the CNI plugins' versions) changed in the inventory, then
``pyinfra inventory.py deploys/upgrade.py``. Before any host is touched, the inventory, the
settings and the request are checked, one line naming the setting and the host on the first
problem: the modern profile only; the running versions read on the master (the apiserver's
``/version`` through kubectl, every Node's kubelet and container runtime, ``etcd --version``)
must allow the step under upstream's version skew policy: one minor version at a time, no
kubelet newer than the apiserver (nor more than three minors older), no downgrade unless
``upgrade_allow_downgrade`` (then of a patch release only). Then, each step done before the
next begins:

1. master: an etcd snapshot (``etcdctl snapshot save``, bounded by ``operation_timeout``),
   downloaded to ``<pki_dir>/../backups/etcd-<UTC time>.db`` on this machine (mode 0600 in a
   0700 directory), removed from the master;
2. master: etcd's binaries when they changed (etcd restarted), then kube-apiserver (restarted;
   then its ``/readyz`` waited for, at most ``upgrade_timeout`` seconds),
   kube-controller-manager, kube-scheduler, kubectl, kube-proxy and flanneld: each new binary
   checked against its sha256, each service restarted only when its binary changed;
3. each minion in turn, the next only once the previous one is done and only while no host
   has failed: master ``kubectl cordon`` and ``kubectl drain`` (as deploys/remove_node.py:
   ``drain_timeout``, ``drain_force``); the minion's new binaries (kubelet, kube-proxy,
   flanneld, the CNI plugins, containerd, runc); its services whose binary changed restarted
   (flanneld, containerd, kubelet, kube-proxy); master: its Node Ready at the new kubelet
   version (at most ``upgrade_timeout`` seconds), then ``kubectl uncordon`` (not a Node the
   operator had cordoned before: ``kubelab.io/keep-cordoned`` remembers it for a resumed run).
4. the add-ons (``addons.deploy_upgraded_addons``): every minion holds the images of
   ``image_archives``, then the master applies the add-ons whose manifests changed (the
   releases ``dns_image`` and ``metrics_server_image`` pin).

A host whose binaries are the wanted ones and whose services run them gets no command: on a
cluster at the wanted versions the deploy changes nothing. A minion whose upgrade failed stays
cordoned and the minions after it are not started; a re-run picks up where it stopped.

The one-minion-at-a-time order: pyinfra runs each operation on every host before the next
operation, ordered by the lines that call them. Every minion's turn is the same sequence of
``common.step`` calls (one operation each) on every host: the master's drain, one install per
artifact and a restart on that minion, the master's wait and uncordon; every other host gets
``nothing`` there. So a minion's turn ends, on every host, before the next minion's begins.
Whether a turn runs is decided when it is reached (pyinfra's ``_if``): only when its minion has
something to do and no host has failed so far. pyinfra's ``--serial`` and ``--no-wait``, under
which each host runs all its operations on its own, are refused (``refusals``).
"""

import re
import shlex
from datetime import datetime, timezone
from types import SimpleNamespace

from pyinfra import host, logger
from pyinfra.api import deploy, operation
from pyinfra.operations import files, python

from . import addons, bounds, callstack, downloads, hoststate, once, topology
from .artifacts import (
    KUBE_MASTER_BINARIES,
    etcd_release,
    flanneld,
    kube_binary,
    minion_artifacts,
)
from .certificates import pki_directory
from .common import step, tracked
from .defaults import DEFAULTS, fail, setting
from .facts import KubeVersions
from .node_removal import drain_command, etcdctl_options
from .profiles import require_modern
from .refusals import hosts_in_step, require_hosts_in_step
from .smoke_test import kubectl
from .validation import validate_inventory

ETCD = "/usr/local/bin/etcd"
REMOTE_BACKUPS = "/var/lib/kubelab/backups"  # on the master, until the snapshot is downloaded
WAIT_INTERVAL = 5  # seconds between two checks of a bounded wait
PROXY_LIVEZ = "http://127.0.0.1:10256/livez"
RELEASE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
# A minion's services, in the order they restart, and the artifact whose change restarts each.
MINION_SERVICES = (
    ("flanneld", "flanneld-amd64"),
    ("containerd", "containerd-"),
    ("kubelet", "kubelet"),
    ("kube-proxy", "kube-proxy"),
)
# What --serial and --no-wait would break (refusals.require_hosts_in_step).
IN_STEP = ("deploys/upgrade.py", "it drains and upgrades one minion at a time")
# The skew policy: a kubelet may be this many minor versions older than the apiserver.
KUBELET_MAX_MINORS_BEHIND = 3


def _run(current=None) -> dict:
    """The run's upgrade bookkeeping (plans per host, the operations of each turn)."""
    run = once.run_cache("upgrade", current)
    if not run:
        run.update(plans={}, ops={}, started=set(), stopped=set(), stamp=None)
    return run


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
    return once.fact(KubeVersions, topology.master(), kubectl=kubectl(), etcd=ETCD)


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


# What each host has to do, read once on the host itself ------------------------------------


def _settings(target) -> SimpleNamespace:
    return SimpleNamespace(**{name: setting(name, target) for name in DEFAULTS})


def master_components(target=None) -> list[tuple[str | None, object]]:
    """The master's (service, artifact) pairs in the order they are upgraded (kubectl serves
    none), at the master's settings."""
    data = _settings(topology.master() if target is None else target)
    kube = {name: kube_binary(name, data.kube_version) for name in (*KUBE_MASTER_BINARIES,)}
    return [
        ("etcd", etcd_release(data.etcd_version)),
        ("kube-apiserver", kube["kube-apiserver"]),
        ("kube-controller-manager", kube["kube-controller-manager"]),
        ("kube-scheduler", kube["kube-scheduler"]),
        (None, kube["kubectl"]),
        ("kube-proxy", kube_binary("kube-proxy", data.kube_version)),
        ("flanneld", flanneld(data.flannel_version)),
    ]


def minion_components(target) -> list[tuple[str | None, object]]:
    """A minion's (service, artifact) pairs at its settings; the CNI plugins and runc serve no
    service (the next container start uses them)."""
    return [
        (service_of(artifact.name), artifact) for artifact in minion_artifacts(_settings(target))
    ]


def service_of(artifact_name: str) -> str | None:
    for name, prefix in MINION_SERVICES:
        if artifact_name.startswith(prefix):
            return name
    return None


def plan_host() -> dict:
    """This host's part: which artifacts differ from the wanted ones, which services run an
    older binary than the one installed (a run that stopped half-way) or, on a minion, an older
    kubelet than wanted. Everything is named to ``hoststate`` first: one read per host."""
    master = topology.is_master()
    components = master_components(host) if master else minion_components(host)
    for _, artifact in components:
        downloads.register(artifact)
    for name, _ in components:
        if name:
            hoststate.manage_unit(f"{name}.service")
    digests = {a.name: downloads.expected_sha256(a) for _, a in components}
    install = [a.name for _, a in components if not downloads.installed(a, digests[a.name])]
    stale = [
        name
        for name, artifact in components
        if name and hoststate.unread(f"{name}.service", [downloads.installed_path(artifact)])
    ]
    resume = False
    if not master:
        info = running_versions()["nodes"].get(topology.node_name(), {})
        if info.get("kubelet") != setting("kube_version") and "kubelet" not in stale:
            stale.append("kubelet")
        resume = bool(info.get("upgrading"))  # cordoned by an upgrade that did not finish
    plan = {"install": install, "stale": stale, "sha256": digests, "resume": resume}
    _run()["plans"][host.name] = plan
    return plan


def needs(plan: dict | None) -> bool:
    return bool(plan and (plan["install"] or plan["stale"] or plan.get("resume")))


def anything_to_do(current) -> bool:
    """Whether some host of the run has something to upgrade (asked at execution)."""
    return any(needs(plan) for plan in _run(current)["plans"].values())


def restart_order(names) -> list[str]:
    """A minion's services in the order they restart: the network (flanneld), the runtime,
    then the kubelet and kube-proxy; others (the master's, one at a time) as they come."""
    rank = {name: index for index, (name, _) in enumerate(MINION_SERVICES)}
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda name: rank.get(name, -1))


def restarts_of(plan: dict | None, components, changed) -> list[str]:
    """The services of ``components`` to restart: their binary is (to be) installed, ``changed``
    (artifact names), or they run an older one (``stale``)."""
    if not plan:
        return []
    return restart_order(
        name
        for name, artifact in components
        if name and (artifact.name in changed or name in plan["stale"])
    )


def planned_restarts(plan: dict | None, components) -> list[str]:
    """The services of ``components`` the plan restarts: binary to install, or stale."""
    return restarts_of(plan, components, plan["install"] if plan else ())


# The etcd snapshot -------------------------------------------------------------------------


def snapshot_name(current) -> str:
    run = _run(current)
    if run["stamp"] is None:
        run["stamp"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"etcd-{run['stamp']}.db"


def local_backups():
    """Where snapshots are kept on this machine: beside the PKI."""
    return pki_directory().parent / "backups"


@operation()
def etcd_snapshot(path: str):
    """etcd's snapshot saved on the master (mode 0600), bounded by ``operation_timeout``."""
    seconds = bounds.operation_timeout()
    endpoint = topology.etcd_url()
    etcdctl = f"ETCDCTL_API=3 etcdctl --endpoints={endpoint} {etcdctl_options()}"
    problem = shlex.quote(
        f"kubelab: {host.name}: saving etcd's snapshot from {endpoint} (at most {seconds} s: "
        "operation_timeout): "
    )
    directory = shlex.quote(path.rsplit("/", 1)[0])
    yield (
        f"umask 077 && mkdir -p {directory} && err=$(timeout {seconds} env {etcdctl} snapshot "
        f"save {shlex.quote(path)} 2>&1 >/dev/null) || {{ rm -f {shlex.quote(path)}*; "
        f'echo {problem}"$(printf %s "$err" | tail -n 1)" >&2; exit 1; }}'
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


def snapshot_steps(current, here_master: bool):
    """Step 1, on the master (``nothing`` elsewhere), when some host has something to do."""
    wanted = lambda: anything_to_do(current)  # noqa: E731 (asked at execution)
    name = snapshot_name(current)
    remote = f"{REMOTE_BACKUPS}/{name}"
    local = local_backups() / name if here_master else None
    label = "Save an etcd snapshot on the master"
    bounds.waits_on(
        step(here_master, etcd_snapshot, name=label, path=remote, _if=wanted),
        label,
        f"etcd at {topology.etcd_url()} (at most {bounds.operation_timeout()} s)",
    )
    step(
        here_master,
        python.call,
        name="Prepare the local backups directory (mode 0700)",
        function=backup_directory,
        directory=local.parent if local else None,
        _if=wanted,
    )
    step(
        here_master,
        files.get,
        name="Download the etcd snapshot beside the PKI",
        src=remote,
        dest=str(local),
        add_deploy_dir=False,
        force=True,
        _if=wanted,
    )
    step(
        here_master,
        python.call,
        name="Keep the etcd snapshot (mode 0600)",
        function=backup_kept,
        path=local,
        _if=wanted,
    )
    step(here_master, removed, name="Remove the snapshot from the master", path=remote, _if=wanted)


# Installing and restarting: the same steps on every host -----------------------------------


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


def component_steps(here: bool, plan, components, prefix: str, gate) -> list:
    """On the host ``here`` says, each artifact of ``components`` installed when the plan says
    so, then one step restarting the services whose binary changed in this run (or that run an
    older one). Elsewhere ``nothing``, step for step. Returns the host's operations."""
    installs, operations = {}, []
    for _, artifact in components:
        applies = bool(here and plan and artifact.name in plan["install"])
        label = f"{prefix}install {artifact.name} {artifact.version}".rstrip()
        op = step(
            applies,
            downloads.operation_of(artifact),
            name=label,
            artifact=artifact,
            sha256=plan["sha256"][artifact.name] if applies else "",
            label=label,
            _if=gate,
        )
        operations.append(tracked(op, downloads.installed_path(artifact)))
        if applies:
            installs[artifact.name] = op
    planned = planned_restarts(plan, components) if here else []

    def which():
        if not all(op.is_complete() for op in installs.values()):
            return None
        changed = {name for name, op in installs.items() if op.did_change()}
        return restarts_of(plan, components, changed)

    services = ", ".join(name for name, _ in components if name)
    label = f"{prefix}restart {services} if its binary changed"
    restart = step(bool(planned), restarted, name=label, services=which, planned=planned, _if=gate)
    names = ", ".join(planned) or services
    bounds.waits_on(restart, label, f"{names} to start (systemd's start timeout, 90 s)")
    operations.append(restart)
    return operations


# The master --------------------------------------------------------------------------------


@operation()
def api_ready(seconds: int):
    """The apiserver answers ``/readyz`` with ok, within ``seconds``."""
    k = kubectl()
    problem = shlex.quote(
        f"kubelab: {host.name}: the apiserver is not ready within {seconds} s of its upgrade "
        "(upgrade_timeout; kubectl get --raw /readyz): "
    )
    yield (
        f"end=$(( $(date +%s) + {seconds} )); "
        f'until out=$({k} get --raw /readyz 2>&1) && [ "$out" = ok ]; do '
        f'if [ "$(date +%s)" -ge "$end" ]; then echo {problem}"$(printf %s "$out" | '
        f'tail -n 1)" >&2; exit 1; fi; sleep {WAIT_INTERVAL}; done'
    )


@operation()
def proxy_live(seconds: int):
    """kube-proxy answers ``/livez`` within ``seconds``. On the master it first looks for a
    Node it will never have (30 s) and routes by its old rules meanwhile: the minions' turns,
    which move pods, wait for it."""
    problem = shlex.quote(
        f"kubelab: {host.name}: kube-proxy does not answer {PROXY_LIVEZ} within {seconds} s "
        "of its upgrade (upgrade_timeout)"
    )
    yield (
        f"end=$(( $(date +%s) + {seconds} )); "
        f"until curl -fsS --max-time 2 -o /dev/null {PROXY_LIVEZ} 2>/dev/null; do "
        f'if [ "$(date +%s)" -ge "$end" ]; then echo {problem} >&2; exit 1; fi; '
        f"sleep {WAIT_INTERVAL}; done"
    )


def master_steps(current, here_master: bool):
    """Step 2: etcd, then each kube service and flanneld, one component after the other (its
    binary, then its restart when it changed); the apiserver's /readyz after it restarted, and
    kube-proxy's /livez."""
    plan = _run(current)["plans"].get(host.name) if here_master else None
    gate = lambda: no_failure(current)  # noqa: E731
    for service_name, artifact in master_components():
        component_steps(here_master, plan, [(service_name, artifact)], "Master: ", gate)
        if service_name in MASTER_WAITS:
            # the apiserver's wait follows etcd's restart too
            waited = master_components()[:2] if service_name == "kube-apiserver" else []
            waited = waited or [(service_name, artifact)]
            restarts = planned_restarts(plan, waited) if here_master else []
            wait, what = MASTER_WAITS[service_name]
            seconds = setting("upgrade_timeout")
            label = f"Master: wait for {what}"
            bounds.waits_on(
                step(bool(restarts), wait, name=label, seconds=seconds, _if=gate),
                label,
                f"{what} (at most {seconds} s: upgrade_timeout)",
            )


# What the master waits for after a service restarted, before the next step.
MASTER_WAITS = {
    "kube-apiserver": (api_ready, "the apiserver's /readyz"),
    "kube-proxy": (proxy_live, f"kube-proxy's {PROXY_LIVEZ}"),
}


# The minions, one at a time ----------------------------------------------------------------


def no_failure(current) -> bool:
    return not current.failed_hosts


def turn_starts(current, target) -> bool:
    """The master's question before draining ``target``: has it anything to do, and has no
    host failed so far (the previous turns, the master's part)? Remembered for its steps."""
    run = _run(current)
    if not needs(run["plans"].get(target.name)):
        return False
    if not no_failure(current):
        if target.name not in run["stopped"]:
            run["stopped"].add(target.name)
            failed = ", ".join(sorted(h.name for h in current.failed_hosts))
            logger.error(
                f"kubelab: the upgrade of {target.name} is not started: {failed} failed "
                "(a minion's upgrade starts only when everything before it succeeded)"
            )
        return False
    run["started"].add(target.name)
    return True


def _done(operations) -> bool:
    return bool(operations) and all(
        op.is_complete() and op.did_succeed(_raise_if_not_complete=False) for op in operations
    )


def drained_for(current, target) -> bool:
    """The minion's own steps run only once the master drained it in this turn."""
    run = _run(current)
    drain = run["ops"].get((target.name, "drain"), [])
    return target.name in run["started"] and _done(drain) and no_failure(current)


def minion_done(current, target) -> bool:
    """The master's wait and uncordon run once the minion's steps all succeeded."""
    run = _run(current)
    own = run["ops"].get((target.name, "minion"), [])
    return drained_for(current, target) and _done(own)


def cordoned_by_operator(target) -> bool:
    """Whether the operator had cordoned ``target``'s Node before this upgrade (or before the
    unfinished one this run resumes, which marked it): it then stays cordoned after."""
    info = running_versions()["nodes"].get(topology.node_name(target), {})
    return (
        info.get("keep_cordoned", False)
        if info.get("upgrading")
        else info.get("unschedulable", False)
    )


@operation()
def drained_for_upgrade(node: str, version: str, keep_cordoned: bool = False):
    """``node`` marked as being upgraded (the annotation tells a re-run to finish its turn),
    then cordoned and drained as deploys/remove_node.py does (``drain_timeout``,
    ``drain_force``)."""
    k = kubectl()
    quoted = shlex.quote(node)
    problem = shlex.quote(f"kubelab: {host.name}: kubectl annotate node {node}: ")
    yield (
        f"out=$({k} annotate node {quoted} --overwrite "
        f"{KubeVersions.ANNOTATION}={shlex.quote(version)}"
        f"{f' {KubeVersions.KEEP_CORDONED}=true' if keep_cordoned else ''} 2>&1) || "
        f'{{ echo {problem}"$(printf %s "$out" | tail -n 1)" >&2; exit 1; }}'
    )
    yield drain_command(node)


@operation()
def node_upgraded(node: str, version: str, seconds: int, keep_cordoned: bool = False):
    """``node`` Ready at ``version`` within ``seconds``, then uncordoned (``keep_cordoned``:
    left cordoned, as the operator had it), its annotations removed."""
    k = kubectl()
    quoted = shlex.quote(node)
    fields = "'{.status.nodeInfo.kubeletVersion} {.status.conditions[?(@.type==\"Ready\")].status}'"
    problem = shlex.quote(
        f"kubelab: {host.name}: upgrading node {node}: not Ready at {version} within "
        f"{seconds} s (upgrade_timeout); it stays cordoned: "
    )
    uncordon = shlex.quote(f"kubelab: {host.name}: kubectl uncordon {node} (and its annotation): ")
    yield (
        f"end=$(( $(date +%s) + {seconds} )); "
        f"until out=$({k} get node {quoted} -o jsonpath={fields} 2>&1) && "
        f'[ "$out" = {shlex.quote(f"{version} True")} ]; do '
        f'if [ "$(date +%s)" -ge "$end" ]; then echo {problem}"$(printf %s "$out" | '
        f'tail -n 1)" >&2; exit 1; fi; sleep {WAIT_INTERVAL}; done; '
        + ("" if keep_cordoned else f"out=$({k} uncordon {quoted} 2>&1) && ")
        + f"out=$({k} annotate node {quoted} {KubeVersions.ANNOTATION}-"
        f"{f' {KubeVersions.KEEP_CORDONED}-' if keep_cordoned else ''} 2>&1) || "
        f'{{ echo {uncordon}"$(printf %s "$out" | tail -n 1)" >&2; exit 1; }}'
    )


def minion_turn(current, index: int, target, count: int):
    """One minion's turn: the same steps on every host (``nothing`` where they do not apply)."""
    node = topology.node_name(target)
    version = setting("kube_version", target)
    here_master = topology.is_master()
    mine = host.name == target.name
    run = _run(current)
    plan = run["plans"].get(host.name) if mine else None
    turn = f"Upgrade {node} ({index + 1}/{count}): "
    keep = cordoned_by_operator(target)

    label = f"{turn}cordon and drain"
    drain = step(
        here_master,
        drained_for_upgrade,
        name=label,
        node=node,
        version=version,
        keep_cordoned=keep,
        _if=lambda: turn_starts(current, target),
    )
    bounds.waits_on(
        drain,
        label,
        f"the pods to leave (kubectl drain, at most {setting('drain_timeout')} s: drain_timeout)",
    )
    if here_master:
        run["ops"][(target.name, "drain")] = [drain]
    own = component_steps(
        mine and needs(plan),
        plan,
        minion_components(target),
        turn,
        lambda: drained_for(current, target),
    )
    if mine:
        run["ops"][(target.name, "minion")] = own
    seconds = setting("upgrade_timeout")
    label = f"{turn}wait until Ready at {version}, " + (
        "leave cordoned (cordoned before the upgrade)" if keep else "uncordon"
    )
    bounds.waits_on(
        step(
            here_master,
            node_upgraded,
            name=label,
            node=node,
            version=version,
            seconds=seconds,
            keep_cordoned=keep,
            _if=lambda: minion_done(current, target),
        ),
        label,
        f"Node {node} Ready at {version} (at most {seconds} s: upgrade_timeout)",
    )


@deploy("Upgrade the cluster", data_defaults=DEFAULTS)
def deploy_upgrade():
    """Upgrade the running cluster to the versions of its settings (see the module's text)."""
    callstack.deploy_file_is_no_module()
    require_hosts_in_step(*IN_STEP)
    validate_inventory()
    if not topology.is_cluster_host():  # validation names it
        return
    check_request()
    hosts_in_step(
        name="Every host in step (no --serial, no --no-wait)", deploy=IN_STEP[0], why=IN_STEP[1]
    )
    current = once.current_state()
    addons.named_ahead()
    plan_host()
    here_master = topology.is_master()
    snapshot_steps(current, here_master)
    master_steps(current, here_master)
    minions = topology.minions()
    for index, target in enumerate(minions):
        minion_turn(current, index, target, len(minions))
    addons.deploy_upgraded_addons()
