"""The smoke deploy (the reference's final tests) on simulated modern and el7 hosts.

Two levels: the commands each host receives (run through the simulated hosts, with a
simulated API answering the master's listing), and those commands themselves run by /bin/sh
against a fake kubectl and curl, to show that each wait is bounded and that a failure is one
line naming what is not ready.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import fakehosts
import kubelab
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import FileState, centos7, debian12, run_deploy
from kubelab import SettingError, smoke_test
from kubelab.defaults import DEFAULTS, setting
from pyinfra.connectors.util import CommandOutput, OutputLine

CLUSTER_IP = "10.254.0.17"
LEASES = {MINIONS[0]: "10.20.1.1/24", MINIONS[1]: "10.20.2.1/24", MASTER: "10.20.3.1/24"}
# nginx pods as the master lists them: two on the first minion, one on the second.
PODS = [
    ("nginx-a1", MINIONS[0], "10.20.1.2"),
    ("nginx-b1", MINIONS[1], "10.20.2.2"),
    ("nginx-a2", MINIONS[0], "10.20.1.3"),
]
MODERN_KUBECTL = (
    "/usr/local/bin/kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig --request-timeout=20s"
)
EL7_KUBECTL = "kubectl -s http://127.0.0.1:8080 --request-timeout=20s"
IN_NAMESPACE = " -n kubelab-smoke"
MASTER_STEPS = [
    "nodes",
    "namespace",
    "service account",
    "token",
    "apply",
    "replicas",
    "expose",
    "listing",
]


# Simulated hosts: what the smoke deploy's commands answer ----------------------------------


def listing_output(pods=PODS) -> list[str]:
    return [f"service {CLUSTER_IP} 80", *(f"pod {name} {node} {ip}" for name, node, ip in pods)]


class SmokeHosts:
    """Answers the smoke deploy's commands on the simulated hosts; records them."""

    def __init__(self, pods=PODS, failing=()):
        self.pods = pods
        self.failing = failing  # substrings of scripts that fail
        self.scripts: dict[str, list[str]] = {}

    def answer(self, host: str, machine, command: str) -> tuple[bool, list[str], list[str]]:
        if command.startswith("smoke_fail() {"):
            self.scripts.setdefault(host, []).append(command)
            if any(marker in command for marker in self.failing):
                return False, [], ["smoke test: simulated failure"]
            if 'echo "service $1 $2"' in command:
                return True, listing_output(self.pods), []
            return True, [], []
        match = re.fullmatch(r"cat (\S+)", command)
        if match:
            path = match[1]
            if path not in machine.files:
                return False, [], [f"cat: {path}: No such file or directory"]
            return True, machine.text(path).splitlines(), []
        match = re.fullmatch(r"rm -rf (\S+)", command)
        if match:
            machine.dirs.discard(match[1].strip("'"))
            return True, [], []
        return None  # a command of the cluster deploy: the ordinary interpreter's

    def install(self, monkeypatch):
        original = fakehosts.SimulatedConnector.run_shell_command
        smoke = self

        def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
            text = command if isinstance(command, str) else command.get_raw_value()
            machine = self.machines[self.host.name]
            answer = smoke.answer(self.host.name, machine, text.strip())
            if answer is None:
                return original(self, command, print_output, print_input, **kwargs)
            self.executed_commands.append(text)
            self.host.kubelab_commands.append(text)
            ok, stdout, stderr = answer
            lines = [OutputLine("stdout", line) for line in stdout]
            lines += [OutputLine("stderr", line) for line in stderr]
            return ok, CommandOutput(lines)

        monkeypatch.setattr(fakehosts.SimulatedConnector, "run_shell_command", run_shell_command)


