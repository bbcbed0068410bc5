"""The add-ons of the modern profile on simulated hosts: CoreDNS (cluster DNS), applied from
the master, and every kubelet pointed at it."""

import copy
import re
import shutil
import stat
from pathlib import Path

import pytest
from conftest import HOSTS, MASTER, MINIONS, with_own_pki
from fakehosts import REPO, debian12, run_deploy
from test_modern import pins

import kubelab
from kubelab import SettingError
from kubelab.settings.defaults import DEFAULTS
from kubelab.workflows import teardown

COREDNS = "/etc/kubernetes/addons/coredns.yaml"
METRICS = "/etc/kubernetes/addons/metrics-server.yaml"
KUBELET_CONFIG = "/etc/kubernetes/kubelet-config.yaml"


def image_in_effect(name: str) -> str:
    """``name``'s value for the simulated hosts: the repo's group_data, else the default."""
    values: dict = {}
    exec((REPO / "group_data" / "all.py").read_text(), values)
    return values.get(name, DEFAULTS[name])


def build(tmp_path, **data):
    machines = {name: debian12() for name in HOSTS}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki"), **data}
    run = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    return machines, run, settings


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    return build(tmp_path_factory.mktemp("addons"))


def documents(text: str) -> dict[str, str]:
    """A manifest's documents by kind (each kind once here)."""
    found = {}
    for document in text.split("\n---\n"):
        kind = re.search(r"^kind: (\S+)$", document, re.M)[1]
        assert kind not in found, kind
        found[kind] = document
    return found


def corefile(text: str) -> str:
    """The Corefile in CoreDNS's ConfigMap, unindented."""
    block = documents(text)["ConfigMap"].split("  Corefile: |\n", 1)[1]
    return "\n".join(line[4:] for line in block.splitlines()) + "\n"


def test_the_master_applies_coredns_once_the_minions_are_done(cluster):
    machines, run, _ = cluster
    master = machines[MASTER]
    assert master.applied == [f"{COREDNS}.pending", f"{METRICS}.pending"]
    assert f"{COREDNS}.pending" not in master.files
    applies = [i for i, c in enumerate(run.commands[MASTER]) if "apply -f" in c]
    assert (
        applies
        and "--kubeconfig /etc/kubernetes/admin.kubeconfig" in run.commands[MASTER][applies[0]]
    )
    for name in MINIONS:  # nothing of CoreDNS's on a minion
        assert COREDNS not in machines[name].files


def test_coredns_manifest(cluster):
    machines, _, _ = cluster
    text = machines[MASTER].text(COREDNS)
    kinds = documents(text)
    assert set(kinds) == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    }
    deployment = kinds["Deployment"]
    assert "  replicas: 2\n" in deployment
    assert f'image: "{image_in_effect("dns_image")}"' in deployment
    assert "      maxUnavailable: 0\n      maxSurge: 1\n" in deployment
    assert "path: /ready\n              port: 8181" in deployment
    assert "path: /health\n              port: 8080" in deployment
    assert "topologyKey: kubernetes.io/hostname" in deployment
    assert "whenUnsatisfiable: DoNotSchedule" in deployment
    assert "nodeTaintsPolicy: Honor" in deployment
    assert "dnsPolicy: Default" in deployment
    service = kinds["Service"]
    assert "  name: kube-dns\n" in service and "  clusterIP: 10.254.0.10\n" in service
    assert "  maxUnavailable: 1\n" in kinds["PodDisruptionBudget"]  # never blocks a drain
    role = kinds["ClusterRole"]
    assert 'resources: ["services", "namespaces"]' in role
    assert 'resources: ["endpointslices"]' in role
    assert 'verbs: ["list", "watch"]' in role
    assert "\t" not in text


def test_corefile_serves_the_cluster_domain_and_forwards_to_the_nodes(cluster):
    machines, _, _ = cluster
    text = corefile(machines[MASTER].text(COREDNS))
    assert "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n" in text
    assert "    forward . /etc/resolv.conf {\n" in text
    assert "    health {\n        lameduck 5s\n    }\n    ready\n" in text
    for plugin in ("cache 30", "loop", "reload"):
        assert f"    {plugin}\n" in text
    assert text.count("{") == text.count("}")


