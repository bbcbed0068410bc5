"""The order of an upgrade's steps (deploys/upgrade.py), the same on every host: etcd's
snapshot, the master's components one after the other, then each minion's turn.

The one-minion-at-a-time order: pyinfra runs each operation on every host before the next
operation, ordered by the lines that call them. Every minion's turn is the same sequence of
``common.step`` calls (one operation each) on every host: the master's drain, one install per
artifact and a restart on that minion, the master's wait and uncordon; every other host gets
``nothing`` there. So a minion's turn ends, on every host, before the next minion's begins.
Whether a turn runs is decided when it is reached (pyinfra's ``_if``, ``upgrade_plan``): only
when its minion has something to do and no host has failed so far. pyinfra's ``--serial`` and
``--no-wait``, under which each host runs all its operations on its own, are refused
(``refusals``).
"""

from datetime import datetime, timezone

from pyinfra import host
from pyinfra.operations import files, python

from ..engine import bounds, downloads
from ..engine.common import step, tracked
from ..pki.certificates import pki_directory
from ..settings import topology
from ..settings.defaults import setting
from .upgrade_operations import (
    PROXY_LIVEZ,
    REMOTE_BACKUPS,
    api_ready,
    backup_directory,
    backup_kept,
    drained_for_upgrade,
    etcd_snapshot,
    node_upgraded,
    proxy_live,
    removed,
    restarted,
)
from .upgrade_plan import (
    anything_to_do,
    bookkeeping,
    cordoned_by_operator,
    drained_for,
    master_components,
    minion_components,
    minion_done,
    needs,
    no_failure,
    planned_restarts,
    restarts_of,
    turn_starts,
)

# What the master waits for after a service restarted, before the next step.
MASTER_WAITS = {
    "kube-apiserver": (api_ready, "the apiserver's /readyz"),
    "kube-proxy": (proxy_live, f"kube-proxy's {PROXY_LIVEZ}"),
}


# The etcd snapshot -------------------------------------------------------------------------


def snapshot_name(current) -> str:
    run = bookkeeping(current)
    if run["stamp"] is None:
        run["stamp"] = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"etcd-{run['stamp']}.db"


def local_backups():
    """Where snapshots are kept on this machine: beside the PKI."""
    return pki_directory().parent / "backups"


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


def master_steps(current, here_master: bool):
    """Step 2: etcd, then each kube service and flanneld, one component after the other (its
    binary, then its restart when it changed); the apiserver's /readyz after it restarted, and
    kube-proxy's /livez."""
    plan = bookkeeping(current)["plans"].get(host.name) if here_master else None
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


# The minions, one at a time ----------------------------------------------------------------


def minion_turn(current, index: int, target, count: int):
    """One minion's turn: the same steps on every host (``nothing`` where they do not apply)."""
    node = topology.node_name(target)
    version = setting("kube_version", target)
    here_master = topology.is_master()
    mine = host.name == target.name
    run = bookkeeping(current)
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
