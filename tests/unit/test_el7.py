"""The el7 profile against simulated CentOS 7.9 hosts."""

import copy
import json

import pytest
from conftest import HOSTS, MASTER, MINIONS, flag_names, parse_env_file
from el7_facts import FLANNELD_VARIABLES, KUBE_UNITS, PACKAGE_DEFAULTS
from fakehosts import FileState, centos7, run_deploy

import kubelab

MASTER_IP = "192.168.122.130"
KEY = "/etc/kubernetes/serviceaccount.key"

# What kubelab changes in each package file; everything else stays the package's default.
EXPECTED_CHANGES = {
    "/etc/etcd/etcd.conf": {
        "ETCD_LISTEN_CLIENT_URLS": "http://0.0.0.0:2379",
        "ETCD_LISTEN_PEER_URLS": "http://localhost:2380",
        "ETCD_ADVERTISE_CLIENT_URLS": f"http://{MASTER_IP}:2379",
    },
    "/etc/kubernetes/config": {"KUBE_MASTER": f"--master=http://{MASTER_IP}:8080"},
    "/etc/kubernetes/apiserver": {
        "KUBE_API_ADDRESS": "--insecure-bind-address=0.0.0.0",
        "KUBE_API_PORT": "--port=8080",
        "KUBELET_PORT": "--kubelet-port=10250",
        "KUBE_ETCD_SERVERS": f"--etcd-servers=http://{MASTER_IP}:2379",
        "KUBE_API_ARGS": f"--service-account-key-file={KEY}",
    },
    "/etc/kubernetes/controller-manager": {
        "KUBE_CONTROLLER_MANAGER_ARGS": f"--service-account-private-key-file={KEY}",
    },
    "/etc/kubernetes/scheduler": {},
    "/etc/kubernetes/kubelet": {
        "KUBELET_ADDRESS": "--address=0.0.0.0",
        "KUBELET_PORT": "--port=10250",
        "KUBELET_API_SERVER": f"--api-servers=http://{MASTER_IP}:8080",
    },
    "/etc/kubernetes/proxy": {},
    "/etc/sysconfig/flanneld": {
        "FLANNEL_ETCD_ENDPOINTS": f"http://{MASTER_IP}:2379",
    },
}
MASTER_FILES = ["/etc/etcd/etcd.conf", "/etc/sysconfig/flanneld"] + [
    f"/etc/kubernetes/{name}" for name in ("config", "apiserver", "controller-manager", "scheduler")
]
MINION_FILES = ["/etc/sysconfig/flanneld"] + [
    f"/etc/kubernetes/{name}" for name in ("config", "kubelet", "proxy")
]


def expected_file(path: str, host: str) -> dict:
    variables = {**PACKAGE_DEFAULTS[path], **EXPECTED_CHANGES[path]}
    if path == "/etc/kubernetes/kubelet":
        variables["KUBELET_HOSTNAME"] = f"--hostname-override={host}"
    return variables


@pytest.fixture(scope="module")
def first_run():
    machines = {name: centos7() for name in HOSTS}
    run = run_deploy(machines, kubelab.deploy_cluster)
    return machines, run


@pytest.fixture
def converged(first_run):
    return copy.deepcopy(first_run[0])


def test_master_installs_the_reference_packages(first_run):
    commands = first_run[1].commands[MASTER]
    for package in ("etcd", "kubernetes-master", "flannel", "chrony"):
        assert any(c.startswith("yum install -y") and package in c.split() for c in commands)
    assert not any("docker" in c or "kubernetes-node" in c for c in commands)


def test_minions_install_the_reference_packages(first_run):
    for minion in MINIONS:
        commands = first_run[1].commands[minion]
        for package in ("docker", "kubernetes-node", "flannel", "chrony"):
            assert any(c.startswith("yum install -y") and package in c.split() for c in commands)
        assert not any("kubernetes-master" in c or " etcd" in c for c in commands)


@pytest.mark.parametrize("host", HOSTS)
def test_every_file_holds_the_package_defaults_and_our_changes(first_run, host):
    machines, run = first_run
    paths = MASTER_FILES if host == MASTER else MINION_FILES
    for path in paths:
        assert parse_env_file(machines[host].text(path)) == expected_file(path, host), path
    assert set(run.uploads[host]) == {*paths, "/etc/hosts"}


