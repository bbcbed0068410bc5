"""Upgrading: deploys/upgrade.py stops with one line before any host is touched, on simulated
Debian 12 hosts that run the releases each case names (CentOS 7 for the el7 refusal)."""

from typing import NamedTuple

import fakehosts
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import centos7, debian12
from refusal_cases import MASTER_LINE, Case, assert_refused, minions_with, refusal, write_inventory

import kubelab

MINION1, MINION2 = MINIONS


def running_at(api="v1.34.4", kubelets=("v1.34.4", "v1.34.4"), etcd="v3.6.14", runtime="v2.2.9"):
    """Machines whose master runs kube-apiserver ``api`` and holds etcd ``etcd``, whose minions
    run the ``kubelets`` and containerd ``runtime``, all registered as Nodes."""
    machines = {name: debian12() for name in HOSTS}
    master = machines[MASTER]
    binaries = {
        "/usr/local/bin/etcd": f"https://github.com/etcd-io/etcd/releases/download/{etcd}/etcd",
        "/usr/local/bin/kube-apiserver": f"https://dl.k8s.io/{api}/bin/linux/amd64/x",
    }
    for path, url in binaries.items():
        master.files[path] = fakehosts.FileState(url.encode(), 0o755)
    master.units["kube-apiserver.service"] = {"active": True, "enabled": True}
    master.started["kube-apiserver.service"] = binaries["/usr/local/bin/kube-apiserver"].encode()
    master.kube_nodes = set(MINIONS)
    for name, kubelet in zip(MINIONS, kubelets, strict=True):
        minion = machines[name]
        for unit, url in (
            ("kubelet.service", f"https://dl.k8s.io/{kubelet}/bin/linux/amd64/kubelet"),
            ("containerd.service", f"https://github.com/c/releases/download/{runtime}/c.tgz"),
        ):
            minion.units[unit] = {"active": True, "enabled": True}
            minion.started[unit] = url.encode()
    return machines


class UpgradeCase(NamedTuple):
    setting: str
    where: str  # the host the line names
    phrase: str  # what the message says after "on <host>: " (a regex)
    data: dict
    running: dict  # running_at's arguments
    el7: bool = False


UPGRADE_CASES = [
    pytest.param(UpgradeCase(*args), id=case_id)
    for case_id, *args in (
        (
            "skipped-minor",
            "kube_version",
            MASTER,
            "v1.33.5 -> v1.35.8 skips a minor version of the apiserver: upgrade one minor at a "
            "time \\(1.33 -> 1.34 first\\)$",
            {},
            {"api": "v1.33.5", "kubelets": ("v1.33.5", "v1.33.5")},
        ),
        (
            "skipped-minor-asked",
            "kube_version",
            MASTER,
            "v1.34.4 -> v1.36.1 skips a minor version",
            {"kube_version": "v1.36.1"},
            {},
        ),
        (
            "patch-downgrade",
            "kube_version",
            MASTER,
            "v1.35.8 is older than v1.35.9, which the apiserver runs: a downgrade \\(set "
            "upgrade_allow_downgrade=True to install an older patch release\\)$",
            {},
            {"api": "v1.35.9", "kubelets": ("v1.35.9", "v1.35.9")},
        ),
        (
            "minor-downgrade",
            "kube_version",
            MASTER,
            "v1.35.8 is older than v1.36.0, which the apiserver runs: a downgrade",
            {},
            {"api": "v1.36.0", "kubelets": ("v1.35.8", "v1.35.8")},
        ),
        (
            "minor-downgrade-allowed",
            "kube_version",
            MASTER,
            "v1.35.8 would take the apiserver back a minor version from v1.36.0 \\(1.36 -> "
            "1.35\\), which upstream does not support even with upgrade_allow_downgrade",
            {"upgrade_allow_downgrade": True},
            {"api": "v1.36.0", "kubelets": ("v1.35.8", "v1.35.8")},
        ),
        (
            "major-change",
            "kube_version",
            MASTER,
            "v1.35.8 -> v2.0.0 changes the major version of the apiserver: not supported$",
            {"kube_version": "v2.0.0"},
            {"api": "v1.35.8", "kubelets": ("v1.35.8", "v1.35.8")},
        ),
        (
            "kubelet-newer-than-apiserver",
            "kube_version",
            MINION2,
            f"the kubelet of Node {MINION2} is v1.36.0, newer than the apiserver would be "
            "\\(v1.35.8\\): the version skew policy allows no kubelet newer than the apiserver$",
            {},
            {"api": "v1.35.8", "kubelets": ("v1.35.8", "v1.36.0")},
        ),
        (
            "kubelet-patch-newer",
            "kube_version",
            MINION1,
            f"v1.35.8 is older than v1.35.9, which the kubelet of Node {MINION1} runs: a downgrade",
            {},
            {"api": "v1.35.8", "kubelets": ("v1.35.9", "v1.35.8")},
        ),
        (
            "kubelet-too-old",
            "kube_version",
            MINION1,
            f"the kubelet of Node {MINION1} is v1.31.2, more than 3 minor versions older than "
            "v1.35.8: the version skew policy allows a kubelet at most 3 minors behind",
            {},
            {"api": "v1.34.4", "kubelets": ("v1.31.2", "v1.34.4")},
        ),
        (
            "etcd-skipped-minor",
            "etcd_version",
            MASTER,
            "v3.4.30 -> v3.6.14 skips a minor version of etcd: upgrade one minor at a time "
            "\\(3.4 -> 3.5 first\\)$",
            {},
            {"etcd": "v3.4.30"},
        ),
        (
            "etcd-downgrade",
            "etcd_version",
            MASTER,
            "v3.6.14 is older than v3.6.15, which etcd runs: a downgrade",
            {},
            {"etcd": "v3.6.15"},
        ),
        (
            "etcd-minor-downgrade-allowed",
            "etcd_version",
            MASTER,
            "back a minor version from v3.6.14 \\(3.6 -> 3.5\\)",
            {"etcd_version": "v3.5.21", "upgrade_allow_downgrade": True},
            {},
        ),
        (
            "containerd-downgrade",
            "containerd_version",
            MINION1,
            f"v2.2.9 is older than v2.2.10, which containerd on Node {MINION1} runs: a downgrade",
            {},
            {"runtime": "v2.2.10"},
        ),
        (
            "allow-downgrade-as-string",
            "upgrade_allow_downgrade",
            MASTER,
            "'yes' is a string, not True or False",
            {"upgrade_allow_downgrade": "yes"},
            {},
        ),
        (
            "upgrade-timeout-zero",
            "upgrade_timeout",
            MASTER,
            "0 is out of range 1-86400",
            {"upgrade_timeout": 0},
            {},
        ),
        (
            "upgrade-timeout-as-string",
            "upgrade_timeout",
            MASTER,
            "'300' is a string, not a whole number",
            {"upgrade_timeout": "300"},
            {},
        ),
        (
            "allow-downgrade-misspelt",
            "upgrade_allow_downgrades",
            MASTER,
            "unknown setting, did you mean 'upgrade_allow_downgrade'\\?",
            {"upgrade_allow_downgrades": True},
            {},
        ),
        (
            "kube-version-not-a-tag",
            "kube_version",
            MASTER,
            "'1.35.8' is not a release tag like 'v1.35.8' \\(did you mean 'v1.35.8'\\?\\)",
            {"kube_version": "1.35.8"},
            {},
        ),
    )
]


