#!/usr/bin/env python3
"""The highly available control plane on the lab (issue 21): e2e.py runs it after day two, on
the cluster the upgrade left (one master, two minions); it also runs alone on a running lab.

Two clients run through every step: a loop on a minion asking nginx's cluster IP (daytwo's
request loop, with the DNS lookups from pods on the minions), and a loop on this machine
listing pods with the admin kubeconfig kubelab wrote here, which, as the README says, moves to
the next master's context when one fails (ApiLoop). Each step reports the requests sent and
failed, and the longest time the API did not answer.

grow_to_three_masters: the inventory gains kubemaster2 and kubemaster3 (tests/lab/
inventory_ha.py) and cluster.py runs again: etcd members added one at a time, every host's
kubelet and kube-proxy moved to the local load balancer, no pod restarted; the specs pass on
the five hosts and a re-run changes nothing.

first_master_powered_off: the first master loses its power; the service loop fails no request,
the API answers again within API_GAP_GOAL seconds, etcd keeps a leader and quorum, a new pod is
scheduled and runs; the master boots again and rejoins by itself (its etcd member healthy, its
apiserver ready), and the specs pass.

etcd_leader_killed: etcd's leader gets SIGKILL: another member leads, a ConfigMap written
before is read back after, and the loops see no failed request on the service.

rerun_refused_with_a_master_down: cluster.py while kubemaster3 is off stops, naming it, and
changes nothing on any host.
"""

import argparse
import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import addons
import builds
import cgroups
import daytwo
import faults
import kube
import mirror
import pipeline
import util

HERE = Path(__file__).resolve().parent
HA_INVENTORY = HERE / "inventory_ha.py"
SERVICE_CLIENT = "kubeminion1"  # the request loop's host: no master, so it stays up
GROWTH_GAP_FACTOR = 2.0  # the growth's longest API gap, against one apiserver restart's
API_GAP_GOAL = 10.0  # s: the API answers again within this after a master dies
API_LOOP_DEADLINE = 1800  # s: the API loop ends by itself after this
API_REQUEST_TIMEOUT = 2  # s, each kubectl request of the API loop
ETCD_PKI = "/etc/etcd/pki"
REJOIN_DEADLINE = 300  # s: a master back from a power cut is healthy again within this
LEADER_DEADLINE = 30  # s: etcd elects another leader within this after the leader dies
POD_DEADLINE = 180  # s: a pod scheduled while a master is down runs within this
USER_KUBECONFIG = Path("~/.kubelab/kubelab/admin.kubeconfig").expanduser()


def short(name: str) -> str:
    return name.split(".")[0]


def grown_inventory(inventory: str) -> str:
    """``inventory`` (one master) with the masters of inventory_ha.py, each new one given the
    data the first master has beyond its own address."""
    masters, minions = daytwo.hosts_of(inventory)
    ha_masters, _ = daytwo.hosts_of(str(HA_INVENTORY))
    shared = {k: v for k, v in masters[0][1].items() if k not in pipeline.HOST_OWN_DATA}
    grown = [masters[0]] + [(name, {**shared, **data}) for name, data in ha_masters[1:]]
    path = pipeline.LOGS / "inventory-ha.py"
    path.write_text(f"masters = {grown!r}\n\nminions = {minions!r}\n{pipeline.LAB_GROUP}")
    return str(path)


def masters_of(inventory: str) -> list[str]:
    return [short(name) for name, _ in daytwo.hosts_of(inventory)[0]]


@contextmanager
def kubectl_on(master: str):
    """The lab's kubectl (kube, addons) run on ``master`` meanwhile, not on kubemaster."""
    saved = kube.MASTER, addons.MASTER
    kube.MASTER = addons.MASTER = master
    try:
        yield
    finally:
        kube.MASTER, addons.MASTER = saved


