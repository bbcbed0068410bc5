"""modern's first-day checks of the smoke test (kubelab/workflows/smoke_first_day.py): the commands
the master receives, and those commands run by /bin/sh against a fake kubectl and curl."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import MASTER, MINIONS
from fakehosts import centos7, debian12
from smoke_hosts import CLUSTER_IP, FIRST_DAY, IN_NAMESPACE, MODERN_KUBECTL, classify, smoke_run

from kubelab.settings.defaults import DEFAULTS

DNS_IP = "10.254.0.10"
NGINX_NAME = "nginx.kubelab-smoke.svc.cluster.local"
API_NAME = "kubernetes.default.svc.cluster.local"


@pytest.fixture
def with_cluster_dns(monkeypatch):
    """The cluster DNS's setting, as kubelab's add-ons define it."""
    monkeypatch.setitem(DEFAULTS, "cluster_dns_ip", DNS_IP)


def first_day_scripts(monkeypatch, **data) -> dict[str, str]:
    smoke, _, _ = smoke_run(monkeypatch, debian12, data={"smoke_timeout": 1, **data})
    return {classify(text): text for text in smoke.scripts[MASTER]}


def test_el7_keeps_the_reference_test(monkeypatch, with_cluster_dns):
    smoke, machines, _ = smoke_run(monkeypatch, centos7)
    assert not {classify(text) for text in smoke.scripts[MASTER]} & {*FIRST_DAY, "dns"}
    assert "/etc/kubernetes/smoke/probe.yaml" not in machines[MASTER].files


def test_modern_master_renders_each_first_day_check(monkeypatch, with_cluster_dns):
    smoke, machines, _ = smoke_run(monkeypatch, debian12)
    scripts = {classify(text): text for text in smoke.scripts[MASTER]}
    assert [name for name in scripts if name in {*FIRST_DAY, "dns"}] == [
        "probes",
        "dns",
        "tools",
        "node port",
        "rollout",
    ]
    for name in (*FIRST_DAY, "dns"):
        assert f"{MODERN_KUBECTL}{IN_NAMESPACE} " in scripts[name]
        assert " default " not in scripts[name]
    dns = scripts["dns"]
    assert f"getent hosts {NGINX_NAME}" in dns and f"getent hosts {API_NAME}" in dns
    assert "/dev/tcp/nginx/80" in dns and f"/dev/tcp/{API_NAME}/443" in dns
    for minion in MINIONS:
        assert minion in dns  # every minion must have its probe pod
    tools = scripts["tools"]
    assert 'port-forward "pod/$pod" :80' in tools and ' logs "$pod"' in tools
    assert 'exec "$pod" -- cat /etc/hostname' in tools
    node_port = scripts["node port"]
    assert "expose rc nginx --name=nginx-nodeport --type=NodePort --port=80" in node_port
    assert len(re.findall(r"--max-time 5 http://[\d.]+:\$port/", node_port)) == len(MINIONS)
    rollout = scripts["rollout"]
    assert "rollout status deployment/web --timeout=300s" in rollout
    assert "rollout restart deployment/web" in rollout
    probe = machines[MASTER].text("/etc/kubernetes/smoke/probe.yaml")
    assert "kind: DaemonSet" in probe and "namespace: kubelab-smoke" in probe
    web = machines[MASTER].text("/etc/kubernetes/smoke/web-deployment.yaml")
    assert "kind: Deployment" in web and "maxUnavailable: 0" in web


# The commands run by /bin/sh ---------------------------------------------------------------

FAKE_KUBECTL = r"""
import json, os, re, sys, time

path = os.environ["FAKE_STATE"]
state = json.load(open(path))
args = sys.argv[1:]
while args and (args[0] in ("--kubeconfig", "-n") or args[0].startswith("--request")):
    args = args[1 if args[0].startswith("--request") else 2:]
state["calls"].append(" ".join(args))


def done(out="", code=0, err=""):
    json.dump(state, open(path, "w"))
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)


verb, rest = args[0], args[1:]
if verb == "apply":
    done("configured\n")
if verb == "get" and rest[:1] == ["pods"]:
    done("".join(f"{pod} {node} {phase}\n" for pod, node, phase in state["probes"]))
if verb == "get" and rest[:2] == ["service", "nginx"]:
    done(state["cluster_ip"])