def machines_image() -> str:
    """smoke_image as the repo's inventory and group_data set it (the lab sets its own)."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    with ctx_state.use(State(check_for_changes=False)):
        inventory = make_inventory(
            str(fakehosts.REPO / "inventory.py"),
            cwd=str(fakehosts.REPO),
            group_data_directories=[str(fakehosts.REPO / "group_data")],
        )
    return setting("smoke_image", inventory.get_host(MASTER))


def machines_with_leases(make):
    machines = {name: make() for name in HOSTS}
    for name, machine in machines.items():
        machine.files["/run/flannel/subnet.env"] = FileState(
            f"FLANNEL_NETWORK=10.20.0.0/16\nFLANNEL_SUBNET={LEASES[name]}\n".encode()
        )
    return machines


def smoke_run(monkeypatch, make, data=None, **options):
    smoke = SmokeHosts(**options)
    smoke.install(monkeypatch)
    machines = machines_with_leases(make)
    run = run_deploy(machines, kubelab.deploy_smoke, data=data)
    return smoke, machines, run


def script_of(scripts: list[str], name: str) -> str:
    found = [text for text in scripts if classify(text) == name]
    assert len(found) == 1, f"{name!r}: {len(found)} scripts"
    return found[0]


MARKERS = {  # the first that a script holds names it
    "replacement": "did not replace the deleted nginx pod",
    "nodes": "get nodes --no-headers",
    "namespace": "create namespace kubelab-smoke",
    "service account": "get serviceaccount default",
    "token": f"exec {smoke_test.TOKEN_POD} -- cat",
    "apply": "apply -f /etc/kubernetes/smoke/nginx-rc.yaml",
    "replicas": "Running pods, not 3",
    "expose": "expose rc nginx --port=80",
    "listing": 'echo "service $1 $2"',
    "cleanup": "delete namespace kubelab-smoke --ignore-not-found",
    # modern's first-day checks (deploys/smoke_first_day.py)
    "probes": "apply -f /etc/kubernetes/smoke/probe.yaml",
    "dns": "getent hosts",
    "tools": "port-forward",
    "node port": "--type=NodePort",
    "rollout": "rollout restart",
}
FIRST_DAY = ["probes", "dns", "tools", "node port", "rollout"]
MARKERS_FIRST = set(FIRST_DAY)


def classify(text: str) -> str:
    return next((name for name, marker in MARKERS.items() if marker in text), "checks")


def master_steps(scripts):
    return [classify(text) for text in scripts]


# The commands on simulated hosts ----------------------------------------------------------


def test_modern_master_runs_every_step_with_the_admin_kubeconfig(monkeypatch):
    smoke, machines, run = smoke_run(monkeypatch, debian12)
    scripts = smoke.scripts[MASTER]
    assert master_steps(scripts) == [*MASTER_STEPS, "checks", "replacement", *FIRST_DAY]
    for text in scripts[: len(MASTER_STEPS)] + scripts[len(MASTER_STEPS) + 1 :]:
        assert MODERN_KUBECTL in text and "kubectl -s" not in text
    nodes = script_of(scripts, "nodes")
    assert f"for node in {' '.join(MINIONS)}; do" in nodes
    assert 'why="node $node is not Ready (${status:-not registered}: $detail)"' in nodes
    assert '.status.conditions[?(@.type=="Ready")].reason' in nodes
    token = script_of(scripts, "token")
    assert f"cat {smoke_test.TOKEN_PATH}" in token
    assert "--cacert /etc/kubernetes/pki/ca.crt -K - https://192.168.122.130:6443/api" in token
    assert '[ "$code" = 200 ]' in token and '[ "$code" = 401 ]' in token
    assert "delete pod kubelab-smoke-token --wait=false" in token
    rc = machines[MASTER].text("/etc/kubernetes/smoke/nginx-rc.yaml")
    assert "kind: ReplicationController" in rc and "replicas: 3" in rc
    image = machines_image()
    assert f'image: "{image}"' in rc and "imagePullPolicy: IfNotPresent" in rc
    assert "topologySpreadConstraints:" in rc and "whenUnsatisfiable: ScheduleAnyway" in rc
    assert "preStop:\n              sleep:\n                seconds: 5" in rc
    pod = machines[MASTER].text("/etc/kubernetes/smoke/token-pod.yaml")
    assert "name: kubelab-smoke-token" in pod and "automountServiceAccountToken" not in pod
    assert f'image: "{image}"' in pod
    expose = script_of(scripts, "expose")
    assert f"{MODERN_KUBECTL}{IN_NAMESPACE} get service nginx >/dev/null 2>&1 || {{" in expose
    replicas = script_of(scripts, "replicas")
    assert '[ "$count" -ne 3 ]' in replicas and "-ge 2 ]" in replicas
    # The service from the master too: modern runs kube-proxy there.
    assert len(smoke.scripts[MASTER]) == len(MASTER_STEPS) + 2 + len(FIRST_DAY)
    from_master = smoke.scripts[MASTER][len(MASTER_STEPS)]
    assert f"curl -sS --connect-timeout 2 --max-time 5 http://{CLUSTER_IP}:80/" in from_master
    assert "10.20." not in from_master  # no pod IPs from the master
    # A second run sees the same commands: nothing is created twice.
    again = SmokeHosts()
    again.install(monkeypatch)
    run_deploy(machines, kubelab.deploy_smoke)
    assert again.scripts == smoke.scripts


def test_el7_master_uses_the_local_plain_port_and_the_token_secret(monkeypatch):
    smoke, machines, run = smoke_run(monkeypatch, centos7)
    scripts = smoke.scripts[MASTER]
    assert master_steps(scripts) == [*MASTER_STEPS, "replacement"]
    for text in scripts:
        assert EL7_KUBECTL in text  # kubectl 1.5 has --request-timeout (kubernetes#33958)
    account = script_of(scripts, "service account")
    assert "has no token secret" in account
    token = script_of(scripts, "token")
    # kubernetes 1.5 serves its TLS port with a self-signed certificate of its own.
    assert " -k -K - https://192.168.122.130:6443/api" in token
    assert "--wait=false" not in token  # no such flag in kubectl 1.5
    rc = machines[MASTER].text("/etc/kubernetes/smoke/nginx-rc.yaml")
    assert "topologySpreadConstraints" not in rc  # not in the 1.5 API
    assert "preStop" not in rc  # nor the sleep action (Kubernetes 1.29+)
    assert "imagePullPolicy: IfNotPresent" in rc
    # The el7 master runs no kube-proxy (as in the reference setup): no service check there.
    assert len(scripts) == len(MASTER_STEPS) + 1


def test_el7_secure_checks_the_token_against_the_cluster_ca(monkeypatch):
    smoke, _, _ = smoke_run(monkeypatch, centos7, data={"secure": True})
    token = script_of(smoke.scripts[MASTER], "token")
    assert "--cacert /etc/kubernetes/tls/ca.crt -K - https://192.168.122.130:6443/api" in token


@pytest.mark.parametrize("make", [debian12, centos7], ids=["modern", "el7"])
def test_minions_check_the_service_and_the_pods_on_the_other_minion(monkeypatch, make):
    smoke, _, run = smoke_run(monkeypatch, make)
    for minion, other in (MINIONS, MINIONS[::-1]):
        commands = run.commands[minion]
        assert "cat /run/flannel/subnet.env" in commands
        (checks,) = smoke.scripts[minion]
        assert f"curl -sS --connect-timeout 2 --max-time 5 http://{CLUSTER_IP}:80/" in checks
        assert "grep -q 'Welcome to nginx'" in checks
        mine = [ip for _, node, ip in PODS if node == minion]
        theirs = [ip for _, node, ip in PODS if node == other]
        for ip in theirs:
            assert f"http://{ip}:80/" in checks
        for ip in mine:
            assert ip not in checks
        assert f"does not answer nginx's page from {minion}" in checks


@pytest.mark.parametrize("make", [debian12, centos7], ids=["modern", "el7"])
def test_every_wait_is_bounded_by_smoke_timeout(monkeypatch, make):
    smoke, _, _ = smoke_run(monkeypatch, make, data={"smoke_timeout": 42})
    waits = 0
    for scripts in smoke.scripts.values():
        for text in scripts:
            loops = text.count("until smoke_check; do")
            waits += loops
            assert text.count("end=$(( $(date +%s) + 42 ))") == loops
            assert text.count('smoke_fail "$why (waited 42 s)"') == loops
            assert "+ 300" not in text and "waited 300" not in text
    assert waits >= 10


def test_cleanup_only_when_asked(monkeypatch):
    smoke, machines, run = smoke_run(monkeypatch, debian12)
    assert not any(MARKERS["cleanup"] in text for text in smoke.scripts[MASTER])
    assert "/etc/kubernetes/smoke/nginx-rc.yaml" in machines[MASTER].files
    smoke, machines, run = smoke_run(monkeypatch, debian12, data={"smoke_cleanup": True})
    cleanup = smoke.scripts[MASTER][-1]
    assert (
        f"{MODERN_KUBECTL}{IN_NAMESPACE} delete namespace kubelab-smoke --ignore-not-found "
        "--timeout=300s" in cleanup
    )
    assert " delete rc" not in cleanup and " delete service" not in cleanup
    assert run.commands[MASTER][-1] == "rm -rf /etc/kubernetes/smoke"


@pytest.mark.parametrize(
    ("make", "kubectl"), [(debian12, MODERN_KUBECTL), (centos7, EL7_KUBECTL)], ids=["modern", "el7"]
)
def test_every_kubectl_command_is_in_the_smoke_namespace(monkeypatch, make, kubectl):
    smoke, _, _ = smoke_run(monkeypatch, make, data={"smoke_cleanup": True})
    uses = 0
    for scripts in smoke.scripts.values():
        for text in scripts:
            for after in text.split(kubectl)[1:]:
                uses += 1
                assert after.startswith(IN_NAMESPACE + " "), after[:80]
    assert uses >= 15
    _, machines, _ = smoke_run(monkeypatch, make)
    rc = machines[MASTER].text("/etc/kubernetes/smoke/nginx-rc.yaml")
    pod = machines[MASTER].text("/etc/kubernetes/smoke/token-pod.yaml")
    assert "metadata:\n  namespace: kubelab-smoke\n  name: nginx\n" in rc
    assert "metadata:\n  namespace: kubelab-smoke\n  name: kubelab-smoke-token\n" in pod


def test_the_default_image_is_upstream_nginx():
    assert DEFAULTS["smoke_image"] == "docker.io/library/nginx:1.27"
    assert (DEFAULTS["smoke_timeout"], DEFAULTS["smoke_cleanup"]) == (300, False)


def test_the_image_is_a_setting(monkeypatch):
    _, machines, _ = smoke_run(monkeypatch, debian12, data={"smoke_image": "lab/nginx:offline"})
    assert 'image: "lab/nginx:offline"' in machines[MASTER].text(
        "/etc/kubernetes/smoke/nginx-rc.yaml"
    )


def test_a_minion_says_when_the_master_failed(monkeypatch, caplog):
    caplog.set_level("ERROR")
    with pytest.raises(Exception, match="hosts failed|No hosts remaining"):
        smoke_run(monkeypatch, debian12, failing=[MARKERS["nodes"]])
    messages = [record.getMessage() for record in caplog.records]
    for minion in MINIONS:
        assert any(
            f"smoke test: nothing checked from {minion}: the master's part of the smoke test "
            "failed or did not run" in message
            for message in messages
        ), messages


def test_a_pod_outside_its_minions_lease_fails_that_minion(monkeypatch, caplog):
    caplog.set_level("ERROR")
    pods = [*PODS[:2], ("nginx-a2", MINIONS[0], "10.20.9.3")]
    with pytest.raises(AssertionError, match="hosts failed"):
        smoke_run(monkeypatch, debian12, pods=pods)
    assert (
        f"smoke test: pod nginx-a2 on node {MINIONS[0]} has IP 10.20.9.3, outside the node's "
        "flannel lease 10.20.1.0/24 (/run/flannel/subnet.env)"
    ) in "\n".join(record.getMessage() for record in caplog.records)


def test_the_cli_runs_each_step_on_every_host_before_the_next(monkeypatch):
    """In the pyinfra CLI, operations of different hosts are ordered by the lines that call
    them: every step must be one operation of every host, in the order of the steps."""
    import pyinfra
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.host import Host
    from pyinfra.api.state import StateStage
    from pyinfra.context import ctx_host, ctx_state
    from pyinfra_cli.inventory import make_inventory

    machines = machines_with_leases(debian12)
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory(
            str(fakehosts.REPO / "inventory.py"),
            override_data={"smoke_cleanup": True},
            cwd=str(fakehosts.REPO),
            group_data_directories=[str(fakehosts.REPO / "group_data")],
        )
    fakehosts.SimulatedConnector.machines = machines
    for target in inventory:
        target.connector_cls = fakehosts.SimulatedConnector
    state.init(inventory, Config())
    connect_all(state)
    monkeypatch.setattr(
        Host,
        "get_fact",
        lambda self, cls, *a, **k: fakehosts.answer_fact(machines[self.name], cls, k),
    )
    monkeypatch.setattr(pyinfra, "is_cli", True)
    state.set_stage(StateStage.Prepare)
    with ctx_state.use(state):
        for target in inventory:
            with ctx_host.use(target):
                kubelab.deploy_smoke()
    steps = []
    for op_hash in state.get_op_order():
        assert all(op_hash in state.ops[target] for target in inventory)
        (name,) = state.get_op_meta(op_hash).names
        steps.append(name.removeprefix("Smoke test | "))
    assert steps == [
        "Every minion's Node is Ready",
        "The smoke test's namespace kubelab-smoke (once)",
        "The default service account exists",
        "Upload /etc/kubernetes/smoke/token-pod.yaml",
        "A pod gets the default service account's token, and the token authenticates",
        "Upload /etc/kubernetes/smoke/nginx-rc.yaml",
        "Apply /etc/kubernetes/smoke/nginx-rc.yaml",
        "3 nginx replicas are Running, spread over the minions",
        "kubectl -n kubelab-smoke expose rc nginx --port=80 (once)",
        "List the nginx service and pods for the other hosts' checks",
        "nginx's cluster IP answers here; on a minion, the nginx pods of the other minions by "
        "pod IP too",
        "A deleted nginx pod is replaced by the ReplicationController",
        "Upload /etc/kubernetes/smoke/probe.yaml",
        "A pod of the probe DaemonSet runs on each minion",
        "From a pod on each minion, the nginx service and the apiserver resolve by name and answer",
        "kubectl exec, logs and port-forward reach a pod",
        "A NodePort service answers on every minion's address",
        "Upload /etc/kubernetes/smoke/web-deployment.yaml",
        "A Deployment's rolling update completes",
        "Delete the smoke test's namespace kubelab-smoke, and all in it (smoke_cleanup)",
        "Remove /etc/kubernetes/smoke",
    ]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"smoke_timeout": 0}, "'smoke_timeout' on kubemaster.traininglab.com: 0 is out of range"),
        ({"smoke_timeout": "300"}, "'smoke_timeout' on .*: '300' is a string, not a whole number"),
        ({"smoke_cleanup": "yes"}, "'smoke_cleanup' on .*: 'yes' is a string, not True or False"),
        ({"smoke_image": "nginx latest"}, "'smoke_image' on .*: 'nginx latest' is not an image"),
        (
            {"smoke_imgae": "nginx"},
            "'smoke_imgae' on .*: unknown setting, did you mean 'smoke_image'",
        ),
    ],
)
def test_bad_smoke_settings_stop_before_any_command(monkeypatch, data, message):
    smoke = SmokeHosts()
    smoke.install(monkeypatch)
    machines = machines_with_leases(debian12)
    with pytest.raises(SettingError, match=message):
        run_deploy(machines, kubelab.deploy_smoke, data=data)
    assert smoke.scripts == {}


def test_parse_listing_and_leases():
    found = smoke_test.parse_listing(["noise", *listing_output()])
    assert found.cluster_ip == CLUSTER_IP and found.port == "80"
    assert [pod.node for pod in found.pods] == [node for _, node, _ in PODS]
    assert smoke_test.parse_listing(["pod a b c"]) is None
    assert smoke_test.lease_problem(found, MINIONS[0], "FLANNEL_SUBNET=10.20.1.1/24\n") is None
    assert smoke_test.lease_problem(found, MINIONS[0], None) == (
        f"node {MINIONS[0]} has no flannel lease (FLANNEL_SUBNET in /run/flannel/subnet.env)"
    )
    problem = smoke_test.lease_problem(found, MINIONS[1], "FLANNEL_SUBNET=10.20.7.1/24")
    assert problem.startswith(f"pod nginx-b1 on node {MINIONS[1]} has IP 10.20.2.2, outside")


# The commands run by /bin/sh against a fake kubectl and curl ----------------------------

FAKE_KUBECTL = r"""
import json, os, sys