class ApiLoop(threading.Thread):
    """``kubectl get pods -A`` every 0.2 s on this machine with the admin kubeconfig kubelab
    wrote here; a failed request moves to the next of ``contexts`` (None: the current one)."""

    def __init__(self, contexts: list[str | None]):
        super().__init__(daemon=True)
        release = mirror.versions().kube_version
        self.kubectl = str(builds.ensure_built(builds.kubernetes(release)) / "kubectl")
        self.contexts = contexts
        self.sent = self.failed = 0
        self.longest_gap = 0.0
        self.done = threading.Event()

    def ask(self, context: str | None) -> bool:
        argv = [self.kubectl, f"--kubeconfig={USER_KUBECONFIG}"]
        argv += [f"--context={context}"] if context else []
        argv += [f"--request-timeout={API_REQUEST_TIMEOUT}s", "get", "pods", "-A", "-o", "name"]
        try:
            result = subprocess.run(argv, capture_output=True, timeout=API_REQUEST_TIMEOUT + 8)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def run(self):
        index, last_answer = 0, time.monotonic()
        deadline = last_answer + API_LOOP_DEADLINE
        while not self.done.is_set() and time.monotonic() < deadline:
            self.sent += 1
            if self.ask(self.contexts[index]):
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last_answer)
                last_answer = now
            else:
                self.failed += 1
                index = (index + 1) % len(self.contexts)
            self.done.wait(0.2)

    def stop(self) -> str:
        self.done.set()
        self.join(timeout=API_REQUEST_TIMEOUT + 15)
        return (
            f"the API answered {self.sent - self.failed} of {self.sent} requests from here "
            f"({self.failed} failed), at most {self.longest_gap:.1f} s between two answers"
        )


def under_traffic(what: str, action, contexts: list[str | None]) -> tuple[str, ApiLoop]:
    """``action`` while both loops run: the service loop must fail no request."""
    api = ApiLoop(contexts)
    api.start()
    try:
        ok, failed, seconds, looked_up = daytwo.while_nginx_serves(
            what, action, on=SERVICE_CLIENT, max_failed_share=0.0
        )
    finally:
        api_summary = api.stop()
    summary = (
        f"{what} in {seconds:.0f} s: nginx's cluster IP answered {ok} of {ok + failed} "
        f"requests ({failed} failed); {looked_up}; {api_summary}"
    )
    return summary, api


# etcd as a master sees it ----------------------------------------------------------------


def etcdctl(master: str, args: str, check: bool = True) -> str:
    """etcdctl on ``master`` with its etcd serving certificate, against its own member."""
    tls = f"--cacert={ETCD_PKI}/ca.crt --cert={ETCD_PKI}/server.crt --key={ETCD_PKI}/server.key"
    endpoint = '$(. /etc/default/etcd && printf %s "$ETCD_ADVERTISE_CLIENT_URLS")'
    command = (
        f"ETCDCTL_API=3 etcdctl --endpoints={endpoint} {tls} --dial-timeout=3s "
        f"--command-timeout=5s {args}"
    )
    return faults.ssh(master, command, check=check)


def etcd_status(master: str) -> list[dict]:
    """`endpoint status --cluster` from ``master``: the endpoint, id and leader of every
    member that answers (one powered off answers nothing)."""
    raw = etcdctl(master, "endpoint status --cluster -w json", check=False).strip()
    return [
        {
            "endpoint": entry["Endpoint"],
            "id": entry["Status"]["header"]["member_id"],
            "leader": entry["Status"]["leader"],
        }
        for entry in (json.loads(raw) if raw else [])
    ]


def members(master: str) -> dict[int, str]:
    """member id -> name, as ``master``'s etcd lists them."""
    listing = json.loads(etcdctl(master, "member list -w json"))
    return {member["ID"]: member.get("name", "") for member in listing["members"]}


def leader_name(master: str) -> str:
    statuses = etcd_status(master)
    leaders = {status["leader"] for status in statuses}
    if len(leaders) != 1 or 0 in leaders:
        raise pipeline.StepFailed(f"etcd's members name leaders {leaders} ({statuses})")
    return members(master)[leaders.pop()]


def healthy_members(master: str) -> int:
    output = etcdctl(master, "endpoint health --cluster", check=False)
    return output.count("is healthy")


def wait_for(what: str, test, deadline: float, every: float = 2.0) -> float:
    """Seconds until ``test()`` is true (a try that fails counts as false); fails naming
    ``what`` after ``deadline`` seconds."""

    def holds() -> bool:
        try:
            return bool(test())
        except (pipeline.StepFailed, subprocess.SubprocessError, ValueError, KeyError):
            return False

    started = time.monotonic()
    if not util.wait_until(holds, deadline, every):
        raise pipeline.StepFailed(f"{what}: not within {deadline:g} s")
    return time.monotonic() - started


def apiserver_ready(master: str) -> bool:
    command = f"{kube.KUBECTL} get --raw /readyz"
    return faults.ssh(master, command, check=False).strip() == "ok"