def api_down_cluster():
    machines = running_at()
    machines[MASTER].kube_error = "The connection to the server 192.168.122.130:6443 was refused"
    return machines


def node_missing_cluster():
    machines = running_at()
    machines[MASTER].kube_nodes = {MINION1}
    return machines


def no_etcd_cluster():
    machines = running_at()
    del machines[MASTER].files["/usr/local/bin/etcd"]
    return machines


UPGRADE_SPECIAL_CASES = [
    pytest.param(
        "kube_version",
        MASTER,
        "kubectl on the master cannot read the apiserver's /version and the Nodes \\(The "
        "connection to the server 192.168.122.130:6443 was refused\\): the apiserver must answer",
        api_down_cluster,
        id="api-down",
    ),
    pytest.param(
        "kube_version",
        MINION2,
        f"the cluster has no Node '{MINION2}' \\(its Nodes: {MINION1}\\): build the cluster with "
        "deploys/cluster.py before upgrading it$",
        node_missing_cluster,
        id="node-missing",
    ),
    pytest.param(
        "etcd_version",
        MASTER,
        "/usr/local/bin/etcd --version on the master names no version",
        no_etcd_cluster,
        id="no-etcd-binary",
    ),
    pytest.param(
        "kube_version",
        MASTER,
        "upgrading is supported on the modern profile only \\(this cluster is el7",
        lambda: {name: centos7() for name in HOSTS},
        id="upgrade-on-el7",
    ),
]


def check_upgrade_refused(machines, data, setting, where, phrase, io_log, inventory=None):
    run = {"data": data, **({"inventory": inventory} if inventory else {})}
    assert_refused(machines, kubelab.deploy_upgrade, refusal(setting, where, phrase), io_log, **run)


@pytest.mark.parametrize("case", UPGRADE_CASES)
def test_upgrade_bad_input_stops_before_any_host_is_touched(case, io_log):
    check_upgrade_refused(
        running_at(**case.running), case.data, case.setting, case.where, case.phrase, io_log
    )


@pytest.mark.parametrize(("setting", "where", "phrase", "machines"), UPGRADE_SPECIAL_CASES)
def test_upgrade_refuses_a_cluster_it_cannot_read(setting, where, phrase, machines, io_log):
    check_upgrade_refused(machines(), {}, setting, where, phrase, io_log)


def test_upgrade_refuses_minions_at_another_kube_version(tmp_path, io_log):
    case = Case(
        "kube_version",
        MINION2,
        "",
        inventory=MASTER_LINE + minions_with({}, {"kube_version": "v1.35.7"}),
    )
    check_upgrade_refused(
        running_at(),
        {},
        "kube_version",
        MINION2,
        f"'v1.35.7' differs from 'v1.35.8' on the master {MASTER}: an upgrade takes every host "
        "to one Kubernetes release$",
        io_log,
        inventory=write_inventory(tmp_path, case),
    )


def test_upgrade_corpus_is_large_enough():
    assert len(UPGRADE_CASES) + len(UPGRADE_SPECIAL_CASES) + 1 >= 20