path = os.environ["FAKE_STATE"]
state = json.load(open(path))
args = sys.argv[1:]
namespace = "default"
while args and args[0] in ("--kubeconfig", "-s", "-n") or args and args[0].startswith("--request"):
    if args[0] == "-n":
        namespace = args[1]
    args = args[1 if args[0].startswith("--request") else 2:]
state["calls"].append(" ".join(args))
state["namespaces_used"] = sorted(set(state.get("namespaces_used", [])) | {namespace})


def done(out="", code=0, err=""):
    json.dump(state, open(path, "w"))
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)


def not_found(kind, name):
    done(err=f'Error from server (NotFound): {kind} "{name}" not found\n', code=1)


def pod_line(name, pod):
    return f"{name} 1/1 {pod['status']} 0 1m\n"


verb, rest = args[0], args[1:]
if rest[:1] == ["namespace"]:
    name, spaces = rest[1], state["namespaces"]
    if verb == "get" and name not in spaces:
        not_found("namespaces", name)
    if verb == "get":
        done(spaces[name].get("kubelab", ""))
    if verb == "create":
        spaces[name] = {}
        done(f"namespace/{name} created\n")
    if verb == "label":
        key, value = rest[2].split("=")
        spaces[name][key] = value
        done(f"namespace/{name} labeled\n")
    if verb == "delete":
        spaces.pop(name, None)
        state["pods"], state["rc"], state["service"] = {}, False, None
        done(f"namespace {name} deleted\n")
