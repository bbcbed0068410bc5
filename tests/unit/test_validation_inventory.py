"""Bad inventories stop the run with one line, before any host is touched: the groups, the hosts'
names, misspelt settings, the hosts' OS and profile; the order problems are found in, and what
passes.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import fakehosts
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import centos7, debian12, run_deploy
from refusal_cases import (
    INVENTORY,
    Case,
    both_groups_inventory,
    hosts_line,
    minions_with,
    refuse_case,
    write_inventory,
)

import kubelab
from kubelab import SettingError

MINION1, MINION2 = MINIONS

CASES = [
    # The inventory's shape
    pytest.param(
        Case(
            "masters",
            INVENTORY,
            "the group must hold 1, 3, 5 or 7 hosts, it holds none$",
            inventory="masters = []\n",
        ),
        id="no-master",
    ),
    pytest.param(
        Case(
            "masters",
            INVENTORY,
            "it holds none \\(the inventory has a group 'master': rename it 'masters'\\)",
            inventory=hosts_line("master", (MASTER, "192.168.122.130")),
        ),
        id="masters-group-misnamed",
    ),
    pytest.param(
        Case(
            "masters",
            INVENTORY,
            f"must hold 1, 3, 5 or 7 hosts .*an even count.*it holds 2: {MASTER}, {MINION1}",
            inventory=hosts_line(
                "masters", (MASTER, "192.168.122.130"), (MINION1, "192.168.122.131")
            )
            + hosts_line("minions", (MINION2, "192.168.122.132")),
        ),
        id="two-masters",
    ),
    pytest.param(
        Case(
            "minions",
            INVENTORY,
            "the group must hold at least one host, it holds none",
            inventory="minions = []\n",
        ),
        id="no-minion",
    ),
    pytest.param(
        Case(
            "masters",
            MASTER,
            "the host is in both groups masters and minions",
            inventory=both_groups_inventory(),
            machines={MASTER: centos7, MINION1: centos7},
        ),
        id="host-in-both-groups",
    ),
    pytest.param(
        Case(
            "name",
            "kubeminion1.otherlab.com",
            f"short name 'kubeminion1' is also the short name of {MINION1}",
            inventory=hosts_line(
                "minions",
                (MINION1, "192.168.122.131"),
                ("kubeminion1.otherlab.com", "192.168.122.132"),
            ),
            machines={MASTER: centos7, MINION1: centos7, "kubeminion1.otherlab.com": centos7},
        ),
        id="duplicate-short-name",
    ),
    pytest.param(
        Case(
            "node_name",
            MINION2,
            f"'worker' is also the node name of {MINION1}",
            inventory=minions_with({"node_name": "worker"}, {"node_name": "worker"}),
        ),
        id="duplicate-node-name",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION2,
            f"192.168.122.131 is also the address of {MINION1}",
            inventory=hosts_line(
                "minions", (MINION1, "192.168.122.131"), (MINION2, "192.168.122.131")
            ),
        ),
        id="duplicate-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION2,
            f"the host has no address: set ssh_hostname or kube_address \\(its name '{MINION2}' "
            "is not an IP address\\)",
            inventory=hosts_line("minions", (MINION1, "192.168.122.131"), (MINION2, None)),
        ),
        id="missing-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION1,
            "unset, and ssh_hostname 'kubeminion1.lan' is not an IPv4 address: set kube_address",
            inventory=hosts_line(
                "minions", (MINION1, "kubeminion1.lan"), (MINION2, "192.168.122.132")
            ),
        ),
        id="ssh-hostname-not-an-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MASTER,
            "'192.168.122.300' is not an IPv4 address",
            data={"kube_address": "192.168.122.300"},
        ),
        id="malformed-kube-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION1,
            "127.0.0.1 is not an address the other hosts can reach",
            inventory=minions_with({"kube_address": "127.0.0.1"}),
        ),
        id="loopback-address",
    ),
    # Setting names
    pytest.param(
        Case(
            "flannel_netwrok",
            MASTER,
            "unknown setting, did you mean 'flannel_network'\\?",
            data={"flannel_netwrok": "10.30.0.0/16"},
        ),
        id="typo-on-the-command-line",
    ),
    pytest.param(
        Case(
            "kube_adress",
            MINION1,
            "unknown setting, did you mean 'kube_address'\\?",
            inventory=minions_with({"kube_adress": "10.0.0.31"}),
        ),
        id="typo-in-host-data",
    ),
    pytest.param(
        Case(
            "Manage_Etc_Hosts",
            MASTER,
            "unknown setting, did you mean 'manage_etc_hosts'\\?",
            group_data={"all": "Manage_Etc_Hosts = True\n"},
        ),
        id="typo-in-group-data",
    ),
    # Profiles
    pytest.param(
        Case(
            "profile",
            MASTER,
            "'el8' is not a profile: el7 \\(CentOS/RHEL 7\\) or modern",
            data={"profile": "el8"},
        ),
        id="unknown-profile",
    ),
    pytest.param(
        Case(
            "profile",
            MASTER,
            "'el7' does not fit the host's OS debian 12, which takes 'modern'",
            data={"profile": "el7"},
            machines=dict.fromkeys(HOSTS, debian12),
        ),
        id="el7-pinned-on-debian",
    ),
    pytest.param(
        Case(
            "profile",
            MASTER,
            "'modern' does not fit the host's OS centos 7, which takes 'el7'",
            data={"profile": "modern"},
        ),
        id="modern-pinned-on-centos7",
    ),
    pytest.param(
        Case(
            "profile",
            MINION1,
            f"the host \\(debian 12\\) takes 'modern' but the master {MASTER} takes 'el7': every "
            "host of a cluster needs the same profile",
            machines={MASTER: centos7, MINION1: debian12, MINION2: debian12},
        ),
        id="mixed-profiles",
    ),
    pytest.param(
        Case(
            "profile",
            MINION2,
            "unsupported OS debian 11 \\(supported: CentOS/RHEL 7",
            machines={
                MASTER: centos7,
                MINION1: centos7,
                MINION2: lambda: fakehosts.modern("debian", 11),
            },
        ),
        id="unsupported-os",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)


def test_the_cli_prints_a_setting_error_as_its_one_line(tmp_path):
    """pyinfra's CLI prints a SettingError (a CliError too) without the file and line of the
    raise: just the kubelab line."""
    (tmp_path / "inventory.py").write_text('masters = ["@local"]\n')
    (tmp_path / "deploy.py").write_text("from kubelab import deploy_cluster\n\ndeploy_cluster()\n")
    pyinfra = Path(sys.executable).with_name("pyinfra")
    result = subprocess.run(
        [str(pyinfra), "inventory.py", "deploy.py", "-y"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 1
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    error = [line for line in output.splitlines() if "kubelab:" in line]
    assert error == [
        "--> pyinfra error: kubelab: setting 'minions' in the inventory: the group must hold at "
        "least one host, it holds none"
    ], output


def test_the_first_problem_found_is_reported(io_log):
    """A misspelt name comes before a wrong type, which comes before a bad network."""
    machines = {name: centos7() for name in HOSTS}
    data = {"flannel_network": "nonsense", "flannel_vni": "1", "flannel_bakend": "udp"}
    with pytest.raises(SettingError, match="'flannel_bakend' on .*did you mean 'flannel_backend'"):
        run_deploy(machines, kubelab.deploy_cluster, data=data)
    del data["flannel_bakend"]
    with pytest.raises(SettingError, match="'flannel_vni' on .*'1' is a string"):
        run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert io_log == []


def test_a_valid_inventory_passes_and_the_deploy_runs(tmp_path, io_log):
    case = Case(
        "",
        "",
        "",
        inventory=minions_with({"kube_address": "10.0.0.31", "node_name": "worker-1"}),
        group_data={"all": 'flannel_backend = "host-gw"\nflannel_subnet_len = 26\n'},
    )
    machines = {name: centos7() for name in HOSTS}
    run = run_deploy(machines, kubelab.deploy_cluster, inventory=write_inventory(tmp_path, case))
    assert run.changed_hosts() == HOSTS
    assert io_log


def test_consumer_data_and_pyinfra_settings_are_not_flagged(io_log):
    machines = {name: centos7() for name in HOSTS}
    data = {
        "my_app_port": 8080,
        "my_app_name": "shop",
        "monitoring": True,
        "_sudo": True,
        "ssh_connect_retries": 2,
        "ssh_paramiko_connect_kwargs": {},
    }
    run = run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert run.changed_hosts() == HOSTS
