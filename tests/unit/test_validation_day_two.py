"""Day two: deploys/remove_node.py and deploys/reset.py stop with one line before any host is
touched, on simulated Debian 12 hosts (CentOS 7 for the el7 refusals)."""

from typing import NamedTuple

import fakehosts
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import centos7, debian12
from refusal_cases import assert_refused, refusal

import kubelab

MINION1, MINION2 = MINIONS


def api_down() -> fakehosts.Machine:
    machine = debian12()
    machine.kube_error = "The connection to the server 192.168.122.130:6443 was refused"
    return machine


def etcd_down() -> fakehosts.Machine:
    machine = debian12()
    machine.kube_nodes = set(MINIONS)
    machine.etcd_error = "context deadline exceeded"
    return machine


class DayTwoCase(NamedTuple):
    deploy: str  # "remove" (deploy_remove_node) or "reset" (deploy_reset)
    setting: str
    phrase: str  # what the message says after "on <master>: " (a regex)
    data: dict
    master: object = debian12  # the master's Machine factory (the minions: Debian 12)
    el7: bool = False  # every host CentOS 7


MINION_LIST = f"\\(its minions: {MINION1}, {MINION2}\\)"
DAY_TWO_CASES = (
    [
        pytest.param(DayTwoCase("remove", "remove_nodes", *args), id=case_id)
        for case_id, *args in (
            ("remove-unset", "unset: name the minions to remove, remove_nodes=NAME\\[,NAME\\]", {}),
            ("remove-empty", "'': name the minions to remove", {"remove_nodes": ""}),
            ("remove-only-commas", "' , ': name the minions to remove", {"remove_nodes": " , "}),
            (
                "remove-the-master",
                f"'{MASTER}' is the master: only minions can be removed \\(deploys/reset.py",
                {"remove_nodes": MASTER},
            ),
            (
                "remove-the-master-by-short-name",
                "'kubemaster' is the master: only minions can be removed",
                {"remove_nodes": "kubeminion1,kubemaster"},
            ),
            (
                "remove-an-unknown-host",
                f"'kubeminion9' is not a minion of the inventory {MINION_LIST}$",
                {"remove_nodes": "kubeminion9"},
            ),
            (
                "remove-a-known-and-an-unknown-host",
                "'kubeminion9.traininglab.com' is not a minion of the inventory",
                {"remove_nodes": "kubeminion1,kubeminion9.traininglab.com"},
            ),
            (
                "remove-by-node-name-prefix",
                "'kubeminion' is not a minion of the inventory",
                {"remove_nodes": "kubeminion"},
            ),
            (
                "remove-every-minion",
                f"{MINION1}, {MINION2} would remove every minion of the cluster, leaving no node "
                "for its pods: set remove_last_minion=True to do it anyway$",
                {"remove_nodes": f"kubeminion1, {MINION2}"},
            ),
            (
                "remove-every-minion-named-twice",
                "would remove every minion of the cluster",
                {"remove_nodes": f"kubeminion1,{MINION1},kubeminion2"},
            ),
            (
                "remove-every-minion-told-false",
                "would remove every minion of the cluster",
                {"remove_nodes": "kubeminion1,kubeminion2", "remove_last_minion": False},
            ),
            ("remove-a-number", "5 is not a name or a list of names", {"remove_nodes": 5}),
            (
                "remove-a-list-with-a-number",
                "\\['kubeminion1', 5\\] is not a name or a list of names",
                {"remove_nodes": ["kubeminion1", 5]},
            ),
            (
                "remove-api-down",
                "kubectl on the master cannot list the Nodes \\(The connection to the server "
                "192.168.122.130:6443 was refused\\): the apiserver must answer",
                {"remove_nodes": "kubeminion2"},
                api_down,
            ),
            (
                "remove-etcd-down",
                "etcdctl on the master cannot read flannel's leases under "
                "/atomic.io/network/subnets/ from etcd at https://192.168.122.130:2379 \\(context "
                "deadline exceeded; 5 s to connect, 10 s to answer\\)",
                {"remove_nodes": "kubeminion2"},
                etcd_down,
            ),
            (
                "remove-on-el7",
                "removing nodes is supported on the modern profile only \\(this cluster is el7",
                {"remove_nodes": "kubeminion2"},
                debian12,
                True,
            ),
        )
    ]
    + [
        pytest.param(DayTwoCase(deploy, setting, phrase, data), id=case_id)
        for case_id, deploy, setting, phrase, data in (
            (
                "remove-last-minion-as-string",
                "remove",
                "remove_last_minion",
                "'yes' is a string, not True or False",
                {"remove_nodes": "kubeminion1", "remove_last_minion": "yes"},
            ),
            (
                "drain-timeout-zero",
                "remove",
                "drain_timeout",
                "0 is out of range 1-86400",
                {"remove_nodes": "kubeminion1", "drain_timeout": 0},
            ),
            (
                "drain-timeout-as-string",
                "remove",
                "drain_timeout",
                "'300' is a string, not a whole number",
                {"remove_nodes": "kubeminion1", "drain_timeout": "300"},
            ),
            (
                "drain-force-as-string",
                "remove",
                "drain_force",
                "'true' is a string, not True or False",
                {"remove_nodes": "kubeminion1", "drain_force": "true"},
            ),
            (
                "remove-nodes-misspelt",
                "remove",
                "remove_node",
                "unknown setting, did you mean 'remove_nodes'\\?",
                {"remove_node": "kubeminion1"},
            ),
            (
                "reset-unset",
                "reset",
                "reset_cluster",
                "unset: a reset removes the cluster 'kubelab' from every host, its etcd data with "
                "it; confirm with reset_cluster=kubelab$",
                {},
            ),
            (
                "reset-another-name",
                "reset",
                "reset_cluster",
                "'kubelab2' is not this cluster's name 'kubelab' \\(cluster_name\\): nothing "
                "reset$",
                {"reset_cluster": "kubelab2"},
            ),
            (
                "reset-name-in-other-case",
                "reset",
                "reset_cluster",
                "'KubeLab' is not this cluster's name 'kubelab'",
                {"reset_cluster": "KubeLab"},
            ),
            (
                "reset-empty",
                "reset",
                "reset_cluster",
                "'' is not this cluster's name 'kubelab'",
                {"reset_cluster": ""},
            ),
            (
                "reset-as-bool",
                "reset",
                "reset_cluster",
                "True is not a string",
                {"reset_cluster": True},
            ),
            (
                "reset-of-the-default-name-on-a-renamed-cluster",
                "reset",
                "reset_cluster",
                "'kubelab' is not this cluster's name 'lab2'",
                {"reset_cluster": "kubelab", "cluster_name": "lab2"},
            ),
            (
                "reset-pki-another-name",
                "reset",
                "reset_pki",
                "'yes' is not this cluster's name 'kubelab' \\(cluster_name\\): set "
                "reset_pki=kubelab to delete the local PKI too, or leave it unset to keep it$",
                {"reset_cluster": "kubelab", "reset_pki": "yes"},
            ),
            (
                "reset-pki-as-bool",
                "reset",
                "reset_pki",
                "True is not a string",
                {"reset_cluster": "kubelab", "reset_pki": True},
            ),
            (
                "reset-misspelt",
                "reset",
                "reset_clsuter",
                "unknown setting, did you mean 'reset_cluster'\\?",
                {"reset_clsuter": "kubelab"},
            ),
        )
    ]
    + [
        pytest.param(
            DayTwoCase(
                "reset",
                "reset_cluster",
                "resetting is supported on the modern profile only \\(this cluster is el7",
                {"reset_cluster": "kubelab"},
                el7=True,
            ),
            id="reset-on-el7",
        )
    ]
)


@pytest.mark.parametrize("case", DAY_TWO_CASES)
def test_day_two_bad_input_stops_before_any_host_is_touched(case, io_log):
    if case.el7:
        machines = {name: centos7() for name in HOSTS}
    else:
        machines = {name: debian12() for name in MINIONS}
        machines[MASTER] = case.master()
    deploy = kubelab.deploy_remove_node if case.deploy == "remove" else kubelab.deploy_reset
    pattern = refusal(case.setting, MASTER, case.phrase)
    assert_refused(machines, deploy, pattern, io_log, data=case.data)


def test_day_two_corpus_is_large_enough():
    assert len(DAY_TWO_CASES) >= 30
