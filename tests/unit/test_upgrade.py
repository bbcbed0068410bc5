"""Upgrading (deploys/upgrade.py) on simulated Debian 12 hosts.

The cluster is built by ``deploy_cluster`` at older releases (``OLD``), then given what a running
cluster holds (test_day_two's ``running``: Node objects, leases, pods). The simulated hosts know
which binary each service started with, so the master's kubectl reports the apiserver's and each
Node's kubelet version as a real one would. The upgrade must snapshot etcd first, upgrade the
master, then each minion in turn (drain, binaries, restarts, Ready at the new version, uncordon),
and a second run, or a cluster.py run at the new versions, must change nothing.
"""

import copy
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import HOSTS, MASTER, MINIONS, with_own_pki
from fakehosts import REPO, debian12, run_deploy
from test_day_two import running

import kubelab
from kubelab.components import catalog
from kubelab.engine import artifacts
from kubelab.engine.facts import KubeVersions
from kubelab.settings.defaults import DEFAULTS
from kubelab.workflows import upgrade_operations, upgrade_policy

MINION1, MINION2 = MINIONS
OLD = {
    "kube_version": "v1.34.4",
    "etcd_version": "v3.5.21",
    "flannel_version": "v0.27.4",
    "containerd_version": "v2.1.5",
    "runc_version": "v1.3.0",
}
NEW = {name: DEFAULTS[name] for name in OLD}


def pins(*releases: dict) -> dict:
    """A made-up sha256 for every artifact of each set of releases, pinned per release."""
    found = {}
    for versions in releases:
        data = SimpleNamespace(**{**DEFAULTS, **versions})
        for artifact in catalog.master_artifacts(data) + catalog.minion_artifacts(data):
            key = artifacts.pin_keys(artifact)[0]
            found[key] = hashlib.sha256(key.encode()).hexdigest()
    return found


PINS = pins(OLD, NEW)


@pytest.fixture(scope="module")
def old_cluster(tmp_path_factory):
    """A running cluster at the OLD releases (never changed: tests work on copies)."""
    pki = tmp_path_factory.mktemp("upgrade") / "kubelab" / "pki"
    settings = {"artifact_sha256": PINS, "pki_dir": str(pki)}
    machines = {name: debian12() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data={**settings, **OLD})
    return running(machines), settings


@pytest.fixture
def lab(old_cluster, tmp_path):
    """A copy of the old cluster with a PKI of its own (the snapshot lands beside it)."""
    machines, settings = old_cluster
    return with_own_pki(machines, settings, tmp_path)


def upgrade(machines, settings, expect_failures=False, **data):
    return run_deploy(
        machines,
        kubelab.deploy_upgrade,
        data={**settings, **data},
        expect_failures=expect_failures,
    )


def versions(machines) -> dict:
    """What kubectl on the master reports now."""
    lines = __import__("fakehosts").versions_lines(machines[MASTER])
    return KubeVersions().process(lines)


def kind(command: str) -> str:
    """A short name for an upgrade command."""
    if "snapshot save" in command:
        return "snapshot"
    if command.startswith("(download "):
        return "download snapshot"
    if command.startswith("rm -f /var/lib/kubelab/backups/"):
        return "remove snapshot"
    if " cordon " in command and " drain " in command:
        return "drain " + re.search(r" drain (\S+)", command)[1]
    if "get --raw /readyz" in command:
        return "readyz"
    if "10256/livez" in command:
        return "livez"
    if " uncordon " in command:
        return "ready+uncordon " + re.search(r" uncordon (\S+) ", command)[1]
    if " annotate node " in command:
        return "annotate " + re.search(r" annotate node (\S+) ", command)[1]
    if command.startswith("systemctl restart "):
        return "restart " + command.split()[2].removesuffix(".service")
    match = re.search(r"-o (\S+?)(?:\.download)? (?:https?://\S+?/)?(\S+) 2>&1", command)
    if "sha256sum -c" in command and match:
        return "install " + match[2].rsplit("/", 1)[-1]
    if command.startswith("mkdir -p") or "/sha256sums" in command:
        return "mkdir"  # and the installed binary's digest kept: no step of the upgrade's
    return command[:40]


