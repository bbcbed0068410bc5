"""How every component reaches the API with several masters (pki/api_endpoints.py): each
master's own apiserver certificate and flags, its controller-manager and scheduler at its own
apiserver, every host's kubelet and kube-proxy through its local balancer (kube-api-balancer) or
``api_endpoint``, the controller's admin kubeconfig with a context per master."""

import copy
import json
import os
import re
from pathlib import Path

import one_master_files
import pytest
from conftest import HOSTS, MASTER
from cryptography import x509
from fakehosts import REPO, centos7, debian12, run_deploy
from refusal_cases import Case, refuse_case
from test_modern import pins

import kubelab
from kubelab.settings import validation
from kubelab.settings.kinds import endpoint_problem

MASTERS = {
    "kubemaster1.traininglab.com": "192.168.122.130",
    "kubemaster2.traininglab.com": "192.168.122.133",
    "kubemaster3.traininglab.com": "192.168.122.134",
}
MINIONS = {
    "kubeminion1.traininglab.com": "192.168.122.131",
    "kubeminion2.traininglab.com": "192.168.122.132",
}
FIRST, SECOND, THIRD = MASTERS
ADDRESSES = {**MASTERS, **MINIONS}
BALANCER = "https://127.0.0.1:6444"
MASTER_API = "https://192.168.122.130:6443"
PKI = "/etc/kubernetes/pki"
BALANCER_CONFIG = "/etc/haproxy/kube-api-balancer.cfg"
BALANCER_UNIT = "/etc/systemd/system/kube-api-balancer.service"


def write_inventory(tmp_path, masters=MASTERS) -> str:
    def group(names):
        return [(name, {"ssh_hostname": ADDRESSES[name]}) for name in names]

    text = f"masters = {group(masters)!r}\nminions = {group(MINIONS)!r}\n"
    (tmp_path / "inventory.py").write_text(text)
    return os.path.relpath(tmp_path / "inventory.py", REPO)


def deploy(tmp_path, masters=MASTERS, **data):
    machines = {name: debian12() for name in [*masters, *MINIONS]}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "kubelab" / "pki"), **data}
    inventory = write_inventory(tmp_path, masters)
    with pytest.MonkeyPatch.context() as patch:
        # The count of masters is validated by the etcd side of high availability (1, 3, 5 or
        # 7 hosts); this part only builds on several.
        patch.setattr(validation, "check_groups", lambda: None)
        run = run_deploy(machines, kubelab.deploy_cluster, inventory=inventory, data=settings)
    return machines, run, settings


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    return deploy(tmp_path_factory.mktemp("three"))


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    return deploy(tmp_path_factory.mktemp("endpoint"), api_endpoint="api.traininglab.com:443")


def servers(text: str) -> list[str]:
    """The servers of a kubeconfig's clusters (kubeconfig_text quotes them as JSON)."""
    return [json.loads(value) for value in re.findall(r"^    server: (.+)$", text, re.M)]


def server(machine, path: str) -> str:
    (only,) = servers(machine.text(path))
    return only


def named(text: str, section: str) -> list[str]:
    """The names of a kubeconfig's clusters, contexts or users, in order."""
    part = re.search(rf"^{section}:\n(.*?)^[a-z]", text + "end", re.M | re.S)[1]
    return [json.loads(value) for value in re.findall(r"^- name: (.+)$", part, re.M)]


def flag(unit_text: str, name: str) -> str:
    return re.search(rf"--{name}=(\S+)", unit_text)[1]


def test_each_apiserver_advertises_its_own_address_and_one_issuer(three):
    machines, _, _ = three
    for name, address in MASTERS.items():
        text = machines[name].text("/etc/systemd/system/kube-apiserver.service")
        assert flag(text, "advertise-address") == address
        assert flag(text, "service-account-issuer") == f"https://{MASTERS[FIRST]}:6443"
        assert flag(text, "tls-cert-file") == f"{PKI}/apiserver.crt"