def test_etcd_advertises_a_reachable_client_url(first_run):
    conf = parse_env_file(first_run[0][MASTER].text("/etc/etcd/etcd.conf"))
    assert "0.0.0.0" not in conf["ETCD_ADVERTISE_CLIENT_URLS"]


def test_every_etcd_variable_is_an_etcd_3_3_setting(first_run, flags):
    known = set(flags["etcd_env"]["3.3.11"].values())
    conf = parse_env_file(first_run[0][MASTER].text("/etc/etcd/etcd.conf"))
    assert set(conf) <= known


@pytest.mark.parametrize("unit", sorted(KUBE_UNITS))
def test_every_flag_is_one_kubernetes_1_5_accepts(first_run, flags, unit):
    env_files, expanded = KUBE_UNITS[unit]
    host = (
        MASTER
        if unit in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        else (MINIONS[0])
    )
    accepted = set(flags[unit]["1.5"])
    seen = []
    for path in env_files:
        variables = parse_env_file(first_run[0][host].text(path))
        for name in expanded:
            seen += flag_names(variables.get(name, ""))
    assert seen, f"{unit} gets no flags at all"
    assert set(seen) <= accepted, set(seen) - accepted


@pytest.mark.parametrize("path", sorted(set(MASTER_FILES + MINION_FILES) - {"/etc/etcd/etcd.conf"}))
def test_every_variable_set_is_read_by_a_unit(first_run, path):
    host = MASTER if path in MASTER_FILES else MINIONS[0]
    variables = set(parse_env_file(first_run[0][host].text(path)))
    if path == "/etc/sysconfig/flanneld":
        read = FLANNELD_VARIABLES
    else:
        read = {v for files, expanded in KUBE_UNITS.values() if path in files for v in expanded}
    assert variables <= read, variables - read


def test_flannel_config_stored_with_the_v2_api(first_run):
    machine = first_run[0][MASTER]
    stored = json.loads(machine.etcd[(2, "/atomic.io/network/config")])
    assert stored == {
        "Network": "10.20.0.0/16",
        "SubnetLen": 24,
        "Backend": {"Type": "vxlan", "VNI": 1},
    }
    assert (3, "/atomic.io/network/config") not in machine.etcd


def test_service_account_key_is_private_to_kube(first_run):
    key = first_run[0][MASTER].files[KEY]
    assert (key.mode, key.user, key.group) == (0o600, "kube", "kube")


@pytest.mark.parametrize("host", HOSTS)
def test_services_running_and_enabled(first_run, host):
    units = ["chronyd", "flanneld"] + (
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        if host == MASTER
        else ["docker", "kubelet", "kube-proxy"]
    )
    machine = first_run[0][host]
    for unit in units:
        assert machine.units[f"{unit}.service"] == {"active": True, "enabled": True}, unit
    assert machine.units["firewalld.service"] == {"active": False, "enabled": False}


def test_flannel_starts_before_docker(first_run):
    commands = first_run[1].commands[MINIONS[0]]
    assert commands.index("systemctl start flanneld.service") < commands.index(
        "systemctl start docker.service"
    )


def test_etc_hosts_names_every_host(first_run):
    lines = first_run[0][MINIONS[1]].text("/etc/hosts").splitlines()
    assert lines == [
        "127.0.0.1 localhost",
        "192.168.122.130 kubemaster.traininglab.com kubemaster",
        "192.168.122.131 kubeminion1.traininglab.com kubeminion1",
        "192.168.122.132 kubeminion2.traininglab.com kubeminion2",
    ]


def test_second_run_changes_nothing(converged):
    run = run_deploy(converged, kubelab.deploy_cluster)
    assert run.commands == {host: [] for host in HOSTS}
    assert run.uploads == {host: {} for host in HOSTS}


def test_existing_service_account_key_is_kept(converged):
    converged[MASTER].files[KEY] = FileState(b"THE CLUSTER'S KEY", 0o644, "root", "root")
    run = run_deploy(converged, kubelab.deploy_cluster)
    assert converged[MASTER].files[KEY].content == b"THE CLUSTER'S KEY"
    assert not any("genrsa" in c for c in run.commands[MASTER])
    assert converged[MASTER].files[KEY].mode == 0o600
    assert converged[MASTER].restarts == []  # same key: no restart, tokens stay valid