def test_upgrade_snapshot_then_master_then_each_minion_in_turn(lab, order):
    machines, settings = lab
    assert versions(machines)["api"] == "v1.34.4"
    upgrade(machines, settings)
    steps = [(name, kind(command)) for name, command in order if kind(command) != "mkdir"]

    # 1. The snapshot, before anything else.
    assert steps[:3] == [
        (MASTER, "snapshot"),
        (MASTER, "download snapshot"),
        (MASTER, "remove snapshot"),
    ]
    # 2. The master: etcd, then the apiserver and its readyz, then the others.
    master = [what for name, what in steps[3:] if name == MASTER and "ready+" not in what]
    master = [what for what in master if not what.startswith(("drain", "annotate"))]
    assert master == [
        "install etcd-v3.6.14-linux-amd64.tar.gz",
        "restart etcd",
        "install kube-apiserver",
        "restart kube-apiserver",
        "readyz",
        "install kube-controller-manager",
        "restart kube-controller-manager",
        "install kube-scheduler",
        "restart kube-scheduler",
        "install kubectl",
        "install kube-proxy",
        "restart kube-proxy",
        "livez",
        "install flanneld-amd64",
        "restart flanneld",
    ]
    first_minion = next(i for i, (name, _) in enumerate(steps) if name != MASTER)
    assert steps[first_minion - 1] == (MASTER, f"drain {MINION1}")
    assert all(name == MASTER for name, _ in steps[:first_minion])

    # 3. One minion at a time: drain, its binaries, its restarts, Ready and uncordon.
    hosts = [name for name, _ in steps[first_minion - 2 :]]
    turn1 = [(MASTER, f"annotate {MINION1}"), (MASTER, f"drain {MINION1}")]
    own = [what for name, what in steps if name == MINION1]
    assert own == [
        "install kubelet",
        "install kube-proxy",
        "install flanneld-amd64",
        "install containerd-2.2.9-linux-amd64.tar.gz",
        "install runc.amd64",
        "restart flanneld",
        "restart containerd",
        "restart kubelet",
        "restart kube-proxy",
    ]
    turn1 += [(MINION1, what) for what in own] + [(MASTER, f"ready+uncordon {MINION1}")]
    turn2 = [(MASTER, f"annotate {MINION2}"), (MASTER, f"drain {MINION2}")]
    turn2 += [(MINION2, what) for what in own] + [(MASTER, f"ready+uncordon {MINION2}")]
    assert steps[first_minion - 2 :] == turn1 + turn2, hosts

    # The drain is node_removal's: the same flags and bounds.
    drain = next(c for _, c in order if " drain " in c)
    assert (
        f"drain {MINION1} --ignore-daemonsets --delete-emptydir-data --timeout=300s "
        "--skip-wait-for-delete-timeout=60 2>&1" in drain
    )

    # Everything runs the new releases, every Node is schedulable again.
    found = versions(machines)
    assert found["api"] == "v1.35.8" and found["etcd"] == "v3.6.14"
    for name in MINIONS:
        assert found["nodes"][name] == {
            "kubelet": "v1.35.8",
            "runtime": "containerd://2.2.9",
            "unschedulable": False,
            "upgrading": None,
            "keep_cordoned": False,
        }
    assert machines[MASTER].drained == MINIONS and not machines[MASTER].cordoned


def test_the_snapshot_is_kept_beside_the_pki_for_root_only(lab, order):
    machines, settings = lab
    upgrade(machines, settings)
    snapshot = next(c for _, c in order if "snapshot save" in c)
    assert "timeout 900 env ETCDCTL_API=3 etcdctl --endpoints=https://192.168.122.130:2379" in (
        snapshot
    )
    assert "--dial-timeout=5s --command-timeout=10s --cacert=/etc/etcd/pki/ca.crt" in snapshot
    assert snapshot.startswith("umask 077 && mkdir -p /var/lib/kubelab/backups")
    backups = Path(settings["pki_dir"]).parent / "backups"
    (saved,) = backups.iterdir()
    assert re.fullmatch(r"etcd-\d{8}T\d{6}Z\.db", saved.name)
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert b"/atomic.io/network/config" in saved.read_bytes()
    assert not any(p.startswith("/var/lib/kubelab/backups/") for p in machines[MASTER].files)