def test_each_master_has_its_own_apiserver_certificate(three):
    machines, _, settings = three
    certs = {name: machines[name].files[f"{PKI}/apiserver.crt"].content for name in MASTERS}
    assert len(set(certs.values())) == 3
    for name, address in MASTERS.items():
        cert = x509.load_pem_x509_certificate(certs[name])
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(sans.get_values_for_type(x509.DNSName))
        ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        assert {name, name.split(".")[0], "kubernetes", "localhost"} <= dns
        assert {address, "127.0.0.1", "10.254.0.1"} <= ips
        others = set(MASTERS) - {name}
        assert not others & dns and not {MASTERS[o] for o in others} & ips
    local = os.listdir(settings["pki_dir"])
    assert {"apiserver.crt", "apiserver-kubemaster2.crt", "apiserver-kubemaster3.crt"} <= set(local)


def test_the_same_service_account_keys_and_ca_on_every_master(three):
    machines, _, _ = three
    for path in (f"{PKI}/service-account.key", f"{PKI}/service-account.pub", f"{PKI}/ca.crt"):
        assert len({machines[name].files[path].content for name in MASTERS}) == 1, path


def test_controller_manager_scheduler_and_admin_use_their_own_apiserver(three):
    machines, _, _ = three
    for name, address in MASTERS.items():
        for kubeconfig in ("controller-manager", "scheduler", "admin"):
            path = f"/etc/kubernetes/{kubeconfig}.kubeconfig"
            assert server(machines[name], path) == f"https://{address}:6443", (name, path)
        manager = machines[name].text("/etc/systemd/system/kube-controller-manager.service")
        assert "--leader-elect=true" in manager
        scheduler = machines[name].text("/etc/kubernetes/kube-scheduler.yaml")
        assert re.search(r"^leaderElection:\n  leaderElect: true$", scheduler, re.M)


def test_kubelets_and_kube_proxies_use_the_local_balancer(three):
    machines, _, _ = three
    for name in [*MASTERS, *MINIONS]:
        assert server(machines[name], "/etc/kubernetes/kube-proxy.kubeconfig") == BALANCER
    for name in MINIONS:
        assert server(machines[name], "/etc/kubernetes/kubelet.kubeconfig") == BALANCER


def test_every_host_runs_the_balancer_over_every_apiserver(three):
    machines, _, _ = three
    for name, machine in machines.items():
        assert "haproxy" in machine.packages
        assert machine.units["kube-api-balancer.service"] == {"active": True, "enabled": True}
        assert machine.units["haproxy.service"] == {"active": False, "enabled": False}, name
        config = machine.text(BALANCER_CONFIG)
        assert "bind 127.0.0.1:6444" in config
        assert "mode tcp" in config and "option httpchk GET /readyz" in config
        assert f"ca-file {PKI}/ca.crt" in config and "verify required" in config
        assert "on-marked-down shutdown-sessions" in config
        assert "stats socket /run/kube-api-balancer.sock mode 600 level user" in config
        servers = re.findall(r"^\s*server (\S+) (\S+)$", config, re.M)
        assert servers == [(m.split(".")[0], f"{a}:6443") for m, a in MASTERS.items()]
        unit = machine.text(BALANCER_UNIT)
        assert f"ExecStart=/usr/sbin/haproxy -Ws -f {BALANCER_CONFIG}" in unit
        assert (
            machine.files[f"{PKI}/ca.crt"].content == machines[FIRST].files[f"{PKI}/ca.crt"].content
        )


def test_the_balancer_runs_before_a_kubeconfig_points_at_it(tmp_path, order):
    deploy(tmp_path)
    for name in [SECOND, *MINIONS]:
        commands = [command for host, command in order if host == name]
        balancer = next(
            i for i, c in enumerate(commands) if "systemctl start kube-api-balancer" in c
        )
        kubeconfigs = [
            i
            for i, c in enumerate(commands)
            if re.search(r"mv -f \S+ /etc/kubernetes/(kubelet|kube-proxy)\.kubeconfig", c)
        ]
        assert kubeconfigs and balancer < min(kubeconfigs), name