if verb == "get" and rest[:2] == ["nodes", "--no-headers"]:
    done("".join(f"{n} {v[0]} <none> 1m v1.35.8\n" for n, v in state["nodes"].items()))
if verb == "get" and rest[0] == "node":
    node = state["nodes"].get(rest[1])
    if node is None:
        not_found("nodes", rest[1])
    done(f"{node[1]}: {node[2]}")
if verb == "get" and rest[:2] == ["serviceaccount", "default"]:
    if not state["sa"]:
        not_found("serviceaccounts", "default")
    done(" ".join(state["secrets"]) if "-o" in rest else "default 1 1m\n")
if verb == "get" and rest[0] == "pod":
    pod = state["pods"].get(rest[1])
    if pod is None:
        not_found("pods", rest[1])
    done(pod["phase"] if "-o" in rest else pod_line(rest[1], pod))
if verb == "create":
    state["pods"][state["token_pod"]] = dict(state["token_pod_state"])
    done("pod created\n")
if verb == "exec":
    pod = state["pods"][rest[0]]
    if not pod.get("token"):
        done(err="cat: no such file\n", code=1)
    done(pod["token"])
if verb == "delete":
    kind, name = rest[0], rest[1]
    if kind == "pod" and name in state["pods"]:
        pod = state["pods"].pop(name)
        if pod["app"] == "nginx" and state["replace"]:
            state["pods"][name + "-new"] = dict(pod, ip=pod["ip"] + "0")
    if kind == "rc":
        state["rc"] = False
    if kind == "service":
        state["service"] = None
    done(f"{kind} deleted\n")