def test_every_kubelet_uses_the_cluster_dns(cluster):
    machines, _, _ = cluster
    for name in MINIONS:
        config = machines[name].text(KUBELET_CONFIG)
        assert 'clusterDNS:\n  - "10.254.0.10"\n' in config
        assert 'clusterDomain: "cluster.local"' in config


def test_a_rerun_applies_nothing(cluster):
    machines, _, settings = cluster
    machines = copy.deepcopy(machines)
    run = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert run.commands == {name: [] for name in HOSTS}
    assert machines[MASTER].applied == [f"{COREDNS}.pending", f"{METRICS}.pending"]


def test_a_changed_setting_is_applied_and_rolls_coredns(cluster):
    machines, _, settings = cluster
    machines = copy.deepcopy(machines)
    before = machines[MASTER].text(COREDNS)
    changed = {**settings, "dns_upstream": "192.168.122.1, 10.0.0.2:5353", "dns_replicas": 3}
    run = run_deploy(machines, kubelab.deploy_cluster, data=changed)
    after = machines[MASTER].text(COREDNS)
    assert machines[MASTER].applied[-1] == f"{COREDNS}.pending"
    assert "    forward . 192.168.122.1 10.0.0.2:5353 {\n" in corefile(after)
    assert "  replicas: 3\n" in documents(after)["Deployment"]
    # the pod template changes with the Corefile: the Deployment rolls its replicas
    digest = re.compile(r"kubelab\.io/corefile-sha256: \"(\w+)\"")
    assert digest.search(before)[1] != digest.search(after)[1]
    assert [name for name in run.changed_hosts()] == [MASTER]  # no kubelet restarts


def test_a_failed_apply_leaves_the_manifest_out_and_the_next_run_applies_it(cluster):
    machines, _, settings = cluster
    machines = copy.deepcopy(machines)
    before = machines[MASTER].files[COREDNS]
    machines[MASTER].kube_error = "The connection to the server was refused"
    changed = {**settings, "dns_replicas": 1}
    run = run_deploy(machines, kubelab.deploy_cluster, data=changed, expect_failures=True)
    assert run.failed == [MASTER]
    assert machines[MASTER].files[COREDNS] == before  # not applied: not in place
    failed = [c for c in run.commands[MASTER] if "apply -f" in c][-1]
    assert "(tried for 120 s: addons_timeout)" in failed
    machines[MASTER].kube_error = None
    run_deploy(machines, kubelab.deploy_cluster, data=changed)
    assert "  replicas: 1\n" in machines[MASTER].text(COREDNS)


def test_the_run_ends_when_each_addons_deployment_is_available(cluster):
    machines, run, _ = cluster
    assert machines[MASTER].waited_for[-2:] == ["deployment coredns", "deployment metrics-server"]
    wait = next(c for c in run.commands[MASTER] if "get deployment coredns" in c)
    assert "(tried for 120 s: addons_timeout)" in wait and "-l k8s-app=kube-dns" in wait


def test_coredns_never_available_fails_the_run_and_the_next_run_waits_again(cluster):
    machines, _, settings = cluster
    machines = copy.deepcopy(machines)
    before = machines[MASTER].files[COREDNS]
    machines[MASTER].unavailable = {"coredns"}
    changed = {**settings, "dns_replicas": 1}
    run = run_deploy(machines, kubelab.deploy_cluster, data=changed, expect_failures=True)
    assert run.failed == [MASTER]
    assert machines[MASTER].files[COREDNS] == before  # not available: not in place
    machines[MASTER].unavailable = set()
    waits = len(machines[MASTER].waited_for)
    run_deploy(machines, kubelab.deploy_cluster, data=changed)
    assert machines[MASTER].waited_for[waits:] == ["deployment coredns"]
    assert "  replicas: 1\n" in machines[MASTER].text(COREDNS)