# The steps -------------------------------------------------------------------------------


def apiserver_restart_gap() -> float:
    """The longest time the API loop here got no answer while the one master's apiserver
    restarted: what the growth's own outage is measured against."""
    api = ApiLoop([None])
    api.start()
    try:
        time.sleep(2)
        faults.ssh("kubemaster", "systemctl restart kube-apiserver")
        wait_for(
            "the apiserver ready after its restart", lambda: apiserver_ready("kubemaster"), 120
        )
        time.sleep(2)
    finally:
        api.stop()
    return api.longest_gap


def masters_memory(inventory: str) -> str:
    """Each master's memory as its machine's cgroup counts it, resident / charged."""
    parts = []
    for master in masters_of(inventory):
        use = cgroups.memory_use(master)
        if use:
            parts.append(f"{master} {use['rss'] / 2**20:.0f} / {use['charged'] / 2**20:.0f} MB")
    return "memory of the masters (resident / charged): " + ", ".join(parts)


def grow_to_three_masters(inventory: str) -> tuple[str, str]:
    """cluster.py on the inventory with two more masters, under both loops; the grown
    inventory and what was seen. The API may be unreachable from here for about as long as
    one apiserver restart (measured first): at most GROWTH_GAP_FACTOR times that."""
    grown = grown_inventory(inventory)
    pipeline.lab_up(grown)
    restart_gap = apiserver_restart_gap()
    before = kube.nginx_pods()
    deployed = {}

    def grow():
        deployed["changes"], deployed["seconds"] = pipeline.deploy(grown, "ha-grow")

    summary, api = under_traffic("the growth from 1 to 3 masters", grow, [None])
    if api.longest_gap > GROWTH_GAP_FACTOR * restart_gap:
        raise pipeline.StepFailed(
            f"the API did not answer for {api.longest_gap:.1f} s during the growth, one "
            f"apiserver restart {restart_gap:.1f} s (at most {GROWTH_GAP_FACTOR:g} times that)"
        )
    kept, states = kube.pods_kept(before, kube.nginx_pods())
    if not kept:
        raise pipeline.StepFailed(f"a pod restarted while the masters were added: {states}")
    names = set(members("kubemaster").values())
    wanted = set(masters_of(grown))
    if names != wanted:
        raise pipeline.StepFailed(f"etcd's members after the growth: {names}, not {wanted}")
    pipeline.specs(grown, "ha-specs-grown")
    again, _ = pipeline.deploy(grown, "ha-grow-again")
    if again:
        raise pipeline.StepFailed(f"a re-run after the growth changed {dict(again)}")
    return grown, (
        f"{summary} (one apiserver restart before it: {restart_gap:.1f} s); etcd members "
        f"{', '.join(sorted(names))}; no pod restarted; specs pass; "
        f"a re-run changes nothing; {masters_memory(grown)}"
    )


def first_master_powered_off(inventory: str) -> str:
    masters = masters_of(inventory)
    first, others = masters[0], masters[1:]
    marker = f"kubelab-ha-probe-{int(time.time())}"
    state = {}

    def outage():
        state["how"] = faults.power_off(first)
        time.sleep(API_GAP_GOAL + 5)  # the clients meet the outage
        with kubectl_on(others[0]):
            state["leader"] = leader_name(others[0])
            state["healthy"] = healthy_members(others[0])
            image = kube.kubectl(
                f"{kube.SMOKE} get rc nginx -o jsonpath={{.spec.template.spec.containers[0].image}}"
            ).strip()
            kube.kubectl(f"{kube.SMOKE} run {marker} --image={image} --restart=Never")
            state["pod"] = wait_for(
                f"the pod {marker}, created while {first} is off, Running",
                lambda: (
                    kube.kubectl(
                        f"{kube.SMOKE} get pod {marker} -o jsonpath={{.status.phase}}"
                    ).strip()
                    == "Running"
                ),
                POD_DEADLINE,
            )

    contexts = masters
    with kubectl_on(others[0]):
        summary, api = under_traffic(f"{first} powered off", outage, contexts)
    if api.longest_gap > API_GAP_GOAL:
        raise pipeline.StepFailed(
            f"the API did not answer for {api.longest_gap:.1f} s when {first} died "
            f"(goal: {API_GAP_GOAL:g} s)"
        )
    if state["healthy"] != len(others):
        raise pipeline.StepFailed(
            f"with {first} off, {state['healthy']} etcd members healthy, not {len(others)}"
        )
    pipeline.lab_up(inventory)
    back = wait_for(
        f"{first}'s etcd member healthy and its apiserver ready after it booted",
        lambda: healthy_members(first) == len(masters) and apiserver_ready(first),
        REJOIN_DEADLINE,
        every=3,
    )
    kube.kubectl(f"{kube.SMOKE} delete pod {marker} --wait=false")
    pipeline.specs(inventory, "ha-specs-back")
    return (
        f"{first} {state['how']}: {summary}; etcd kept quorum ({state['healthy']} of "
        f"{len(masters)} healthy, {state['leader']} leading); a new pod ran "
        f"{state['pod']:.0f} s after it was created; {first} back and rejoined {back:.0f} s "
        "after it booted; specs pass"
    )