if verb == "apply":
    if not state["rc"]:
        state["pods"].update(state["rc_pods"])
    state["rc"] = True
    done("replicationcontroller/nginx configured\n")
if verb == "get" and rest[0] == "pods":
    pods = {n: p for n, p in state["pods"].items() if p["app"] == "nginx"}
    if "custom-columns" in " ".join(rest):
        done("".join(
            f"{n} {p['node']} {p['phase']} {p['ip']} {p.get('deleting', '<none>')}\n"
            for n, p in pods.items()
        ))
    done("".join(pod_line(n, p) for n, p in pods.items()))
if verb == "get" and rest[0] == "service":
    if state["service"] is None:
        not_found("services", "nginx")
    done(" ".join(map(str, state["service"])) if "-o" in rest else "nginx ClusterIP\n")
if verb == "expose":
    state["service"] = [state["cluster_ip"], 80]
    done("service/nginx exposed\n")
done(err=f"fake kubectl: unexpected {args}\n", code=2)
"""

FAKE_CURL = r"""
import json, os, sys

state = json.load(open(os.environ["FAKE_STATE"]))
args = sys.argv[1:]
url = args[-1]
out = "-w" in args
if url.endswith("/api"):
    header = sys.stdin.read()
    token = header.split("Bearer ", 1)[1].split('"')[0]
    valid = token in state["tokens"] or state["any_token"]
    sys.stdout.write("200" if valid else "401")
    sys.exit(0)
