"""What a no-change re-run costs each host: every fact read and every command is one remote
command (pyinfra 3 caches no fact). On a converged cluster it stays at most BUDGET per host,
and the same for 3 machines as for 12."""

import copy
import hashlib
import inspect
import os
import re
import subprocess
import time
from datetime import datetime, timezone
from unittest.mock import patch

import gevent
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import debian12, run_deploy
from pyinfra.api import State
from pyinfra.context import ctx_state
from test_modern import pins

import kubelab
from kubelab.engine import callstack, once
from kubelab.engine.facts import (
    RACY_SECONDS,
    ManagedState,
    kept_digest_command,
    kept_digests_command,
)

BUDGET = 25


def inventory(tmp_path, minions: int) -> str:
    """An inventory of the lab's master and ``minions`` minions (group_data/ applies)."""
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "inventory.py"
    hosts = ", ".join(
        f'("kubeminion{i}.traininglab.com", {{"ssh_hostname": "192.168.122.{130 + i}"}})'
        for i in range(1, minions + 1)
    )
    path.write_text(
        'masters = [("kubemaster.traininglab.com", {"ssh_hostname": "192.168.122.130"})]\n'
        f"minions = [{hosts}]\n"
    )
    return str(path)


def rerun(tmp_path, minions: int, **data):
    """The second run over a cluster of Debian 12 hosts the first run built."""
    path = inventory(tmp_path, minions)
    names = [MASTER] + [f"kubeminion{i}.traininglab.com" for i in range(1, minions + 1)]
    machines = {name: debian12() for name in names}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki"), **data}
    run_deploy(machines, kubelab.deploy_cluster, inventory=path, data=settings)
    return run_deploy(machines, kubelab.deploy_cluster, inventory=path, data=settings)


def reads(run, name: str, fact: str) -> int:
    """How many times ``fact`` was read on host ``name``, alone or with others (Several)."""
    return sum(len(re.findall(rf"\b{fact}\b", entry)) for entry in run.facts[name])


@pytest.mark.parametrize("secure", [None, True, False])
def test_no_change_rerun_costs_at_most_the_budget_per_host(tmp_path, secure):
    run = rerun(tmp_path, 2, **({} if secure is None else {"secure": secure}))
    for name in HOSTS:
        assert run.commands[name] == []
        assert run.remote_commands(name) <= BUDGET, (name, run.facts[name])
        # what cannot change during a run is read once
        assert reads(run, name, "LinuxDistribution") == 1
        assert reads(run, name, "PackageSources") == 1
        assert reads(run, name, "ManagedState") == 1


def test_rerun_cost_per_host_is_flat_from_3_to_12_machines(tmp_path):
    small = rerun(tmp_path / "3", 2)
    large = rerun(tmp_path / "12", 11)
    assert large.remote_commands(MASTER) == small.remote_commands(MASTER) <= BUDGET
    for name in large.commands:
        if name != MASTER:
            assert large.remote_commands(name) == small.remote_commands(MINIONS[0]) <= BUDGET


def test_a_run_that_died_restarts_the_services_whose_files_it_wrote(tmp_path):
    """Files written after their service last started (the run stopped before the restart):
    the next run restarts exactly those services, and writes nothing."""
    machines = {name: debian12() for name in HOSTS}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    died = copy.deepcopy(machines)
    for machine in died.values():
        machine.restarts.clear()
    died[MASTER].unread.add("/etc/systemd/system/kube-scheduler.service")
    died[MINIONS[0]].unread.add("/etc/kubernetes/pki/kubelet.key")
    run = run_deploy(died, kubelab.deploy_cluster, data=settings)
    assert died[MASTER].restarts == ["kube-scheduler.service"]
    assert run.commands[MASTER] == [
        "systemctl daemon-reload",
        "systemctl restart kube-scheduler.service",
    ]
    assert died[MINIONS[0]].restarts == ["kubelet.service"]
    assert died[MINIONS[1]].restarts == []
    assert run.uploads == {name: {} for name in HOSTS}


def test_without_yes_a_rerun_changes_nothing_and_a_hand_edit_is_restored(tmp_path):
    """pyinfra without -y asks every operation for its changes while it prepares the run:
    what a component names afterwards is read then, the decisions are the same."""
    machines = {name: debian12() for name in HOSTS}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data=settings, check_for_changes=True)
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings, check_for_changes=True)
    assert again.commands == {name: [] for name in HOSTS}
    machines[MINIONS[1]].files["/etc/kubernetes/kube-proxy-config.yaml"].content += b"x: 1\n"
    for machine in machines.values():
        machine.restarts.clear()
    run_deploy(machines, kubelab.deploy_cluster, data=settings, check_for_changes=True)
    assert machines[MINIONS[1]].restarts == ["kube-proxy.service"]
    assert [m.restarts for name, m in machines.items() if name != MINIONS[1]] == [[], []]


FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl show for two units, each block after a blank line; OLD=1: a systemd before 248
# (no --timestamp option).
case "$*" in *--timestamp=*) [ -n "$OLD" ] && { echo "unknown option" >&2; exit 1; };; esac
first=1
for unit; do
  case "$unit" in *.service) ;; *) continue;; esac
  [ -n "$first" ] || echo; first=
  case "$unit" in
  up.service)
    echo ActiveState=active; echo SubState=running; echo UnitFileState=enabled
    if [ -n "$OLD" ]; then echo "ActiveEnterTimestamp=Thu 2026-11-26 12:00:00 UTC"
    else echo "ActiveEnterTimestamp=Thu 2026-11-26 12:00:00.123456 UTC"; fi;;
  *)
    echo ActiveState=inactive; echo SubState=dead; echo UnitFileState=disabled
    echo ActiveEnterTimestamp=;;
  esac
done
"""


@pytest.mark.parametrize("old_systemd", [False, True])
def test_managed_state_command_on_a_real_shell(tmp_path, old_systemd):
    """ManagedState's command, run by sh here (systemctl simulated), read by its process."""
    config = tmp_path / "config"
    config.write_bytes(b"x = 1\n")
    config.chmod(0o640)
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    binaries = tmp_path / "bin"
    binaries.mkdir()
    (binaries / "systemctl").write_text(FAKE_SYSTEMCTL)
    (binaries / "systemctl").chmod(0o755)
    missing = str(tmp_path / "missing")
    command = ManagedState().command(
        paths=[str(config), str(folder), missing],
        digests=[str(config), missing],
        units=["up.service", "down.service"],
        users=["root", "nobody-kubelab"],
        cache=str(tmp_path / "no-such-folder" / "sha256sums"),
    )
    env = {**os.environ, "PATH": f"{binaries}:{os.environ['PATH']}"}
    if old_systemd:
        env["OLD"] = "1"
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    state = ManagedState().process(result.stdout.splitlines())

    stat = config.stat()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    assert state["paths"][str(config)] == {
        "type": "f",
        "mode": 640,
        "user": user,
        "group": group,
        "mtime": stat.st_mtime_ns // 1000,
        "sha256": hashlib.sha256(b"x = 1\n").hexdigest(),
    }
    assert state["paths"][str(folder)]["type"] == "d"
    assert state["paths"][str(folder)]["mode"] == 700
    assert missing not in state["paths"]
    started = datetime(2026, 11, 26, 12, 0, 0, 0 if old_systemd else 123456, timezone.utc)
    since = int(started.timestamp()) * 1_000_000 + started.microsecond
    assert state["units"] == {
        "up.service": {"running": True, "enabled": True, "since": since},
        "down.service": {"running": False, "enabled": False, "since": None},
    }
    assert state["users"] == {"root": {"home": "/root", "shell": state["users"]["root"]["shell"]}}
    assert abs(state["now"] - datetime.now().timestamp()) < 60


def digests(paths, cache) -> dict:
    """ManagedState's digests of ``paths``, its command run by sh here."""
    command = ManagedState().command(paths=paths, digests=paths, cache=str(cache))
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    found = ManagedState().process(result.stdout.splitlines())["paths"]
    return {path: found[path]["sha256"] for path in paths if path in found}


