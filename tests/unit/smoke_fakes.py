"""A fake kubectl and curl for the smoke deploy's commands run by /bin/sh, answering from one
cluster state (a JSON file) that they change as the real ones would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import MINIONS
from smoke_hosts import CLUSTER_IP, PODS

from kubelab.workflows import smoke_test

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