def test_hand_edited_kubelet_config_restarts_only_the_kubelet(converged):
    converged[MINIONS[0]].files["/etc/kubernetes/kubelet"].content += b'KUBELET_ARGS="--x"\n'
    run = run_deploy(converged, kubelab.deploy_cluster)
    assert list(run.uploads[MINIONS[0]]) == ["/etc/kubernetes/kubelet"]
    assert converged[MINIONS[0]].restarts == ["kubelet.service"]
    assert run.changed_hosts() == [MINIONS[0]]


def test_changed_flannel_network_is_rewritten_and_flannel_restarts(converged):
    run = run_deploy(converged, kubelab.deploy_cluster, data={"flannel_network": "10.30.0.0/16"})
    stored = json.loads(converged[MASTER].etcd[(2, "/atomic.io/network/config")])
    assert stored["Network"] == "10.30.0.0/16"
    assert any("etcdctl" in c for c in run.commands[MASTER])
    for name in HOSTS:  # stopped (flannel.1 dropped meanwhile), then started afresh
        flanneld = [c for c in run.commands[name] if "flanneld" in c and "systemctl" in c]
        assert flanneld[:2] == [
            "systemctl stop flanneld.service",
            "systemctl start flanneld.service",
        ]
        assert converged[name].units["flanneld.service"]["active"]
    assert converged[MASTER].restarts == []
    for minion in MINIONS:  # docker's bridge takes its range from the new flannel lease
        assert converged[minion].restarts == ["docker.service"]


def test_shared_config_change_restarts_every_kube_service_of_the_host(converged):
    run = run_deploy(converged, kubelab.deploy_cluster, data={"kube_log_level": 2})
    assert sorted(converged[MASTER].restarts) == [
        "kube-apiserver.service",
        "kube-controller-manager.service",
        "kube-scheduler.service",
    ]
    assert sorted(converged[MINIONS[0]].restarts) == ["kube-proxy.service", "kubelet.service"]
    assert "etcd.service" not in converged[MASTER].restarts
    assert run.uploads[MASTER].keys() == {"/etc/kubernetes/config"}


def test_run_stopped_before_a_restart_is_finished_by_the_next_run(converged):
    """A config written by a run that died before restarting etcd: the next run restarts it."""
    converged[MASTER].unread.add("/etc/etcd/etcd.conf")
    run_deploy(converged, kubelab.deploy_cluster)
    assert converged[MASTER].restarts == ["etcd.service"]


@pytest.mark.parametrize("failed_reads", [1, 2])
def test_an_etcd_read_that_fails_restarts_nothing(converged, failed_reads, caplog):
    """etcd does not answer the read of flannel's config (too slow, down): no "no config"
    taken from it, so no flanneld or docker restarts on every host. Read once more when the
    run gets there, it answers: nothing to do; it fails again: the master's run fails,
    naming the host, the key, etcd and etcdctl's error."""
    converged[MASTER].etcd_read_errors = ["context deadline exceeded"] * failed_reads
    run = run_deploy(converged, kubelab.deploy_cluster, expect_failures=True)
    assert [m.restarts for m in converged.values()] == [[], [], []]
    assert not any("etcdctl" in c for commands in run.commands.values() for c in commands)
    assert run.commands == {host: [] for host in HOSTS}
    if failed_reads == 1:
        assert run.failed == []
        return
    assert run.failed == [MASTER]
    problems = [r.getMessage() for r in caplog.records if "flannel's network config" in r.msg]
    assert any(
        f"kubelab: {MASTER}: reading flannel's network config (/atomic.io/network/config) "
        f"from etcd at http://192.168.122.130:2379 (each read at most 5 s to connect, 10 s to "
        "answer) failed: context deadline exceeded;" in problem
        for problem in problems
    ), problems


def test_the_service_account_key_path_is_quoted_in_its_shell_step():
    from kubelab.pki.service_account import generate_key_command

    command = generate_key_command("/etc/kube rnetes/sa;x.key")
    assert command == (
        "test -e '/etc/kube rnetes/sa;x.key' || (umask 077 && openssl genrsa -out "
        "'/etc/kube rnetes/sa;x.key.new' 2048 2>/dev/null && mv '/etc/kube rnetes/sa;x.key.new' "
        "'/etc/kube rnetes/sa;x.key')"
    )