def test_second_upgrade_changes_nothing(lab):
    machines, settings = lab
    upgrade(machines, settings)
    run = upgrade(machines, settings)
    assert run.commands == {host: [] for host in HOSTS}
    assert run.uploads == {host: {} for host in HOSTS}
    for name in HOSTS:
        # read once, with the archives' markers
        assert sum("ManagedState" in entry for entry in run.facts[name]) == 1
    assert (
        not (Path(settings["pki_dir"]).parent / "backups").exists()
        or len(list((Path(settings["pki_dir"]).parent / "backups").iterdir())) == 1
    )


def test_cluster_rerun_at_the_new_releases_changes_nothing(lab):
    machines, settings = lab
    upgrade(machines, settings)
    run = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert run.commands == {host: [] for host in HOSTS}
    assert run.uploads == {host: {} for host in HOSTS}


def test_a_cluster_at_the_wanted_releases_is_left_alone(lab):
    machines, settings = lab
    run = upgrade(machines, settings, **OLD)
    assert run.commands == {host: [] for host in HOSTS}
    assert not (Path(settings["pki_dir"]).parent / "backups").exists()


def test_only_the_kubernetes_release_changes(lab, order):
    machines, settings = lab
    upgrade(machines, settings, **{**OLD, "kube_version": NEW["kube_version"]})
    minion = [kind(c) for name, c in order if name == MINION2 and kind(c) != "mkdir"]
    assert minion == [
        "install kubelet",
        "install kube-proxy",
        "restart kubelet",
        "restart kube-proxy",
    ]
    master = [kind(c) for name, c in order if name == MASTER]
    assert "restart etcd" not in master and "restart flanneld" not in master
    assert master[:3] == ["snapshot", "download snapshot", "remove snapshot"]


def test_a_failed_drain_stops_before_the_minion_is_touched(lab, caplog):
    machines, settings = lab
    machines[MASTER].undrainable = {MINION1: ["default/bare"]}
    before = copy.deepcopy({name: machines[name] for name in MINIONS})
    caplog.set_level("ERROR")
    run = upgrade(machines, settings, expect_failures=True)
    assert run.failed == [MASTER]
    assert run.commands[MINION1] == [] and run.commands[MINION2] == []
    assert {name: machines[name] for name in MINIONS} == before
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "waiting on the pods to leave (kubectl drain, at most 300 s: drain_timeout)" in messages


def test_a_minion_never_ready_stays_cordoned_and_the_next_one_waits(lab, caplog):
    machines, settings = lab
    machines[MINION1].not_ready.add("kubelet")
    caplog.set_level("ERROR")
    run = upgrade(machines, settings, expect_failures=True)
    assert run.failed == [MASTER]
    assert MINION1 in machines[MASTER].cordoned
    assert run.commands[MINION2] == []  # not drained, not touched
    assert machines[MASTER].drained == [MINION1]
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert f"the upgrade of {MINION2} is not started: {MASTER} failed" in messages
    assert f"waiting on Node {MINION1} Ready at v1.35.8 (at most 300 s: upgrade_timeout)" in (
        messages
    )
    # Once it becomes Ready, a re-run finishes the first and upgrades the second.
    machines[MINION1].not_ready.clear()
    upgrade(machines, settings)
    assert not machines[MASTER].cordoned
    assert {n["kubelet"] for n in versions(machines)["nodes"].values()} == {"v1.35.8"}


def test_a_run_that_died_after_installing_restarts_what_it_left(lab):
    machines, settings = lab
    upgrade(machines, settings)
    # The kubelet of minion 2 still runs the old binary, its new one written after its start.
    machines[MINION2].started["kubelet.service"] = b"https://dl.k8s.io/v1.34.4/bin/kubelet"
    machines[MINION2].unread.add("/usr/local/bin/kubelet")
    run = upgrade(machines, settings)
    assert run.commands[MINION1] == []
    assert run.commands[MINION2] == ["systemctl restart kubelet.service"]
    assert [kind(c) for c in run.commands[MASTER]][-3:] == [
        f"annotate {MINION2}",
        f"drain {MINION2}",
        f"ready+uncordon {MINION2}",
    ]