def test_a_file_is_digested_again_only_when_it_changed(tmp_path):
    """What makes a re-run's digests cheap (DIGEST_CACHE), and what keeps them right."""
    folder = tmp_path / "kubelab"
    folder.mkdir()
    cache = folder / "sha256sums"
    binary, config = tmp_path / "kubelet", tmp_path / "config"
    binary.write_bytes(b"ELF v1")
    time.sleep(RACY_SECONDS + 1.1)  # settled: its ctime is older than the racy window
    config.write_bytes(b"x = 1\n")  # changed just now
    paths = [str(binary), str(config)]
    assert digests(paths, cache) == {
        str(binary): hashlib.sha256(b"ELF v1").hexdigest(),
        str(config): hashlib.sha256(b"x = 1\n").hexdigest(),
    }
    assert cache.stat().st_mode & 0o777 == 0o600
    kept = cache.read_text()
    assert str(binary) in kept and str(config) not in kept  # a racy file is not kept
    # The kept digest is what a second read reports (it does not read the file again) ...
    cache.write_text(kept.replace(hashlib.sha256(b"ELF v1").hexdigest(), "0" * 64))
    assert digests(paths, cache)[str(binary)] == "0" * 64
    # ... until the file changes, even to the same size and mtime (its ctime moves).
    stat = binary.stat()
    binary.write_bytes(b"ELF v2")
    os.utime(binary, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert digests(paths, cache)[str(binary)] == hashlib.sha256(b"ELF v2").hexdigest()
    # Replaced by another file (a new inode): read again too.
    replacement = tmp_path / "kubelet.new"
    replacement.write_bytes(b"ELF v3")
    replacement.replace(binary)
    assert digests(paths, cache)[str(binary)] == hashlib.sha256(b"ELF v3").hexdigest()


def test_without_its_folder_digests_are_read_and_nothing_is_kept(tmp_path):
    cache = tmp_path / "missing" / "sha256sums"
    config = tmp_path / "config"
    config.write_bytes(b"x")
    assert digests([str(config)], cache) == {str(config): hashlib.sha256(b"x").hexdigest()}
    assert not cache.parent.exists()


def test_the_deploy_files_frames_are_looked_up_without_scanning_every_module(tmp_path):
    """pyinfra's CLI looks up the module of every frame on the stack for every operation; the
    deploy file it executes is no module: after callstack's hint inspect answers the same (no
    module) without scanning sys.modules."""
    deploy = tmp_path / "deploy.py"
    deploy.write_text("import sys\nframe = sys._getframe()\n")
    namespace = {}
    exec(compile(deploy.read_text(), str(deploy), "exec"), namespace)
    frame = namespace["frame"]
    scanned = []

    def counting_ismodule(thing, original=inspect.ismodule):
        scanned.append(thing)
        return original(thing)

    with patch.object(inspect, "ismodule", counting_ismodule):
        assert inspect.getmodule(frame) is None
        assert len(scanned) > 100  # every module, looked at in vain
        run = State()
        run.current_deploy_filename = str(deploy)
        with ctx_state.use(run):
            callstack.deploy_file_is_no_module()
        scanned.clear()
        assert inspect.getmodule(frame) is None
        assert len(scanned) < 5


def test_an_installed_binarys_digest_is_kept_by_its_install(tmp_path):
    """downloads.binary keeps the digest it checked: the next read takes it without reading
    the file (here a made-up digest shows it), and reads the file again once it changes."""
    folder = tmp_path / "kubelab"
    folder.mkdir()
    cache = folder / "sha256sums"
    binary = tmp_path / "kubelet"
    binary.write_bytes(b"ELF v1")
    kept = "1" * 64
    subprocess.run(["sh", "-c", kept_digest_command(str(binary), kept, str(cache))], check=True)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert digests([str(binary)], cache) == {str(binary): kept}
    binary.write_bytes(b"ELF v2")
    assert digests([str(binary)], cache) == {str(binary): hashlib.sha256(b"ELF v2").hexdigest()}
    # Without the folder nothing is kept (and nothing fails).
    missing = tmp_path / "missing" / "sha256sums"
    subprocess.run(["sh", "-c", kept_digest_command(str(binary), kept, str(missing))], check=True)
    assert not missing.parent.exists()


def test_an_archives_member_digests_are_kept_by_its_install(tmp_path):
    """downloads.archive keeps the digest of each member its marker lists (the lines naming
    an absolute path): the next read takes them without reading the files."""
    folder = tmp_path / "kubelab"
    folder.mkdir()
    cache = folder / "sha256sums"
    members = [tmp_path / "ctr", tmp_path / "containerd"]
    for member in members:
        member.write_bytes(b"ELF " + member.name.encode())
    marker = tmp_path / "marker"
    kept = {str(member): str(index) * 64 for index, member in enumerate(members, 1)}
    lines = ["f" * 64 + "  containerd-2.2.9-linux-amd64.tar.gz"]
    marker.write_text("\n".join(lines + [f"{sha}  {path}" for path, sha in kept.items()]) + "\n")
    subprocess.run(["sh", "-c", kept_digests_command(str(marker), str(cache))], check=True)
    assert cache.stat().st_mode & 0o777 == 0o600
    assert digests(list(kept), cache) == kept


def test_hosts_are_prepared_one_at_a_time_while_answers_come_in():
    """pyinfra's CLI prepares every host in a greenlet. With ``-y``, inside
    ``one_host_at_a_time`` one host is prepared at a time; the pauses it makes (as
    ``placement`` does) let other greenlets run, such as the SSH exchanges of the hosts already
    prepared, but no other host's preparation. Without ``-y`` the hosts are prepared side by
    side, as pyinfra does."""
    events = []

    def prepare(name):
        with ctx_state.use(run), once.one_host_at_a_time():
            events.append(f"{name} starts")
            gevent.sleep(0)
            events.append(f"{name} ends")

    def answer():
        events.append("an answer comes in")

    run = State(check_for_changes=False)  # pyinfra -y
    preparations = [gevent.spawn(prepare, name) for name in ("master", "minion1", "minion2")]
    gevent.spawn(answer)
    gevent.joinall(preparations)
    assert events == [
        "master starts",
        "an answer comes in",
        "master ends",
        "minion1 starts",
        "minion1 ends",
        "minion2 starts",
        "minion2 ends",
    ]
    events.clear()
    run = State(check_for_changes=True)  # pyinfra without -y
    gevent.joinall([gevent.spawn(prepare, name) for name in ("master", "minion1")])
    assert events == ["master starts", "minion1 starts", "master ends", "minion1 ends"]