def test_without_a_resolver_on_a_minion_coredns_does_not_forward(tmp_path, caplog):
    machines = {name: debian12() for name in HOSTS}
    machines[MINIONS[1]].files["/etc/resolv.conf"].content = b"# no resolver\n"
    machines[MINIONS[0]].files["/etc/resolv.conf"].content = b"nameserver 127.0.0.53\n"
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    text = corefile(machines[MASTER].text(COREDNS))
    assert "forward" not in text
    assert "    ready\n" in text and "    kubernetes cluster.local" in text
    warned = [r.message for r in caplog.records if "CoreDNS can forward to" in r.message]
    assert len(warned) == 1 and MINIONS[0] in warned[0] and MINIONS[1] in warned[0]
    assert "set dns_upstream" in warned[0]
    # a minion without any resolv.conf is one without a resolver too
    del machines[MINIONS[1]].files["/etc/resolv.conf"]
    machines[MINIONS[0]].files["/etc/resolv.conf"].content = b"nameserver 10.0.0.2\n"
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert "forward" not in corefile(machines[MASTER].text(COREDNS))


def test_behind_systemd_resolved_pods_get_its_list_of_resolvers(tmp_path):
    """Ubuntu: /etc/resolv.conf names systemd-resolved's stub 127.0.0.53, which inside a pod
    is the pod itself; the kubelet gives pods systemd-resolved's list of the real ones."""
    from fakehosts import FileState, ubuntu24

    machines = {name: ubuntu24() for name in HOSTS}
    for name in MINIONS:
        machines[name].files["/etc/resolv.conf"].content = b"nameserver 127.0.0.53\n"
        resolved = "/run/systemd/resolve/resolv.conf"
        machines[name].files[resolved] = FileState(b"nameserver 192.168.122.1\n")
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert "    forward . /etc/resolv.conf {\n" in corefile(machines[MASTER].text(COREDNS))
    for name in MINIONS:
        config = machines[name].text(KUBELET_CONFIG)
        assert 'resolvConf: "/run/systemd/resolve/resolv.conf"\n' in config
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert again.commands == {name: [] for name in HOSTS}


def test_a_plain_resolv_conf_is_the_kubelets_default(cluster):
    machines, _, _ = cluster
    for name in MINIONS:
        assert "resolvConf" not in machines[name].text(KUBELET_CONFIG)


def test_cluster_dns_ip_setting(tmp_path):
    machines, _, _ = build(tmp_path, cluster_dns_ip="10.254.0.53", dns_image="lab.local/coredns:x")
    text = machines[MASTER].text(COREDNS)
    assert "  clusterIP: 10.254.0.53\n" in documents(text)["Service"]
    assert 'image: "lab.local/coredns:x"' in text
    for name in MINIONS:
        assert '  - "10.254.0.53"\n' in machines[name].text(KUBELET_CONFIG)


@pytest.mark.parametrize(
    "data, name, phrase",
    [
        ({"cluster_dns_ip": "10.255.0.10"}, "cluster_dns_ip", "not a service address of"),
        ({"cluster_dns_ip": "10.254.0.1"}, "cluster_dns_ip", "the API's service address"),
        ({"cluster_dns_ip": "10.254.0.0"}, "cluster_dns_ip", "not a service address of"),
        ({"cluster_dns_ip": "dns"}, "cluster_dns_ip", "is not an IPv4 address"),
        (
            {"service_cluster_ip_range": "10.254.0.0/29"},
            "service_cluster_ip_range",
            "too few for the cluster's Services",
        ),
        ({"dns_upstream": "127.0.0.53"}, "dns_upstream", "a loopback address"),
        ({"dns_upstream": "10.254.0.10"}, "dns_upstream", "the cluster DNS service itself"),
        ({"dns_upstream": "resolver.lan"}, "dns_upstream", "is not a resolver address"),
        ({"dns_upstream": "10.0.0.2:99999"}, "dns_upstream", "is not a resolver address"),
        ({"dns_upstream": " , "}, "dns_upstream", "names no resolver"),
        ({"dns_replicas": 0}, "dns_replicas", "out of range 1-100"),
        ({"dns_image": "Bad Image"}, "dns_image", "is not an image reference"),
        ({"addons_timeout": "60"}, "addons_timeout", "is a string"),
    ],
)
def test_bad_dns_settings_stop_before_any_host_is_touched(tmp_path, data, name, phrase):
    machines = {name: debian12() for name in HOSTS}
    before = copy.deepcopy(machines)
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki"), **data}
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, kubelab.deploy_cluster, data=settings)
    message = str(raised.value)
    assert "\n" not in message
    assert re.match(rf"kubelab: setting '{name}' on {re.escape(MASTER)}: .*{phrase}", message)
    assert machines == before


