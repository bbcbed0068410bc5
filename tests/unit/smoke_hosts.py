"""The smoke deploy on simulated hosts: what its commands answer there (the master's listing
from a simulated API), the scripts each host received, and which step each script is."""

from __future__ import annotations

import re

import fakehosts
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import FileState, run_deploy
from pyinfra.connectors.util import CommandOutput, OutputLine

import kubelab
from kubelab.settings.defaults import setting
from kubelab.workflows import smoke_test

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
            machine = fakehosts.Hosts.machines[self.host.name]
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
    # modern's first-day checks (kubelab/workflows/smoke_first_day.py)
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