# The shell of the master's waits and of the versions fact, on a real shell -------------------

FAKE_KUBECTL = r"""
import json, os, sys
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout")]
if args[:1] == ["--kubeconfig"]:
    args = args[2:]
state = os.environ["FAKE_STATE"]
if args[:2] == ["get", "--raw"]:
    print(json.dumps({"major": "1", "minor": "35", "gitVersion": "v1.35.8"}, indent=2))
elif args[:2] == ["get", "nodes"]:
    print("node kubeminion1|v1.35.8|containerd://2.2.9||")
    print("node kubeminion2|v1.34.4|containerd://2.1.5|true|v1.35.8")
elif args[:2] == ["get", "node"]:
    print(open(state).read().strip(), end="")
elif args[0] == "uncordon":
    print(f"node/{args[1]} uncordoned")
elif args[0] == "annotate":
    print(f"node/{args[2]} annotated")
else:
    sys.exit(2)
"""


def fake_tools(tmp_path) -> tuple[Path, Path]:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{textwrap.dedent(FAKE_KUBECTL)}")
    etcd = tmp_path / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcd Version: 3.6.14'\necho 'Git SHA: 0'\n")
    for tool in (kubectl, etcd):
        tool.chmod(0o755)
    return kubectl, etcd


def test_shell_the_versions_fact_reads_api_nodes_and_etcd(tmp_path):
    kubectl, etcd = fake_tools(tmp_path)
    command = KubeVersions().command(
        kubectl=f"{kubectl} --kubeconfig /x --request-timeout=20s", etcd=str(etcd)
    )
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FAKE_STATE": "/dev/null", "PATH": "/usr/bin:/bin"},
    )
    assert KubeVersions().process(result.stdout.splitlines()) == {
        "api": "v1.35.8",
        "etcd": "v3.6.14",
        "nodes": {
            "kubeminion1": {
                "kubelet": "v1.35.8",
                "runtime": "containerd://2.2.9",
                "unschedulable": False,
                "upgrading": None,
                "keep_cordoned": False,
            },
            "kubeminion2": {
                "kubelet": "v1.34.4",
                "runtime": "containerd://2.1.5",
                "unschedulable": True,
                "upgrading": "v1.35.8",
                "keep_cordoned": False,
            },
        },
        "error": None,
    }


def test_shell_the_node_wait_is_bounded_and_names_what_it_saw(tmp_path, lab, monkeypatch):
    machines, settings = lab
    machines[MINION1].not_ready.add("kubelet")
    monkeypatch.setattr(upgrade_operations, "WAIT_INTERVAL", 1)
    run = upgrade(machines, settings, expect_failures=True, upgrade_timeout=2)
    wait = next(c for c in run.commands[MASTER] if " uncordon " in c)
    kubectl, _ = fake_tools(tmp_path)
    state = tmp_path / "node"
    state.write_text("v1.34.4 True")
    command = wait.replace("/usr/local/bin/kubectl", str(kubectl))
    env = {"FAKE_STATE": str(state), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kubelab: {MASTER}: upgrading node {MINION1}: not Ready at v1.35.8 within 2 s "
        "(upgrade_timeout); it stays cordoned: v1.34.4 True"
    ]
    state.write_text("v1.35.8 True")
    result = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr


# The version skew rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "wanted", "allow", "phrase"),
    [
        ((1, 34, 4), (1, 35, 8), False, None),
        ((1, 35, 8), (1, 35, 8), False, None),
        ((1, 35, 1), (1, 35, 8), False, None),
        ((1, 33, 5), (1, 35, 8), False, "skips a minor version"),
        ((1, 35, 9), (1, 35, 8), False, "a downgrade \\(set upgrade_allow_downgrade=True"),
        ((1, 35, 9), (1, 35, 8), True, None),
        ((1, 36, 0), (1, 35, 8), True, "back a minor version from v1.36.0 \\(1.36 -> 1.35\\)"),
        ((1, 35, 8), (2, 0, 0), False, "changes the major version"),
    ],
)
def test_step_rules(running, wanted, allow, phrase):
    problem = upgrade_policy.step_problem("the apiserver", running, wanted, allow)
    if phrase is None:
        assert problem is None
    else:
        assert re.search(phrase, problem), problem


