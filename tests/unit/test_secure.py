"""The ``secure`` setting on both profiles, and secrets never showing in commands."""

import copy
import re

import pytest
from conftest import HOSTS, MASTER, MINIONS, flag_names, parse_env_file
from fakehosts import centos7, debian12, run_deploy
from test_modern import pins, unit_flags

import kubelab
from kubelab.settings.defaults import secure_for

MASTER_IP = "192.168.122.130"


def settings(tmp_path, **extra):
    return {"pki_dir": str(tmp_path / "pki"), "artifact_sha256": pins(), **extra}


def secure_cluster(factory, tmp_path):
    data = settings(tmp_path, secure=True)
    machines = {name: factory() for name in HOSTS}
    return machines, run_deploy(machines, kubelab.deploy_cluster, data=data), data


@pytest.fixture(scope="module")
def el7(tmp_path_factory):
    return secure_cluster(centos7, tmp_path_factory.mktemp("el7"))


@pytest.fixture(scope="module")
def modern(tmp_path_factory):
    return secure_cluster(debian12, tmp_path_factory.mktemp("modern"))


@pytest.mark.parametrize("path", ["/etc/etcd/etcd.conf", "/etc/default/etcd"])
def test_etcd_serves_tls_to_certified_clients_only(el7, modern, path):
    machines = (el7 if path.startswith("/etc/etcd") else modern)[0]
    conf = parse_env_file(machines[MASTER].text(path))
    assert conf["ETCD_LISTEN_CLIENT_URLS"] == "https://0.0.0.0:2379"
    assert conf["ETCD_ADVERTISE_CLIENT_URLS"] == f"https://{MASTER_IP}:2379"
    assert conf["ETCD_CLIENT_CERT_AUTH"] == "true"
    for variable in ("ETCD_CERT_FILE", "ETCD_KEY_FILE", "ETCD_TRUSTED_CA_FILE"):
        assert conf[variable] in machines[MASTER].files
    key = machines[MASTER].files[conf["ETCD_KEY_FILE"]]
    assert (key.mode, key.user) == (0o600, "etcd")


def test_el7_apiserver_plain_port_is_local_and_minions_use_tls(el7, flags):
    machines = el7[0]
    api = parse_env_file(machines[MASTER].text("/etc/kubernetes/apiserver"))
    assert api["KUBE_API_ADDRESS"] == "--insecure-bind-address=127.0.0.1"
    assert api["KUBE_ETCD_SERVERS"] == f"--etcd-servers=https://{MASTER_IP}:2379"
    used = set(flag_names(api["KUBE_API_ARGS"]))
    assert (
        {"etcd-cafile", "etcd-certfile", "etcd-keyfile", "tls-cert-file", "client-ca-file"}
        <= used
        <= set(flags["kube-apiserver"]["1.5"])
    )
    master_config = parse_env_file(machines[MASTER].text("/etc/kubernetes/config"))
    assert master_config["KUBE_MASTER"] == "--master=http://127.0.0.1:8080"
    for minion in MINIONS:
        config = parse_env_file(machines[minion].text("/etc/kubernetes/config"))
        assert config["KUBE_MASTER"] == f"--master=https://{MASTER_IP}:6443"
        kubelet = parse_env_file(machines[minion].text("/etc/kubernetes/kubelet"))
        assert kubelet["KUBELET_API_SERVER"] == f"--api-servers=https://{MASTER_IP}:6443"
        assert set(flag_names(kubelet["KUBELET_ARGS"])) <= set(flags["kubelet"]["1.5"])
        kubeconfig = machines[minion].files["/etc/kubernetes/kubelet.kubeconfig"]
        assert (kubeconfig.mode, kubeconfig.user) == (0o600, "root")
    apiserver_key = machines[MASTER].files["/etc/kubernetes/tls/apiserver.key"]
    assert (apiserver_key.mode, apiserver_key.user) == (0o600, "kube")


