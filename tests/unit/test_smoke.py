"""The smoke deploy (the reference's final tests) on simulated modern and el7 hosts: the
commands each host receives, run through the simulated hosts with a simulated API answering the
master's listing (test_smoke_shell.py runs those commands by /bin/sh)."""

from __future__ import annotations

import fakehosts
import pytest
from conftest import MASTER, MINIONS
from fakehosts import centos7, debian12, run_deploy
from smoke_hosts import (
    CLUSTER_IP,
    EL7_KUBECTL,
    FIRST_DAY,
    IN_NAMESPACE,
    MARKERS,
    MASTER_STEPS,
    MODERN_KUBECTL,
    PODS,
    SmokeHosts,
    listing_output,
    machines_image,
    machines_with_leases,
    master_steps,
    script_of,
    smoke_run,
)

import kubelab
from kubelab import SettingError
from kubelab.settings.defaults import DEFAULTS
from kubelab.workflows import smoke_test
from kubelab.workflows.smoke_from_hosts import lease_problem, parse_listing


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
    fakehosts.Hosts.machines = machines
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
    found = parse_listing(["noise", *listing_output()])
    assert found.cluster_ip == CLUSTER_IP and found.port == "80"
    assert [pod.node for pod in found.pods] == [node for _, node, _ in PODS]
    assert parse_listing(["pod a b c"]) is None
    assert lease_problem(found, MINIONS[0], "FLANNEL_SUBNET=10.20.1.1/24\n") is None
    assert lease_problem(found, MINIONS[0], None) == (
        f"node {MINIONS[0]} has no flannel lease (FLANNEL_SUBNET in /run/flannel/subnet.env)"
    )
    problem = lease_problem(found, MINIONS[1], "FLANNEL_SUBNET=10.20.7.1/24")
    assert problem.startswith(f"pod nginx-b1 on node {MINIONS[1]} has IP 10.20.2.2, outside")