host = url.split("/")[2].split(":")[0]
if host in state["answering"]:
    sys.stdout.write("<html><head><title>Welcome to nginx!</title></head></html>\n")
    sys.exit(0)
sys.stderr.write("curl: (28) Connection timed out after 5001 milliseconds\n")
sys.exit(28)
"""


def nginx_pod(node, ip, status="Running"):
    phase = "Running" if status == "Running" else "Pending"
    return {"node": node, "phase": phase, "ip": ip, "status": status, "app": "nginx"}


def cluster_state(**changes):
    state = {
        "calls": [],
        "nodes": {
            name: ["Ready", "KubeletReady", "kubelet is posting ready status"] for name in MINIONS
        },
        "namespaces": {"default": {}},
        "sa": True,
        "secrets": ["default-token-x1"],
        "pods": {},
        "token_pod": smoke_test.TOKEN_POD,
        "token_pod_state": {
            "node": MINIONS[0],
            "phase": "Running",
            "ip": "10.20.1.9",
            "status": "Running",
            "app": smoke_test.TOKEN_POD,
            "token": "eyJhbGciOiJSUzI1NiJ9.real",
        },
        "tokens": ["eyJhbGciOiJSUzI1NiJ9.real"],
        "any_token": False,
        "rc": False,
        "rc_pods": {name: nginx_pod(node, ip) for name, node, ip in PODS},
        "replace": True,
        "service": None,
        "cluster_ip": CLUSTER_IP,
        "answering": [CLUSTER_IP, *(ip for _, _, ip in PODS)],
    }
    state.update(changes)
    return state


class Shell:
    """Runs the smoke deploy's commands with /bin/sh against the fake kubectl and curl."""

    def __init__(self, tmp_path: Path, state: dict):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name, source in (("kubectl", FAKE_KUBECTL), ("curl", FAKE_CURL)):
            path = self.bin / name
            path.write_text(f"#!{sys.executable}\n{textwrap.dedent(source)}")
            path.chmod(0o755)
        (self.bin / "sleep").write_text("#!/bin/sh\nexec /bin/sleep 0.05\n")
        (self.bin / "sleep").chmod(0o755)
        self.state_path = tmp_path / "state.json"
        self.state_path.write_text(json.dumps(state))

    @property
    def state(self):
        return json.loads(self.state_path.read_text())

    def run(self, command: str) -> subprocess.CompletedProcess:
        command = command.replace("/usr/local/bin/kubectl", str(self.bin / "kubectl"))
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE_STATE": str(self.state_path)}
        return subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )


@pytest.fixture(params=[debian12, centos7], ids=["modern", "el7"])
def commands(request, monkeypatch):
    """Every host's smoke scripts, with smoke_timeout 1; the master's up to the reference
    setup's last check (test_smoke_first_day.py runs modern's first-day checks)."""
    smoke, _, _ = smoke_run(monkeypatch, request.param, data={"smoke_timeout": 1})
    scripts = smoke.scripts
    scripts[MASTER] = [text for text in scripts[MASTER] if classify(text) not in MARKERS_FIRST]
    return scripts


def run_master(tmp_path, commands, state, upto=None):
    """The master's scripts in order; the result of the last one run."""
    shell = Shell(tmp_path, state)
    result = None
    for text in commands[MASTER]:
        result = shell.run(text)
        if result.returncode or classify(text) == upto:
            break
    return shell, result


def assert_one_line(result, expected):
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [lines[0]] and lines[0].startswith("smoke test: "), result.stderr
    assert re.fullmatch(expected, lines[0]), lines[0]


def test_shell_a_healthy_cluster_passes_every_step(tmp_path, commands):
    shell = Shell(tmp_path, cluster_state())
    for text in commands[MASTER]:
        result = shell.run(text)
        assert result.returncode == 0, (text, result.stderr)
    for minion in MINIONS:
        (checks,) = commands[minion]
        result = shell.run(checks)
        assert result.returncode == 0, result.stderr
    state = shell.state
    assert state["rc"] and state["service"] == [CLUSTER_IP, 80]
    # Every kubectl call in the smoke test's namespace, made and labelled as its own.
    assert state["namespaces_used"] == ["kubelab-smoke"]
    assert state["namespaces"]["kubelab-smoke"] == {"kubelab": "smoke-test"}
    assert smoke_test.TOKEN_POD not in state["pods"]  # the one-off pod is gone
    nginx = [name for name, pod in state["pods"].items() if pod["app"] == "nginx"]
    assert len(nginx) == 3 and sum(name.endswith("-new") for name in nginx) == 1
    # The pod deleted is one of the two on the first minion: the replicas stay spread.
    assert {"nginx-a1-new", "nginx-a2-new"} & set(nginx)
    # Re-run: the service exists, so it is not exposed again.
    calls = len(state["calls"])
    for text in commands[MASTER]:
        assert shell.run(text).returncode == 0
    assert not [call for call in shell.state["calls"][calls:] if call.startswith("expose")]


def test_shell_a_pod_being_deleted_is_not_counted_listed_or_picked(tmp_path, commands):
    """A pod in its preStop (a scale-down, a drain) reads Running until it is gone."""
    rc_pods = cluster_state()["rc_pods"]
    stopping = dict(nginx_pod(MINIONS[0], "10.20.1.99"), deleting="2026-12-06T23:00:00Z")
    shell = Shell(tmp_path, cluster_state(rc_pods={**rc_pods, "nginx-a0": stopping}))
    results = [shell.run(text) for text in commands[MASTER]]
    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results]
    assert "10.20.1.99" not in "".join(r.stdout for r in results)
    assert "nginx-a0" in shell.state["pods"]  # not the pod the replacement check deleted


def test_shell_a_namespace_of_that_name_not_made_by_the_test_is_left_alone(tmp_path, commands):
    spaces = {"default": {}, "kubelab-smoke": {"team": "theirs"}}
    shell, result = run_master(tmp_path, commands, cluster_state(namespaces=spaces))
    assert_one_line(
        result,
        r"smoke test: namespace kubelab-smoke exists without the label kubelab=smoke-test: it "
        r"is not the smoke test's, which touches nothing it did not make \(delete or rename "
        r"that namespace\)",
    )
    assert shell.state["namespaces"] == spaces
    assert [call.split()[0] for call in shell.state["calls"]] == ["get", "get", "get"]


def test_shell_a_node_not_ready(tmp_path, commands):
    nodes = {
        MINIONS[0]: ["Ready", "KubeletReady", "ok"],
        MINIONS[1]: ["NotReady", "KubeletNotReady", "container runtime network not ready"],
    }
    _, result = run_master(tmp_path, commands, cluster_state(nodes=nodes))
    assert_one_line(
        result,
        rf"smoke test: node {MINIONS[1]} is not Ready \(NotReady: KubeletNotReady: container "
        r"runtime network not ready\) \(waited 1 s\)",
    )


def test_shell_a_node_not_registered(tmp_path, commands):
    nodes = {MINIONS[0]: ["Ready", "KubeletReady", "ok"]}
    _, result = run_master(tmp_path, commands, cluster_state(nodes=nodes))
    assert_one_line(
        result,
        rf"smoke test: node {MINIONS[1]} is not Ready \(not registered: Error from server "
        rf'\(NotFound\): nodes "{MINIONS[1]}" not found\) \(waited 1 s\)',
    )