def test_the_controllers_admin_kubeconfig_has_a_context_per_master(three):
    _, _, settings = three
    text = user_kubeconfig(settings)
    shorts = [m.split(".")[0] for m in MASTERS]
    assert servers(text) == [f"https://{a}:6443" for a in MASTERS.values()]
    assert named(text, "clusters") == shorts and named(text, "contexts") == shorts
    for short in shorts:
        assert f'- name: "{short}"\n  context:\n    cluster: "{short}"\n    user: "admin"' in text
    assert 'current-context: "kubemaster1"' in text
    assert named(text, "users") == ["admin"] and "client-key-data: " in text


def user_kubeconfig(settings) -> str:
    return (Path(settings["pki_dir"]).parent / "admin.kubeconfig").read_text()


def test_api_endpoint_is_every_kubeconfigs_server(endpoint):
    machines, _, settings = endpoint
    for machine in machines.values():
        assert (
            server(machine, "/etc/kubernetes/kube-proxy.kubeconfig")
            == "https://api.traininglab.com:443"
        )
        assert BALANCER_CONFIG not in machine.files and "haproxy" not in machine.packages
        assert "kube-api-balancer.service" not in machine.units
    for name in MINIONS:
        kubelet = server(machines[name], "/etc/kubernetes/kubelet.kubeconfig")
        assert kubelet == "https://api.traininglab.com:443"
    assert servers(user_kubeconfig(settings)) == ["https://api.traininglab.com:443"]
    for name in MASTERS:  # the masters' own components stay on their own apiserver
        own = f"https://{MASTERS[name]}:6443"
        assert server(machines[name], "/etc/kubernetes/scheduler.kubeconfig") == own
        cert = x509.load_pem_x509_certificate(machines[name].files[f"{PKI}/apiserver.crt"].content)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "api.traininglab.com" in sans.get_values_for_type(x509.DNSName)


def test_an_api_endpoint_address_goes_into_the_certificates_ips(tmp_path):
    machines, _, _ = deploy(tmp_path, masters=[FIRST], api_endpoint="192.168.122.200:6443")
    cert = x509.load_pem_x509_certificate(machines[FIRST].files[f"{PKI}/apiserver.crt"].content)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "192.168.122.200" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    kubelet = server(machines["kubeminion1.traininglab.com"], "/etc/kubernetes/kubelet.kubeconfig")
    assert kubelet == "https://192.168.122.200:6443"


def test_one_master_without_api_endpoint_renders_every_file_as_before(tmp_path):
    """Every file (keys and certificates aside) as the commit before high availability wrote
    it (one_master_files.py), and no balancer."""
    machines = one_master_files.one_master_cluster(tmp_path)
    reference = json.loads((REPO / "tests/data/one_master_files.json").read_text())
    found = one_master_files.digests(machines)
    assert found.keys() == reference.keys()
    for name, files in reference.items():
        differing = sorted(
            path
            for path in files.keys() | found[name].keys()
            if files.get(path) != found[name].get(path)
        )
        assert not differing, (name, differing)
    for machine in machines.values():
        assert "haproxy" not in machine.packages
        assert "kube-api-balancer.service" not in machine.units


def refused(setting: str, value, phrase: str, case_id: str):
    data = {setting: value}
    machines = dict.fromkeys(HOSTS, debian12)
    return pytest.param(Case(setting, MASTER, phrase, data=data, machines=machines), id=case_id)


@pytest.mark.parametrize(
    "case",
    [
        refused("api_endpoint", "api.example.com", "has no ':port'", "endpoint-without-port"),
        refused(
            "api_endpoint",
            "https://api.example.com:443",
            "is not host:port like 'api.example.com:6443'",
            "endpoint-as-url",
        ),
        refused("api_endpoint", "api.example.com:0", "has the port '0'", "endpoint-port-0"),
        refused("api_endpoint", "api.example.com:x", "has the port 'x'", "endpoint-port-word"),
        refused(
            "api_endpoint", "192.168.1.300:6443", "which is no IPv4 address", "endpoint-bad-ip"
        ),
        refused("api_endpoint", "api_lb:6443", "names the host 'api_lb'", "endpoint-bad-name"),
        refused("api_endpoint", "api lb:6443", "holds white space", "endpoint-space"),
        refused("api_balancer_port", 6443, "6443 is also apiserver_port", "balancer-on-apiserver"),
        refused("api_balancer_port", 2379, "is also etcd_client_port", "balancer-on-etcd"),
        refused("api_balancer_port", 70000, "", "balancer-port-range"),
    ],
)
def test_bad_api_settings_stop_the_run_with_one_line(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)