def test_reset_removes_the_addons_with_etcd_and_their_manifests():
    removed = teardown.paths()
    assert "/var/lib/etcd" in removed  # the add-ons' objects live there
    assert any(COREDNS.startswith(f"{path}/") for path in removed)


# The aggregation layer and metrics-server ---------------------------------------------------

APISERVER_UNIT = "/etc/systemd/system/kube-apiserver.service"
PKI = "/etc/kubernetes/pki"


def certificate(machine, path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(machine.files[path].content)


def test_the_apiserver_serves_the_aggregation_layer(cluster):
    machines, _, settings = cluster
    master = machines[MASTER]
    unit = master.text(APISERVER_UNIT)
    for flag in (
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        # the apiserver dials metrics-server's pod IP itself (the master is on flannel's
        # overlay), kube-proxy or not
        "--enable-aggregator-routing=true",
    ):
        assert f"  {flag} \\\n" in unit, flag
    ca = certificate(master, f"{PKI}/front-proxy-ca.crt")
    client = certificate(master, f"{PKI}/front-proxy-client.crt")
    cluster_ca = certificate(master, f"{PKI}/ca.crt")
    client.verify_directly_issued_by(ca)
    assert ca.subject != cluster_ca.subject  # a CA of its own
    assert client.subject.rfc4514_string() == "CN=front-proxy-client"
    assert master.files[f"{PKI}/front-proxy-client.key"].mode == 0o600
    local = Path(settings["pki_dir"]) / "front-proxy"
    assert stat.S_IMODE(local.stat().st_mode) == 0o700
    assert (local / "ca.crt").read_bytes() == master.files[f"{PKI}/front-proxy-ca.crt"].content


def test_metrics_server_manifest_verifies_the_kubelets(cluster):
    machines, _, _ = cluster
    text = machines[MASTER].text(METRICS)
    kinds = [re.search(r"^kind: (\S+)$", d, re.M)[1] for d in text.split("\n---\n")]
    assert sorted(kinds) == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "RoleBinding",
            "Secret",
            "Deployment",
            "Service",
            "APIService",
        ]
    )
    assert "kubelet-insecure-tls" not in text
    ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    assert f"- --kubelet-certificate-authority={ca}\n" in text
    assert "- --kubelet-preferred-address-types=InternalIP\n" in text
    assert f'image: "{image_in_effect("metrics_server_image")}"' in text
    assert "  name: v1beta1.metrics.k8s.io\n" in text
    for name in (
        "system:aggregated-metrics-reader",
        "system:auth-delegator",
        "extension-apiserver-authentication-reader",
    ):
        assert f"  name: {name}\n" in text
    assert 'resources: ["nodes/metrics"]\n    verbs: ["get"]' in text
    # the CA in every pod's service account volume is the controller-manager's root CA, the
    # cluster CA, which signs each kubelet's serving certificate for its address and names
    controller = machines[MASTER].text("/etc/systemd/system/kube-controller-manager.service")
    assert f"--root-ca-file={PKI}/ca.crt" in controller
    from cryptography import x509

    cluster_ca = certificate(machines[MASTER], f"{PKI}/ca.crt")
    for index, name in enumerate(MINIONS):
        serving = certificate(machines[name], f"{PKI}/kubelet.crt")
        serving.verify_directly_issued_by(cluster_ca)
        sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
            f"192.168.122.{131 + index}"
        ]
        assert name in sans.get_values_for_type(x509.DNSName)
        assert f"--node-ip=192.168.122.{131 + index}" in machines[name].text(
            "/etc/systemd/system/kubelet.service"
        )


def test_the_apiserver_verifies_metrics_server(cluster):
    """The APIService trusts the cluster CA, which signed metrics-server's serving certificate
    for the Service's name the aggregator checks; the key reaches the pod as a Secret and sits
    on the master in a directory only root enters."""
    import base64

    from cryptography import x509

    machines, _, _ = cluster
    master = machines[MASTER]
    text = master.text(METRICS)
    assert "insecureSkipTLSVerify" not in text
    bundle = re.search(r"^  caBundle: (\S+)$", text, re.M)[1]
    assert base64.b64decode(bundle) == master.files[f"{PKI}/ca.crt"].content
    cert_pem = base64.b64decode(re.search(r"^  tls\.crt: (\S+)$", text, re.M)[1])
    serving = x509.load_pem_x509_certificate(cert_pem)
    serving.verify_directly_issued_by(certificate(master, f"{PKI}/ca.crt"))
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "metrics-server.kube-system.svc" in sans.get_values_for_type(x509.DNSName)
    assert "- --tls-cert-file=/etc/metrics-server/tls/tls.crt\n" in text
    assert "- --tls-private-key-file=/etc/metrics-server/tls/tls.key\n" in text
    assert master.dir_modes["/etc/kubernetes/addons"] == 0o700
    assert master.files[METRICS].mode == 0o600