if verb == "get" and rest[:2] == ["service", "nginx-nodeport"]:
    if state["node_port"] is None:
        done(err='Error from server (NotFound): services "nginx-nodeport" not found\n', code=1)
    done(str(state["node_port"]) if "-o" in rest else "nginx-nodeport NodePort\n")
if verb == "expose":
    state["node_port"] = 30080
    done("service/nginx-nodeport exposed\n")
if verb == "exec":
    pod, command = rest[0], rest[2:]
    if command[:1] == ["timeout"]:
        command = command[2:]
    if command[:2] == ["getent", "hosts"]:
        ip = state["dns"].get(command[2])
        done(f"{ip}       {command[2]}\n" if ip else "", 0 if ip else 2)
    if command[:2] == ["bash", "-c"]:
        host, port, get = re.search(r"/dev/tcp/([^/]+)/(\d+)(.*)", command[2]).groups()
        if f"{host}:{port}" not in state["tcp"]:
            done(err=f"bash: connect: Connection refused\n", code=1)
        asked = re.search(r"GET (\S+)", get)
        if asked:
            line = f'10.20.1.1 - - "GET {asked[1]} HTTP/1.0" 404'
            state["logs"].setdefault(pod, []).append(line)
            done("HTTP/1.1 200 OK\r\n\r\n<title>Welcome to nginx!</title>\n")
        done()
    if command == ["cat", "/etc/hostname"]:
        done(state["hostname"] or pod)
if verb == "logs":
    done("\n".join(state["logs"].get(rest[0], [])) + "\n")
if verb == "port-forward":
    if not state["port_forward"]:
        done(err="error: unable to forward port because pod is not running\n", code=1)
    json.dump(state, open(path, "w"))
    print("Forwarding from 127.0.0.1:40123 -> 80", flush=True)
    time.sleep(30)
    sys.exit(0)
if verb == "rollout":
    if rest[0] == "status" and not state["rollout"]:
        done(err="error: timed out waiting for the condition\n", code=1)
    done(f"deployment \"web\" {rest[0]}\n")
done(err=f"fake kubectl: unexpected {args}\n", code=2)
"""

FAKE_CURL = r"""
import json, os, sys

state = json.load(open(os.environ["FAKE_STATE"]))
url = sys.argv[-1]
if url.split("/")[2] in state["answering"]:
    sys.stdout.write("<html><head><title>Welcome to nginx!</title></head></html>\n")
    sys.exit(0)
