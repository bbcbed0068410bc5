"""The kubelet on cgroup v1 hosts, and kube-proxy on every modern host (the master too)."""

import copy
import logging
import re

import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import debian12, rocky9, run_deploy, ubuntu24
from test_modern import build, unit_flags

import kubelab

KUBELET_CONFIG = "/etc/kubernetes/kubelet-config.yaml"
PROXY_CONFIG = "/etc/kubernetes/kube-proxy-config.yaml"
ADDRESSES = {
    MASTER: "192.168.122.130",
    MINIONS[0]: "192.168.122.131",
    MINIONS[1]: "192.168.122.132",
}


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    # kube-proxy's own conntrack default, whatever the inventory's group_data says
    unset = {"kube_proxy_conntrack_max_per_core": None}
    return build(debian12, tmp_path_factory.mktemp("debian"), unset)


def yaml_keys(text: str) -> list[str]:
    """The top-level keys of a YAML mapping."""
    return re.findall(r"^([A-Za-z]\w*):", text, re.M)


# cgroup v1 -------------------------------------------------------------------------------------


def cgroup_v1_minion(factory):
    def make():
        machine = factory()
        machine.cgroup = 1
        return machine

    return make


def test_cgroup_v2_kubelet_config_leaves_fail_cgroup_v1_out(debian):
    machines, _, _ = debian
    for minion in MINIONS:
        assert "failCgroupV1" not in machines[minion].text(KUBELET_CONFIG)


@pytest.mark.parametrize("factory", [debian12, ubuntu24, rocky9])
def test_cgroup_v1_host_gets_fail_cgroup_v1_false_and_one_warning(factory, tmp_path, caplog):
    machines = {MASTER: factory(), MINIONS[0]: cgroup_v1_minion(factory)(), MINIONS[1]: factory()}
    data = build(factory, tmp_path)[2]
    caplog.set_level(logging.WARNING, logger="pyinfra")
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert re.search(r"^failCgroupV1: false$", machines[MINIONS[0]].text(KUBELET_CONFIG), re.M)
    assert "failCgroupV1" not in machines[MINIONS[1]].text(KUBELET_CONFIG)
    warnings = [r.getMessage() for r in caplog.records if "cgroup v1" in r.getMessage()]
    assert warnings == [
        f"kubelab: {MINIONS[0]} uses cgroup v1: its kubelet runs with failCgroupV1: false, "
        "supported by Kubernetes 1.35 only in maintenance mode"
    ]
    caplog.clear()
    again = run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert again.commands == {host: [] for host in HOSTS}
    assert len([r for r in caplog.records if "cgroup v1" in r.getMessage()]) == 1


def test_a_host_moving_to_cgroup_v2_restarts_only_its_kubelet(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    converged[MINIONS[0]].cgroup = 1
    run_deploy(converged, kubelab.deploy_cluster, data=settings)
    converged[MINIONS[0]].restarts.clear()
    converged[MINIONS[0]].cgroup = 2
    run = run_deploy(converged, kubelab.deploy_cluster, data=settings)
    assert run.changed_hosts() == [MINIONS[0]]
    assert converged[MINIONS[0]].restarts == ["kubelet.service"]
    assert "failCgroupV1" not in converged[MINIONS[0]].text(KUBELET_CONFIG)


def test_kubelet_config_keys_are_kubelet_configuration_fields(debian, flags):
    """Each field of the config file has its (deprecated) flag twin in kubelet 1.35."""
    machines, _, _ = debian
    machine = copy.deepcopy(machines[MINIONS[0]])
    text = machine.text(KUBELET_CONFIG) + "failCgroupV1: false\n"
    known = {name.replace("-", "") for name in flags["kubelet"]["1.35"]}
    nested = {"apiVersion", "kind", "authentication", "authorization"}  # no flag of that name
    for key in yaml_keys(text):
        assert key in nested or key.lower() in known, key


# kube-proxy ------------------------------------------------------------------------------------


def test_kube_proxy_runs_on_the_master_too(debian, flags):
    machines, _, _ = debian
    for host in HOSTS:
        machine = machines[host]
        assert machine.units["kube-proxy.service"] == {"active": True, "enabled": True}, host
        assert machine.files["/usr/local/bin/kube-proxy"].mode == 0o755
        kubeconfig = machine.files["/etc/kubernetes/kube-proxy.kubeconfig"]
        assert (kubeconfig.mode, kubeconfig.user) == (0o600, "root")
        assert (
            b"system:kube-proxy" in kubeconfig.content or b"client-key-data" in kubeconfig.content
        )
        config = machine.text(PROXY_CONFIG)
        assert f'bindAddress: "{ADDRESSES[host]}"' in config
        assert f'hostnameOverride: "{host}"' in config
        assert 'clusterCIDR: "10.20.0.0/16"' in config and "conntrack" not in config
        used = unit_flags(machine.text("/etc/systemd/system/kube-proxy.service"))
        assert used == ["config"] and set(used) <= set(flags["kube-proxy"]["1.35"])
    # one client certificate per host (the same user system:kube-proxy)
    own = {machines[host].files["/etc/kubernetes/kube-proxy.kubeconfig"].content for host in HOSTS}
    assert len(own) == len(HOSTS)
    assert "/etc/kubernetes/kubelet.kubeconfig" not in machines[MASTER].files


def test_kube_proxy_config_fields_have_flag_twins(debian, flags):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    data = {**settings, "kube_proxy_conntrack_max_per_core": 0}
    run_deploy(converged, kubelab.deploy_cluster, data=data)
    text = converged[MINIONS[0]].text(PROXY_CONFIG)
    known = {name.replace("-", "") for name in flags["kube-proxy"]["1.35"]}
    twins = {"clientConnection": "kubeconfig", "mode": "proxymode", "conntrack": "conntrackmin"}
    for key in yaml_keys(text):
        assert key in ("apiVersion", "kind") or twins.get(key, key.lower()) in known, key
    assert "maxPerCore: 0" in text and "conntrackmaxpercore" in known


@pytest.mark.parametrize("value", [0, 65536])
def test_conntrack_max_per_core_restarts_kube_proxy_everywhere_and_nothing_else(debian, value):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    data = {**settings, "kube_proxy_conntrack_max_per_core": value}
    run = run_deploy(converged, kubelab.deploy_cluster, data=data)
    for host in HOSTS:
        assert f"conntrack:\n  # 0: leave nf_conntrack_max as it is.\n  maxPerCore: {value}\n" in (
            converged[host].text(PROXY_CONFIG)
        )
        assert converged[host].restarts == ["kube-proxy.service"], host
        assert set(run.uploads[host]) == {PROXY_CONFIG}
    again = run_deploy(converged, kubelab.deploy_cluster, data=data)
    assert again.commands == {host: [] for host in HOSTS}


def test_new_kube_proxy_binary_restarts_kube_proxy_on_every_host(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    pins = dict(settings["artifact_sha256"], **{"kube-proxy": "3" * 64})
    run_deploy(converged, kubelab.deploy_cluster, data={**settings, "artifact_sha256": pins})
    for host in HOSTS:
        assert converged[host].restarts == ["kube-proxy.service"], host