@pytest.mark.parametrize("value", ["api.example.com:6443", "10.0.0.10:443", "lb:8443"])
def test_good_api_endpoints_pass(value):
    assert endpoint_problem(value) is None


def test_a_rerun_of_three_masters_changes_nothing_and_costs_as_one_master(three, tmp_path):
    machines, _, settings = three
    again = copy.deepcopy(machines)
    inventory = write_inventory(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation, "check_groups", lambda: None)
        run = run_deploy(again, kubelab.deploy_cluster, inventory=inventory, data=settings)
    assert run.changed_hosts() == []
    one = one_master_files.one_master_cluster(tmp_path / "one")
    one_run = run_deploy(
        one,
        kubelab.deploy_cluster,
        data={"artifact_sha256": pins(), "pki_dir": str(tmp_path / "one" / "kubelab" / "pki")},
    )
    for name in [*MASTERS, *MINIONS]:
        like = MASTER if name in MASTERS else "kubeminion1.traininglab.com"
        assert run.remote_commands(name) == one_run.remote_commands(like), (name, run.facts[name])


def test_growing_to_three_masters_keeps_the_first_certificate_and_moves_kubelets(tmp_path, order):
    machines, _, settings = deploy(tmp_path, masters=[FIRST])
    first_cert = machines[FIRST].files[f"{PKI}/apiserver.crt"].content
    minion = "kubeminion1.traininglab.com"
    assert server(machines[minion], "/etc/kubernetes/kubelet.kubeconfig") == MASTER_API
    grown = {**machines, SECOND: debian12(), THIRD: debian12()}
    (tmp_path / "grown").mkdir()
    inventory = write_inventory(tmp_path / "grown")  # a new file: pyinfra caches the old one
    order.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation, "check_groups", lambda: None)
        run_deploy(grown, kubelab.deploy_cluster, inventory=inventory, data=settings)
    assert grown[FIRST].files[f"{PKI}/apiserver.crt"].content == first_cert
    assert server(grown[minion], "/etc/kubernetes/kubelet.kubeconfig") == BALANCER
    commands = [command for host, command in order if host == minion]
    balancer = next(i for i, c in enumerate(commands) if "start kube-api-balancer" in c)
    kubelet = next(i for i, c in enumerate(commands) if "/etc/kubernetes/kubelet.kubeconfig" in c)
    assert balancer < kubelet
    assert any("systemctl restart kubelet.service" in c for c in commands[kubelet:])


def test_el7_ignores_api_endpoint_as_every_modern_setting(tmp_path):
    machines = {name: centos7() for name in HOSTS}
    data = {"pki_dir": str(tmp_path / "pki"), "artifact_sha256": pins(), "secure": True}
    run_deploy(machines, kubelab.deploy_cluster, data={**data, "api_endpoint": "api.lab:443"})
    kubelet = machines["kubeminion1.traininglab.com"].text("/etc/kubernetes/kubelet.kubeconfig")
    assert servers(kubelet) == [MASTER_API]
    assert "haproxy" not in machines["kubeminion1.traininglab.com"].packages


def test_only_the_first_master_rewrites_the_secrets(three):
    machines, run, _ = three
    rewritten = "/etc/kubernetes/encryption-config.rewritten"
    assert rewritten in machines[FIRST].files
    for name in (SECOND, THIRD):
        assert rewritten not in machines[name].files
        assert not any("replace -f -" in command for command in run.commands[name])
    assert any("replace -f -" in command for command in run.commands[FIRST])