def test_shell_no_service_account(tmp_path, commands):
    _, result = run_master(tmp_path, commands, cluster_state(sa=False))
    assert_one_line(
        result,
        r"smoke test: the default service account does not exist \(kube-controller-manager "
        r'creates it\): Error from server \(NotFound\): serviceaccounts "default" not found '
        r"\(waited 1 s\)",
    )


def test_shell_a_token_the_apiserver_rejects(tmp_path, commands):
    _, result = run_master(tmp_path, commands, cluster_state(tokens=[]))
    assert_one_line(
        result,
        r"smoke test: the default service account's token does not authenticate: GET "
        r"https://192\.168\.122\.130:6443/api with it answers HTTP 401, not 200 \(waited 1 s\)",
    )
    assert "eyJhbGciOiJSUzI1NiJ9" not in result.stdout + result.stderr


def test_shell_an_apiserver_that_takes_any_token_proves_nothing(tmp_path, commands):
    _, result = run_master(tmp_path, commands, cluster_state(any_token=True))
    assert_one_line(
        result,
        r"smoke test: GET https://\S+/api with a made-up token answers HTTP 200, not 401: .*",
    )


def test_shell_no_token_mounted(tmp_path, commands):
    token_pod = dict(cluster_state()["token_pod_state"], token="")
    _, result = run_master(tmp_path, commands, cluster_state(token_pod_state=token_pod))
    assert_one_line(
        result,
        r"smoke test: pod kubelab-smoke-token has no service-account token at "
        r"/var/run/secrets/kubernetes\.io/serviceaccount/token \(cat: no such file\) "
        r"\(waited 1 s\)",
    )


def test_shell_a_replica_that_cannot_pull_its_image(tmp_path, commands):
    rc_pods = cluster_state()["rc_pods"]
    rc_pods["nginx-b1"] = nginx_pod(MINIONS[1], "<none>", status="ErrImagePull")
    _, result = run_master(tmp_path, commands, cluster_state(rc_pods=rc_pods))
    assert_one_line(
        result,
        r"smoke test: nginx has 2 Running pods, not 3 \(nginx-b1 ErrImagePull\) \(waited 1 s\)",
    )


def test_shell_replicas_all_on_one_minion(tmp_path, commands):
    rc_pods = {f"nginx-{n}": nginx_pod(MINIONS[0], f"10.20.1.{n}") for n in (2, 3, 4)}
    _, result = run_master(tmp_path, commands, cluster_state(rc_pods=rc_pods))
    assert_one_line(
        result,
        rf"smoke test: nginx's 3 pods all run on {MINIONS[0]} \(expected them on at least 2 "
        r"minions\) \(waited 1 s\)",
    )


def test_shell_a_deleted_pod_not_replaced(tmp_path, commands):
    shell = Shell(tmp_path, cluster_state(replace=False))
    for text in commands[MASTER][:-1]:
        assert shell.run(text).returncode == 0
    assert_one_line(
        shell.run(commands[MASTER][-1]),
        r"smoke test: the ReplicationController did not replace the deleted nginx pod "
        r"nginx-a[12]: 2 Running pods, not 3 \(no other pods\) \(waited 1 s\)",
    )


def test_shell_the_service_does_not_answer_from_a_minion(tmp_path, commands):
    shell = Shell(tmp_path, cluster_state(answering=[ip for _, _, ip in PODS]))
    (checks,) = commands[MINIONS[0]]
    assert_one_line(
        shell.run(checks),
        rf"smoke test: service nginx \(http://{CLUSTER_IP}:80/\) does not answer nginx's page "
        rf"from {MINIONS[0]} \(curl: \(28\) Connection timed out after 5001 milliseconds\) "
        r"\(waited 1 s\)",
    )


def test_shell_a_pod_on_the_other_minion_does_not_answer(tmp_path, commands):
    shell = Shell(tmp_path, cluster_state(answering=[CLUSTER_IP, "10.20.1.2", "10.20.1.3"]))
    (checks,) = commands[MINIONS[0]]
    assert_one_line(
        shell.run(checks),
        rf"smoke test: nginx pod nginx-b1 \(http://10\.20\.2\.2:80/ on {MINIONS[1]}\) does not "
        rf"answer nginx's page from {MINIONS[0]} \(curl: \(28\) .*\) \(waited 1 s\)",
    )


def test_shell_waits_are_bounded(tmp_path, commands):
    """A check that never passes gives up after smoke_timeout (1 s here), not later."""
    nodes = {MINIONS[0]: ["NotReady", "x", "y"]}
    shell = Shell(tmp_path, cluster_state(nodes=nodes))
    started = os.times().elapsed
    result = shell.run(commands[MASTER][0])
    assert result.returncode == 1 and os.times().elapsed - started < 15