def etcd_leader_killed(inventory: str) -> str:
    masters = masters_of(inventory)
    old = leader_name(masters[0])
    marker = f"kubelab-ha-{int(time.time())}"
    kube.kubectl(f"{kube.SMOKE} create configmap {marker} --from-literal=written=before")
    state = {}

    def kill():
        faults.ssh(old, "pkill -9 -x etcd")
        survivor = next(m for m in masters if m != old)
        state["elected"] = wait_for(
            f"another etcd leader than {old}",
            lambda: leader_name(survivor) != old,
            LEADER_DEADLINE,
            every=0.5,
        )
        state["leader"] = leader_name(survivor)
        state["back"] = wait_for(
            f"{old}'s etcd back (systemd restarts it)",
            lambda: healthy_members(survivor) == len(masters),
            REJOIN_DEADLINE,
        )

    with kubectl_on(next(m for m in masters if m != old)):
        summary, _ = under_traffic(f"etcd's leader ({old}) killed", kill, masters)
        read = kube.kubectl(f"{kube.SMOKE} get configmap {marker} -o jsonpath={{.data.written}}")
        kube.kubectl(f"{kube.SMOKE} delete configmap {marker}")
    if read.strip() != "before":
        raise pipeline.StepFailed(f"the ConfigMap written before the kill reads {read!r}")
    return (
        f"{summary}; {state['leader']} seen leading {state['elected']:.1f} s after {old}'s etcd "
        f"was killed (etcdctl polls, each waiting up to 3 s on the dead member), {old} healthy "
        f"again {state['back']:.0f} s later; a ConfigMap written before read back"
    )


def rerun_refused_with_a_master_down(inventory: str) -> str:
    down = masters_of(inventory)[-1]
    how = faults.power_off(down)
    log = pipeline.LOGS / "ha-rerun-master-down.log"
    command = pipeline.deploy_command(inventory)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    log.write_text(result.stdout + result.stderr)
    output = result.stdout + result.stderr
    changed = pipeline.changed_operations(output)
    named = [line for line in output.splitlines() if "kubelab:" in line and down in line]
    pipeline.lab_up(inventory)
    wait_for(
        f"{down} back and healthy",
        lambda: healthy_members(down) == len(masters_of(inventory)) and apiserver_ready(down),
        REJOIN_DEADLINE,
        every=3,
    )
    if result.returncode == 0 or changed or not named:
        raise pipeline.StepFailed(
            f"cluster.py with {down} off: exit {result.returncode}, changed {changed}, lines "
            f"naming it {named} ({log})"
        )
    return f"{down} {how}; cluster.py stopped (exit {result.returncode}) saying {named[0]!r}"


def scenario(inventory: str, check) -> str:
    """Every step on the cluster of ``inventory`` (one master): ``check(name, True, what)``
    reports each; the grown inventory."""
    grown, seen = grow_to_three_masters(inventory)
    check("the cluster grows from 1 to 3 masters while nginx serves", True, seen)
    check("the first master powered off: the cluster serves", True, first_master_powered_off(grown))
    check("etcd's leader killed: another leads, nothing lost", True, etcd_leader_killed(grown))
    refused = rerun_refused_with_a_master_down(grown)
    check("a re-run with a master down stops, naming it", True, refused)
    return grown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventory.py")
    args = parser.parse_args()

    def check(name, ok, what):
        print(f"ha {'PASS' if ok else 'FAIL'}: {name} ({what})", flush=True)

    try:
        scenario(args.inventory, check)
    except pipeline.StepFailed as error:
        print(f"ha scenario failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
