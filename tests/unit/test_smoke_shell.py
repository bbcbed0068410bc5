"""The smoke deploy's commands (as the simulated hosts received them) run by /bin/sh against
a fake kubectl and curl: each wait is bounded, and a failure is one line naming what is not
ready."""

from __future__ import annotations

import os
import re

import pytest
from conftest import MASTER, MINIONS
from fakehosts import centos7, debian12
from smoke_fakes import Shell, cluster_state, nginx_pod
from smoke_hosts import CLUSTER_IP, MARKERS_FIRST, PODS, classify, smoke_run

from kubelab.workflows import smoke_test


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