def test_metrics_server_turned_off_is_deleted_then_left_alone(cluster):
    machines, _, settings = cluster
    machines = copy.deepcopy(machines)
    off = {**settings, "metrics_server": False}
    run_deploy(machines, kubelab.deploy_cluster, data=off)
    assert machines[MASTER].deleted == [METRICS]
    assert METRICS not in machines[MASTER].files
    again = run_deploy(machines, kubelab.deploy_cluster, data=off)
    assert again.commands == {name: [] for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data={**settings, "metrics_server_image": "x/m:1"})
    assert 'image: "x/m:1"' in machines[MASTER].text(METRICS)


def test_a_lost_front_proxy_ca_stops_the_run_before_any_host_is_touched(cluster, tmp_path):
    machines, _, settings = cluster
    machines, settings = with_own_pki(machines, settings, tmp_path)
    shutil.rmtree(Path(settings["pki_dir"]) / "front-proxy")
    before = copy.deepcopy(machines)
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert re.match(
        rf"kubelab: setting 'pki_dir' on {re.escape(MASTER)}: .*front-proxy holds no "
        "front-proxy CA, but this master already has one",
        str(raised.value),
    )
    assert machines == before
    assert not (Path(settings["pki_dir"]) / "front-proxy").exists()


# Day two ---------------------------------------------------------------------------------


def test_the_upgrade_moves_the_addons_to_the_new_images_after_the_last_minion(tmp_path, order):
    from test_day_two import running
    from test_upgrade import OLD, PINS

    machines = {name: debian12() for name in HOSTS}
    settings = {"artifact_sha256": PINS, "pki_dir": str(tmp_path / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data={**settings, **OLD})
    machines = running(machines)
    dns, metrics = "lab.local/coredns:v1.13.2", "lab.local/metrics-server:v0.8.1"
    archives = {dns: "http://192.168.122.1:8080/lab/images/coredns.tar"}
    archives[metrics] = "http://192.168.122.1:8080/lab/images/metrics-server.tar"
    new = {**settings, "dns_image": dns, "metrics_server_image": metrics}
    new["image_archives"] = archives
    order.clear()
    run_deploy(machines, kubelab.deploy_upgrade, data=new)
    assert f'image: "{dns}"' in machines[MASTER].text(COREDNS)
    assert f'image: "{metrics}"' in machines[MASTER].text(METRICS)
    for name in MINIONS:
        assert {f"{dns}", f"{metrics}"} <= machines[name].images
    last_uncordon = max(i for i, (_, c) in enumerate(order) if " uncordon " in c)
    imports = [i for i, (_, c) in enumerate(order) if "images import" in c]
    applies = [i for i, (h, c) in enumerate(order) if h == MASTER and "apply -f" in c]
    assert len(imports) == 4 and len(applies) == 2
    assert last_uncordon < min(imports) and max(imports) < min(applies)
    # at the new releases a second upgrade applies nothing
    again = run_deploy(machines, kubelab.deploy_upgrade, data=new)
    assert again.commands == {name: [] for name in HOSTS}


def test_el7_stays_the_reference_setup_without_addons(tmp_path):
    from fakehosts import centos7

    machines = {name: centos7() for name in HOSTS}
    data = {"pki_dir": str(tmp_path / "pki")}
    run = run_deploy(machines, kubelab.deploy_cluster, data=data)
    for name in HOSTS:
        assert not any("/etc/kubernetes/addons" in path for path in machines[name].files)
        assert not any("apply -f" in command for command in run.commands[name])
    assert "/etc/kubernetes/encryption-config.yaml" not in machines[MASTER].files


def test_the_addons_are_a_deploy_of_the_library():
    assert "deploy_addons" in kubelab.__all__ and callable(kubelab.deploy_addons)