def test_pyinfra_without_y_decides_the_same(lab, tmp_path):
    machines, settings = lab
    other = copy.deepcopy(machines)
    with_y = upgrade(machines, settings)
    pki = tmp_path / "other" / "pki"
    shutil.copytree(Path(settings["pki_dir"]), pki)
    without_y = run_deploy(
        other,
        kubelab.deploy_upgrade,
        data={**settings, "pki_dir": str(pki)},
        check_for_changes=True,
    )
    strip = lambda commands: [re.sub(r"etcd-\d{8}T\d{6}Z", "etcd-T", c) for c in commands]  # noqa: E731
    assert {h: strip(c) for h, c in without_y.commands.items()} == {
        h: strip(c) for h, c in with_y.commands.items()
    }


@pytest.mark.parametrize("mode", ["serial", "no_wait"])
def test_a_run_whose_hosts_do_not_wait_for_each_other_touches_nothing(lab, mode):
    """Under pyinfra's --serial or --no-wait each host runs all its operations on its own: the
    master would drain every minion before any is upgraded, and leave them cordoned. The
    upgrade's first operation fails every host it runs on instead, before anything else."""
    machines, settings = lab
    before = copy.deepcopy(machines)
    run = run_deploy(
        machines,
        kubelab.deploy_upgrade,
        data={**settings},
        expect_failures=True,
        **{mode: True},
    )
    assert run.commands == {host: [] for host in HOSTS}
    assert machines[MASTER].cordoned == set() and machines[MASTER].drained == []
    assert machines == before


@pytest.mark.parametrize("flag", ["--serial", "--no-wait"])
def test_the_cli_refuses_serial_and_no_wait_in_one_line(tmp_path, flag):
    """pyinfra's CLI with --serial or --no-wait: one line before any host is touched (the
    inventory is not even checked: it holds no minion here)."""
    (tmp_path / "inventory.py").write_text('masters = ["@local"]\n')
    pyinfra = Path(sys.executable).with_name("pyinfra")
    result = subprocess.run(
        [str(pyinfra), "inventory.py", str(REPO / "deploys" / "upgrade.py"), flag, "--dry"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 1, output
    error = [line for line in output.splitlines() if "kubelab:" in line]
    assert error == [
        f"--> pyinfra error: kubelab: deploys/upgrade.py refuses pyinfra's {flag}: it drains "
        "and upgrades one minion at a time, which needs every host to finish each operation "
        f"before the next begins; under {flag} each host runs all its operations on its own: "
        "run it without"
    ], output


def test_a_node_the_operator_cordoned_stays_cordoned(lab):
    """A Node cordoned before the upgrade is drained and upgraded like the others, and left
    cordoned; the others are uncordoned as usual."""
    machines, settings = lab
    machines[MASTER].cordoned.add(MINION1)
    upgrade(machines, settings)
    found = versions(machines)["nodes"]
    assert {node["kubelet"] for node in found.values()} == {"v1.35.8"}
    assert machines[MASTER].drained == MINIONS
    assert machines[MASTER].cordoned == {MINION1}
    assert not machines[MASTER].annotated and not machines[MASTER].keep_cordoned
    assert upgrade(machines, settings).commands == {host: [] for host in HOSTS}
    assert machines[MASTER].cordoned == {MINION1}


def test_an_operators_cordon_survives_an_upgrade_resumed_after_a_failure(lab):
    """The upgrade of the Node the operator cordoned fails (never Ready): the re-run that
    finishes it (the Node cordoned by then either way) still leaves it cordoned."""
    machines, settings = lab
    machines[MASTER].cordoned.add(MINION1)
    machines[MINION1].not_ready.add("kubelet")
    upgrade(machines, settings, expect_failures=True)
    assert machines[MASTER].keep_cordoned == {MINION1}
    machines[MINION1].not_ready.clear()
    upgrade(machines, settings)
    assert machines[MASTER].cordoned == {MINION1}
    assert {node["kubelet"] for node in versions(machines)["nodes"].values()} == {"v1.35.8"}