def test_el7_flanneld_presents_its_certificate(el7, flags):
    for host in HOSTS:
        conf = parse_env_file(el7[0][host].text("/etc/sysconfig/flanneld"))
        assert conf["FLANNEL_ETCD_ENDPOINTS"] == f"https://{MASTER_IP}:2379"
        options = set(flag_names(conf["FLANNEL_OPTIONS"]))
        assert {"etcd-cafile", "etcd-certfile", "etcd-keyfile"} == options
        assert options <= set(flags["flanneld"]["0.7.1"])


def test_kubelab_etcdctl_presents_a_certificate(el7, modern):
    """etcd's own serving certificate (clientAuth; on modern the etcd user with the root role),
    never flanneld's, which etcd's auth keeps to flannel's prefix."""
    v2 = [c for c in el7[1].commands[MASTER] if "ETCDCTL_API" in c]
    v3 = [c for c in modern[1].commands[MASTER] if "ETCDCTL_API" in c]
    assert v2 and all("--cert-file=/etc/etcd/pki/server.crt" in c for c in v2)
    assert v3 and all("--cert=/etc/etcd/pki/server.crt" in c for c in v3)
    assert all("--cacert=/etc/etcd/pki/ca.crt" in c for c in v3)


@pytest.mark.parametrize(
    "unit, component, version",
    [("kube-apiserver", "kube-apiserver", "1.35"), ("flanneld", "flanneld", "0.28.9")],
)
def test_modern_units_present_certificates_to_etcd(modern, flags, unit, component, version):
    used = set(unit_flags(modern[0][MASTER].text(f"/etc/systemd/system/{unit}.service")))
    wanted = {"etcd-cafile", "etcd-certfile", "etcd-keyfile"}
    assert wanted <= used <= set(flags[component][version])


@pytest.mark.parametrize("profile", ["el7", "modern"])
def test_secure_cluster_re_run_changes_nothing(el7, modern, profile):
    machines, _, data = el7 if profile == "el7" else modern
    converged = copy.deepcopy(machines)
    run = run_deploy(converged, kubelab.deploy_cluster, data=data)
    assert run.commands == {host: [] for host in HOSTS}


def test_switching_a_running_cluster_to_secure(tmp_path):
    open_data = settings(tmp_path, secure=False)
    machines = {name: debian12() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data=open_data)
    run_deploy(machines, kubelab.deploy_cluster, data={**open_data, "secure": True})
    assert {"etcd.service", "kube-apiserver.service", "flanneld.service"} <= set(
        machines[MASTER].restarts
    )
    assert "flanneld.service" in machines[MINIONS[0]].restarts
    again = run_deploy(machines, kubelab.deploy_cluster, data={**open_data, "secure": True})
    assert again.commands == {host: [] for host in HOSTS}


@pytest.mark.parametrize("profile", ["el7", "modern"])
def test_no_secret_appears_in_any_command(el7, modern, profile):
    machines, run, _ = el7 if profile == "el7" else modern
    for host in HOSTS:
        for command in run.commands[host]:
            assert not re.search(r"PRIVATE KEY|client-key-data", command), command
        secrets = [
            path
            for path, state in machines[host].files.items()
            if b"PRIVATE KEY" in state.content or b"client-key-data" in state.content
        ]
        assert secrets
        for path in secrets:
            assert machines[host].files[path].mode == 0o600, path
            assert not path.startswith("/var/lib/kubelab/staging"), f"left in staging: {path}"


# The default: closed on modern, the reference's open setup on el7 (with a warning).

KUBELETS_OPEN = (
    "each minion's kubelet answers anyone on port 10250 (Kubernetes 1.5 authorizes anonymous "
    "requests: commands run in any pod) and on its read-only port 10255"
)
OPEN_WARNING = (
    "kubelab: this el7 cluster is open: etcd serves http://192.168.122.130:2379 to anyone, "
    "without client certificates, and the apiserver's plain port 8080 listens on 0.0.0.0 "
    "without authentication (whoever reaches it is cluster admin); secure=True closes that, "
    f"not the kubelets: {KUBELETS_OPEN}"
)


def warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
        and re.search(r"cluster('s kubelets)? (is|are) open", r.getMessage())
    ]


def test_modern_is_secure_unless_told_otherwise(modern, tmp_path):
    """Unset, secure is on for modern: the same files as secure=True; False opens etcd."""
    secure_machines = modern[0]
    default = {name: debian12() for name in HOSTS}
    run_deploy(default, kubelab.deploy_cluster, data=settings(tmp_path / "default"))
    for path in ("/etc/default/etcd", "/etc/systemd/system/flanneld.service"):
        assert default[MASTER].text(path) == secure_machines[MASTER].text(path), path
    assert "--etcd-cafile" in default[MASTER].text("/etc/systemd/system/kube-apiserver.service")
    opened = {name: debian12() for name in HOSTS}
    run_deploy(opened, kubelab.deploy_cluster, data=settings(tmp_path / "open", secure=False))
    conf = parse_env_file(opened[MASTER].text("/etc/default/etcd"))
    assert conf["ETCD_ADVERTISE_CLIENT_URLS"] == f"http://{MASTER_IP}:2379"
    assert "ETCD_CLIENT_CERT_AUTH" not in conf


def test_el7_stays_open_by_default_and_every_run_says_so(tmp_path, caplog):
    machines = {name: centos7() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data=settings(tmp_path))
    conf = parse_env_file(machines[MASTER].text("/etc/etcd/etcd.conf"))
    assert conf["ETCD_ADVERTISE_CLIENT_URLS"] == f"http://{MASTER_IP}:2379"
    assert warnings(caplog) == [OPEN_WARNING]
    run_deploy(machines, kubelab.deploy_cluster, data=settings(tmp_path))
    assert warnings(caplog) == [OPEN_WARNING, OPEN_WARNING]  # once per run


def test_el7_warning_leaves_out_an_api_port_on_localhost(tmp_path, caplog):
    machines = {name: centos7() for name in HOSTS}
    data = settings(tmp_path, apiserver_insecure_bind_address="127.0.0.1")
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert warnings(caplog) == [
        "kubelab: this el7 cluster is open: etcd serves http://192.168.122.130:2379 to anyone, "
        f"without client certificates; secure=True closes that, not the kubelets: {KUBELETS_OPEN}"
    ]


def test_modern_without_secure_warns_each_run_that_etcd_is_open(tmp_path, caplog):
    machines = {name: debian12() for name in HOSTS}
    data = settings(tmp_path, secure=False)
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert warnings(caplog) == 2 * [
        "kubelab: this modern cluster is open: etcd serves http://192.168.122.130:2379 to "
        "anyone, without client certificates (whoever reaches it reads and writes every Secret "
        "and the whole cluster's state); secure=True (unset: the modern default) closes it"
    ]


def test_secure_el7_says_its_kubelets_stay_open(el7, caplog):
    machines, _, data = el7
    run_deploy(copy.deepcopy(machines), kubelab.deploy_cluster, data=data)
    assert warnings(caplog) == [
        f"kubelab: this el7 cluster's kubelets are open: {KUBELETS_OPEN}; secure=True does not "
        "close them on Kubernetes 1.5 (let only the master reach those ports)"
    ]


@pytest.mark.parametrize("data", [{}, {"secure": True}], ids=["default", "secure"])
def test_no_warning_on_a_closed_modern_cluster(tmp_path, caplog, data):
    machines = {name: debian12() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data=settings(tmp_path, **data))
    assert warnings(caplog) == []


@pytest.mark.parametrize(
    ("value", "profile", "on"),
    [(None, "modern", True), (None, "el7", False), (True, "el7", True), (False, "modern", False)],
)
def test_secure_for_is_what_the_specs_read(value, profile, on):
    assert secure_for(value, profile) is on
