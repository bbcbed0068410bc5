"""What an upgrade changes on each host (deploys/upgrade.py), read from the declaration of the
components (``components``) and from the host itself once, and whether each minion's turn runs,
decided when the run reaches it.

A host's plan: the artifacts that differ from the wanted ones (``install``), the services that
run an older binary than the one installed (a run that stopped half-way) or, on a minion, an
older kubelet than wanted (``stale``), and whether its Node is still cordoned by an upgrade that
did not finish (``resume``). A host whose plan is empty gets no command.
"""

from pyinfra import host, logger

from .. import engine
from ..components import catalog
from ..components.catalog import MASTER, MINION, RESTART_ORDER, settings_of
from ..engine import downloads
from ..settings import topology
from ..settings.defaults import setting
from .upgrade_policy import running_versions


def bookkeeping(current=None) -> dict:
    """The run's upgrade bookkeeping (plans per host, the operations of each turn)."""
    run = engine.run_cache("upgrade", current)
    if not run:
        run.update(plans={}, ops={}, started=set(), stopped=set(), stamp=None)
    return run


def master_components(target=None) -> list[tuple[str | None, object]]:
    """The master's (service, artifact) pairs in the order they are upgraded (kubectl serves
    none), at the master's settings."""
    data = settings_of(topology.master() if target is None else target)
    return catalog.services_with_artifacts(MASTER, data)


def minion_components(target) -> list[tuple[str | None, object]]:
    """A minion's (service, artifact) pairs at its settings; the CNI plugins and runc serve no
    service (the next container start uses them)."""
    return catalog.services_with_artifacts(MINION, settings_of(target))


def plan_host() -> dict:
    """This host's part: which artifacts differ from the wanted ones, which services run an
    older binary than the one installed (a run that stopped half-way) or, on a minion, an older
    kubelet than wanted. Everything is named to ``hoststate`` first: one read per host."""
    master = topology.is_master()
    pairs = master_components(host) if master else minion_components(host)
    for _, artifact in pairs:
        downloads.register(artifact)
    for name, _ in pairs:
        if name:
            engine.manage_unit(f"{name}.service")
    digests = {a.name: downloads.expected_sha256(a) for _, a in pairs}
    install = [a.name for _, a in pairs if not downloads.installed(a, digests[a.name])]
    stale = [
        name
        for name, artifact in pairs
        if name
        and engine.written_after_start(f"{name}.service", [downloads.installed_path(artifact)])
    ]
    resume = False
    if not master:
        info = running_versions()["nodes"].get(topology.node_name(), {})
        if info.get("kubelet") != setting("kube_version") and "kubelet" not in stale:
            stale.append("kubelet")
        resume = bool(info.get("upgrading"))  # cordoned by an upgrade that did not finish
    plan = {"install": install, "stale": stale, "sha256": digests, "resume": resume}
    bookkeeping()["plans"][host.name] = plan
    return plan


def needs(plan: dict | None) -> bool:
    return bool(plan and (plan["install"] or plan["stale"] or plan.get("resume")))


def anything_to_do(current) -> bool:
    """Whether some host of the run has something to upgrade (asked at execution)."""
    return any(needs(plan) for plan in bookkeeping(current)["plans"].values())


def restart_order(names) -> list[str]:
    """A minion's services in the order they restart: the network (flanneld), the runtime,
    then the kubelet and kube-proxy; others (the master's, one at a time) as they come."""
    rank = {name: index for index, name in enumerate(RESTART_ORDER)}
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda name: rank.get(name, -1))


def restarts_of(plan: dict | None, pairs, changed) -> list[str]:
    """The services of ``pairs`` (service, artifact) to restart: their binary is (to be)
    installed, ``changed`` (artifact names), or they run an older one (``stale``)."""
    if not plan:
        return []
    return restart_order(
        name
        for name, artifact in pairs
        if name and (artifact.name in changed or name in plan["stale"])
    )


def planned_restarts(plan: dict | None, pairs) -> list[str]:
    """The services of ``pairs`` the plan restarts: binary to install, or stale."""
    return restarts_of(plan, pairs, plan["install"] if plan else ())


# Whether a minion's turn runs, asked when the run reaches it -------------------------------


def no_failure(current) -> bool:
    return not current.failed_hosts


def turn_starts(current, target) -> bool:
    """The master's question before draining ``target``: has it anything to do, and has no
    host failed so far (the previous turns, the master's part)? Remembered for its steps."""
    run = bookkeeping(current)
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


def succeeded(operations) -> bool:
    return bool(operations) and all(
        op.is_complete() and op.did_succeed(_raise_if_not_complete=False) for op in operations
    )


def drained_for(current, target) -> bool:
    """The minion's own steps run only once the master drained it in this turn."""
    run = bookkeeping(current)
    drain = run["ops"].get((target.name, "drain"), [])
    return target.name in run["started"] and succeeded(drain) and no_failure(current)


def minion_done(current, target) -> bool:
    """The master's wait and uncordon run once the minion's steps all succeeded."""
    run = bookkeeping(current)
    own = run["ops"].get((target.name, "minion"), [])
    return drained_for(current, target) and succeeded(own)


def cordoned_by_operator(target) -> bool:
    """Whether the operator had cordoned ``target``'s Node before this upgrade (or before the
    unfinished one this run resumes, which marked it): it then stays cordoned after."""
    info = running_versions()["nodes"].get(topology.node_name(target), {})
    return (
        info.get("keep_cordoned", False)
        if info.get("upgrading")
        else info.get("unschedulable", False)
    )
