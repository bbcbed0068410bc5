"""kubelab touches only the cluster's hosts: an inventory host outside the groups masters and
minions (a registry beside the cluster) gets no operation and no command from any deploy, and
each run says in one line that it is left alone."""

import copy
import logging
import os

import pytest
from conftest import HOSTS, MASTER, MINIONS, with_own_pki
from fakehosts import REPO, FileState, Machine, debian12, run_deploy
from smoke_hosts import SmokeHosts, machines_with_leases
from test_day_two import ADDRESSES, kubelab_left, running
from test_upgrade import NEW, OLD, PINS

import kubelab

REGISTRY = "registry.traininglab.com"
LINE = f"kubelab: leaving 1 host outside masters/minions untouched: {REGISTRY}"
SENTINEL = "/var/lib/etcd/keep-me"


def registry() -> Machine:
    """A host of someone else's, running its own containerd and etcd."""
    machine = debian12()
    machine.install("containerd")
    machine.install("etcd-server")
    for unit in ("containerd.service", "etcd.service"):
        machine.units[unit] = {"active": True, "enabled": True}
    machine.files[SENTINEL] = FileState(b"not kubelab's")
    machine.files["/var/lib/containerd/io.containerd.metadata.v1.bolt/meta.db"] = FileState(b"db")
    return machine


def write_inventory(tmp_path) -> str:
    def group(names):
        return [(name, {"ssh_hostname": ADDRESSES[name]}) for name in names]

    text = f"masters = {group([MASTER])!r}\nminions = {group(MINIONS)!r}\n"
    text += f"registries = {[(REGISTRY, {'ssh_hostname': '192.168.122.140'})]!r}\n"
    (tmp_path / "inventory.py").write_text(text)
    return os.path.relpath(tmp_path / "inventory.py", REPO)


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "outside masters/minions" in r.getMessage()]


def assert_untouched(run, machines, before, caplog):
    assert run.operations[REGISTRY] == 0
    assert run.commands[REGISTRY] == [] and run.facts[REGISTRY] == []
    assert run.uploads[REGISTRY] == {}
    assert machines[REGISTRY] == before
    assert lines(caplog) == [LINE]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The cluster at the upgrade's old releases beside the registry, running."""
    tmp_path = tmp_path_factory.mktemp("scope")
    machines = {**{name: debian12() for name in HOSTS}, REGISTRY: registry()}
    settings = {"artifact_sha256": PINS, "pki_dir": str(tmp_path / "kubelab" / "pki"), **OLD}
    inventory = write_inventory(tmp_path)
    run = run_deploy(machines, kubelab.deploy_cluster, inventory=inventory, data=settings)
    running({name: machines[name] for name in HOSTS})
    return machines, settings, inventory, run


@pytest.fixture
def lab(built, tmp_path, caplog):
    machines, settings, inventory, _ = built
    caplog.set_level(logging.INFO, logger="pyinfra")
    machines, settings = with_own_pki(machines, settings, tmp_path)
    return machines, settings, inventory, copy.deepcopy(machines[REGISTRY])


def test_cluster_leaves_the_registry_alone(built, tmp_path, caplog):
    machines, settings, inventory, run = built
    assert run.operations[REGISTRY] == 0
    assert run.commands[REGISTRY] == [] and run.facts[REGISTRY] == []
    assert machines[REGISTRY] == registry()  # its firewall, sysctl and apt alone too
    assert all(run.commands[name] for name in HOSTS)
    caplog.set_level(logging.INFO, logger="pyinfra")
    again = copy.deepcopy(machines)
    rerun = run_deploy(again, kubelab.deploy_cluster, inventory=inventory, data=settings)
    assert rerun.operations[REGISTRY] == 0 and rerun.facts[REGISTRY] == []
    assert lines(caplog) == [LINE]  # once per run, not once per host


def test_reset_leaves_the_registry_alone(lab, caplog):
    machines, settings, inventory, before = lab
    run = run_deploy(
        machines,
        kubelab.deploy_reset,
        inventory=inventory,
        data={**settings, "reset_cluster": "kubelab"},
    )
    assert_untouched(run, machines, before, caplog)
    assert machines[REGISTRY].files[SENTINEL].content == b"not kubelab's"
    for name in HOSTS:
        assert kubelab_left(machines[name]) == [], name


def test_node_removal_leaves_the_registry_alone(lab, caplog):
    machines, settings, inventory, before = lab
    run = run_deploy(
        machines,
        kubelab.deploy_remove_node,
        inventory=inventory,
        data={**settings, "remove_nodes": MINIONS[1]},
    )
    assert_untouched(run, machines, before, caplog)
    assert kubelab_left(machines[MINIONS[1]]) == []


def test_upgrade_leaves_the_registry_alone(lab, caplog):
    machines, settings, inventory, before = lab
    run = run_deploy(
        machines, kubelab.deploy_upgrade, inventory=inventory, data={**settings, **NEW}
    )
    assert_untouched(run, machines, before, caplog)
    assert all(run.commands[name] for name in HOSTS)


def test_smoke_leaves_the_registry_alone(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pyinfra")
    SmokeHosts().install(monkeypatch)
    machines = {**machines_with_leases(debian12), REGISTRY: registry()}
    before = copy.deepcopy(machines[REGISTRY])
    run = run_deploy(machines, kubelab.deploy_smoke, inventory=write_inventory(tmp_path))
    assert_untouched(run, machines, before, caplog)
    assert run.commands[MASTER]


@pytest.mark.parametrize("deploy_file", ["master.py", "minion.py"])
def test_the_role_deploy_files_leave_the_registry_alone(built, tmp_path, caplog, deploy_file):
    machines, settings, inventory, _ = built
    caplog.set_level(logging.INFO, logger="pyinfra")
    machines = copy.deepcopy(machines)
    code = compile((REPO / "deploys" / deploy_file).read_text(), deploy_file, "exec")
    run = run_deploy(machines, lambda: exec(code, {}), inventory=inventory, data=settings)
    assert run.operations[REGISTRY] == 0 and run.facts[REGISTRY] == []
    assert lines(caplog) == [LINE]