sys.stderr.write("curl: (7) Failed to connect: Connection refused\n")
sys.exit(7)
"""


def minion_addresses(script: str) -> list[str]:
    return re.findall(r"--max-time 5 http://([\d.]+):\$port/", script)


def cluster(node_port_addresses, **changes) -> dict:
    state = {
        "calls": [],
        "probes": [(f"probe-{n}", minion, "Running") for n, minion in enumerate(MINIONS)],
        "cluster_ip": CLUSTER_IP,
        "dns": {NGINX_NAME: CLUSTER_IP, API_NAME: "10.254.0.1"},
        "tcp": ["nginx:80", f"{API_NAME}:443", "127.0.0.1:80"],
        "hostname": None,
        "logs": {},
        "port_forward": True,
        "node_port": None,
        "answering": ["127.0.0.1:40123", *(f"{a}:30080" for a in node_port_addresses)],
        "rollout": True,
    }
    state.update(changes)
    return state


def run(tmp_path, script: str, state: dict) -> tuple[subprocess.CompletedProcess, dict]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, source in (("kubectl", FAKE_KUBECTL), ("curl", FAKE_CURL)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{textwrap.dedent(source)}")
        path.chmod(0o755)
    (bin_dir / "sleep").write_text("#!/bin/sh\nexec /bin/sleep 0.05\n")
    (bin_dir / "sleep").chmod(0o755)
    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps(state))
    script = script.replace("/usr/local/bin/kubectl", str(bin_dir / "kubectl"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_STATE": str(state_path)}
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    return result, json.loads(state_path.read_text())


def one_line(result, expected: str):
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("smoke test: "), result.stderr
    assert re.fullmatch(expected, lines[0]), lines[0]


@pytest.fixture
def scripts(monkeypatch, with_cluster_dns):
    return first_day_scripts(monkeypatch)


def test_shell_a_healthy_cluster_passes_every_first_day_check(
    tmp_path, monkeypatch, with_cluster_dns
):
    # waits of 30 s: the fake kubectl, a Python program, starts slowly on a loaded machine
    scripts = first_day_scripts(monkeypatch, smoke_timeout=30)
    addresses = minion_addresses(scripts["node port"])
    state = cluster(addresses)
    for name in ("probes", "dns", "tools", "node port", "rollout"):
        result, state = run(tmp_path, scripts[name], state)
        assert result.returncode == 0, (name, result.stderr)
    assert state["node_port"] == 30080
    assert any(call.startswith("rollout restart deployment/web") for call in state["calls"])
    # a re-run exposes nothing twice
    result, state = run(tmp_path, scripts["node port"], dict(state, calls=[]))
    assert result.returncode == 0 and not [c for c in state["calls"] if c.startswith("expose")]


def test_shell_a_minion_without_its_probe_pod(tmp_path, scripts):
    probes = [("probe-0", MINIONS[0], "Running"), ("probe-1", MINIONS[1], "Pending")]
    result, _ = run(tmp_path, scripts["probes"], cluster([], probes=probes))
    one_line(
        result,
        rf"smoke test: no Running pod of the probe DaemonSet on node {MINIONS[1]} "
        r"\(waited 1 s\)",
    )


def test_shell_a_name_that_does_not_resolve(tmp_path, scripts):
    result, _ = run(tmp_path, scripts["dns"], cluster([], dns={API_NAME: "10.254.0.1"}))
    one_line(
        result,
        rf"smoke test: from pod probe-0 on {MINIONS[0]}, {NGINX_NAME} does not resolve to "
        rf"nginx's cluster IP {CLUSTER_IP} \(no answer\) \(waited 1 s\)",
    )


def test_shell_the_apiserver_by_name_refuses(tmp_path, scripts):
    result, _ = run(tmp_path, scripts["dns"], cluster([], tcp=["nginx:80"]))
    one_line(
        result,
        rf"smoke test: from pod probe-0 on {MINIONS[0]}, {API_NAME} accepts no connection on "
        r"port 443 \(bash: connect: Connection refused\) \(waited 1 s\)",
    )


def test_shell_nginx_by_its_short_name_does_not_answer(tmp_path, scripts):
    result, _ = run(tmp_path, scripts["dns"], cluster([], tcp=[f"{API_NAME}:443"]))
    one_line(
        result,
        rf"smoke test: from pod probe-0 on {MINIONS[0]}, http://nginx/ \(its short name\) does "
        r"not answer nginx's page \(bash: connect: Connection refused\) \(waited 1 s\)",
    )


def test_shell_exec_logs_and_port_forward(tmp_path, scripts):
    result, _ = run(tmp_path, scripts["tools"], cluster([], hostname="elsewhere"))
    one_line(
        result,
        r"smoke test: kubectl exec probe-0 -- cat /etc/hostname answers elsewhere, not probe-0 "
        r"\(waited 1 s\)",
    )
    result, _ = run(tmp_path, scripts["tools"], cluster([], tcp=[]))
    one_line(
        result,
        r"smoke test: kubectl logs probe-0 does not show the request for /kubelab-smoke-logs "
        r"just made \(\) \(waited 1 s\)",
    )
    result, _ = run(tmp_path, scripts["tools"], cluster([], port_forward=False))
    one_line(
        result,
        r"smoke test: kubectl port-forward probe-0 :80 forwards no port \(error: unable to "
        r"forward port because pod is not running \) \(waited 1 s\)",
    )


def test_shell_a_node_port_that_does_not_answer_on_one_minion(tmp_path, scripts):
    first, second = minion_addresses(scripts["node port"])
    result, _ = run(tmp_path, scripts["node port"], cluster([first]))
    one_line(
        result,
        rf"smoke test: node port 30080 of service nginx-nodeport on {MINIONS[1]} "
        rf"\(http://{second}:30080/\) does not answer nginx's page from the master \(curl: "
        r"\(7\) Failed to connect: Connection refused\) \(waited 1 s\)",
    )


def test_shell_a_rollout_that_does_not_complete(tmp_path, scripts):
    result, _ = run(tmp_path, scripts["rollout"], cluster([], rollout=False))
    one_line(
        result,
        r"smoke test: kubectl -n kubelab-smoke rollout status deployment/web --timeout=1s "
        r"fails: error: timed out waiting for the condition",
    )
