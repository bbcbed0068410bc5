"""One node's keys do not open etcd: etcd's own CA, flanneld kept to flannel's prefix by etcd's
auth, kube-proxy's certificate per host, and a secure cluster of the earlier layout (etcd
trusting the cluster CA) moved to this one by one run."""

import base64
import copy
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import pytest
from conftest import HOSTS, MASTER, MINIONS, parse_env_file
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fakehosts import centos7, debian12, run_deploy
from test_modern import pins

import kubelab
from kubelab.components import etcd_access
from kubelab.engine.facts import EtcdAuth
from kubelab.pki.pki import ClusterPKI
from kubelab.pki.pki_files import write_private

FLANNEL_PREFIX = "/atomic.io/network/"
ETCD_FILES = ("/etc/etcd/pki/ca.crt", "/etc/etcd/pki/server.crt")
APISERVER_ETCD = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
FLANNELD_ETCD = "/etc/flannel/pki/flanneld-etcd-client.crt"
KUBE_PROXY = "/etc/kubernetes/kube-proxy.kubeconfig"
KUBELET = "/etc/kubernetes/kubelet.kubeconfig"


def settings(tmp_path, **extra):
    return {"pki_dir": str(tmp_path / "pki"), "artifact_sha256": pins(), "secure": True, **extra}


def built(factory, tmp_path):
    data = settings(tmp_path)
    machines = {name: factory() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    return machines, data


@pytest.fixture(scope="module")
def modern(tmp_path_factory):
    return built(debian12, tmp_path_factory.mktemp("modern"))


@pytest.fixture(scope="module")
def el7(tmp_path_factory):
    return built(centos7, tmp_path_factory.mktemp("el7"))


def cert(machine, path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(machine.files[path].content)


def kubeconfig_cert(machine, path: str) -> x509.Certificate:
    data = re.search(r"client-certificate-data: (\S+)", machine.text(path)).group(1)
    return x509.load_pem_x509_certificate(base64.b64decode(data))


def issued_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(ca)
    except Exception:
        return False
    return True


def common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def etcd_trusts(machine, config: str) -> x509.Certificate:
    return cert(machine, parse_env_file(machine.text(config))["ETCD_TRUSTED_CA_FILE"])


@pytest.mark.parametrize("profile", ["modern", "el7"])
def test_etcd_trusts_its_own_ca_and_no_certificate_of_the_cluster_ca(modern, el7, profile):
    machines, data = modern if profile == "modern" else el7
    master = machines[MASTER]
    config = "/etc/default/etcd" if profile == "modern" else "/etc/etcd/etcd.conf"
    etcd_ca = etcd_trusts(master, config)
    cluster_ca = x509.load_pem_x509_certificate((Path(data["pki_dir"]) / "ca.crt").read_bytes())
    assert common_name(etcd_ca) == "kubelab-etcd-ca" and etcd_ca != cluster_ca
    assert (Path(data["pki_dir"]) / "etcd-ca.key").stat().st_mode & 0o777 == 0o600
    # etcd's own clients: of etcd's CA, and they verify etcd's serving certificate with it
    apiserver = APISERVER_ETCD if profile == "modern" else "/etc/kubernetes/tls/"
    if profile == "el7":
        apiserver += "apiserver-etcd-client.crt"
    assert issued_by(cert(master, "/etc/etcd/pki/server.crt"), etcd_ca)
    assert issued_by(cert(master, apiserver), etcd_ca)
    for name in HOSTS:
        assert issued_by(cert(machines[name], FLANNELD_ETCD), etcd_ca), name
        assert cert(machines[name], "/etc/flannel/pki/ca.crt") == etcd_ca, name
    # the cluster CA's certificates (a kubelet's, a kube-proxy's) are refused by etcd
    for name in MINIONS:
        for path in (KUBELET, KUBE_PROXY):
            leaf = kubeconfig_cert(machines[name], path)
            assert issued_by(leaf, cluster_ca) and not issued_by(leaf, etcd_ca), (name, path)


def test_modern_apiserver_verifies_etcd_with_etcds_ca_and_clients_with_the_cluster_ca(modern):
    master = modern[0][MASTER]
    unit = master.text("/etc/systemd/system/kube-apiserver.service")
    assert "--etcd-cafile=/etc/kubernetes/pki/etcd-ca.crt" in unit
    assert "--client-ca-file=/etc/kubernetes/pki/ca.crt" in unit
    etcd_ca = etcd_trusts(master, "/etc/default/etcd")
    assert cert(master, "/etc/kubernetes/pki/etcd-ca.crt") == etcd_ca
    assert cert(master, "/etc/kubernetes/pki/ca.crt") != etcd_ca


def test_etcd_auth_keeps_flanneld_to_flannels_prefix(modern):
    auth = modern[0][MASTER].etcd_auth
    assert auth["enabled"]
    assert auth["perms"] == {"flanneld": [(2, FLANNEL_PREFIX, "/atomic.io/network0")]}
    assert auth["users"] == {
        "root": ["root"],
        "apiserver": ["root"],
        "etcd": ["root"],
        "flanneld": ["flanneld"],
    }
    # each user is a certificate's common name
    master = modern[0][MASTER]
    assert common_name(cert(master, FLANNELD_ETCD)) == "flanneld"
    assert common_name(cert(master, APISERVER_ETCD)) == "apiserver"
    assert common_name(cert(master, "/etc/etcd/pki/server.crt")) == "etcd"


def test_etcd_auth_follows_flannels_prefix_setting(tmp_path):
    machines = {name: debian12() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data=settings(tmp_path, flannel_etcd_prefix="/f/"))
    assert machines[MASTER].etcd_auth["perms"] == {"flanneld": [(2, "/f/", "/f0")]}


def test_el7_has_no_etcd_auth(el7):
    """etcd 3.3's v2 API (flanneld 0.7.1) knows no certificate users: the CA is all there is."""
    assert not el7[0][MASTER].etcd_auth["enabled"]


def test_each_hosts_kube_proxy_has_a_certificate_of_its_own(modern):
    machines = modern[0]
    certificates = [kubeconfig_cert(machines[name], KUBE_PROXY) for name in HOSTS]
    assert len({c.public_key().public_numbers().n for c in certificates}) == len(HOSTS)
    for certificate in certificates:
        assert common_name(certificate) == "system:kube-proxy"
        organizations = certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
        assert [org.value for org in organizations] == ["system:node-proxier"]


def test_el7_minions_kube_proxy_has_a_certificate_of_its_own(el7):
    machines = el7[0]
    kubeconfigs = {machines[name].files[KUBE_PROXY].content for name in MINIONS}
    assert len(kubeconfigs) == len(MINIONS)


# A secure cluster of the earlier layout: etcd, its clients and kube-proxy on the cluster CA.


def resigned(leaf: x509.Certificate, pki: ClusterPKI) -> bytes:
    """``leaf`` as the cluster CA issued it (same subject, key and extensions)."""
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    key = serialization.load_pem_private_key(pki.ca_key_path.read_bytes(), password=None)
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(ca.subject)
        .public_key(leaf.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_before_utc + timedelta(days=365))
    )
    for extension in leaf.extensions:
        if not isinstance(extension.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


EL7_TLS = "/etc/kubernetes/tls"


def earlier_layout(machines, pki_dir: str, profile: str = "modern"):
    """Turn a converged secure cluster into the layout kubelab wrote before etcd had a CA of its
    own: the hosts' files, etcd without auth, and the local PKI."""
    local = Path(pki_dir)
    pki = ClusterPKI.open(local, create=False)
    master = machines[MASTER]
    for name in ("etcd-server", "apiserver-etcd-client", "flanneld-etcd-client"):
        path = local / f"{name}.crt"
        write_private(path, resigned(x509.load_pem_x509_certificate(path.read_bytes()), pki))
    for name in ("etcd-ca.crt", "etcd-ca.key", *(p.name for p in local.glob("kube-proxy-*"))):
        (local / name).unlink()
    apiserver = APISERVER_ETCD if profile == "modern" else f"{EL7_TLS}/apiserver-etcd-client.crt"
    for machine in machines.values():
        for path in ("/etc/etcd/pki/server.crt", apiserver, FLANNELD_ETCD):
            if path in machine.files:
                machine.files[path].content = resigned(cert(machine, path), pki)
        for path in ("/etc/etcd/pki/ca.crt", "/etc/flannel/pki/ca.crt"):
            if path in machine.files:
                machine.files[path].content = pki.ca_cert_pem
        # one kube-proxy certificate for every host
        if KUBE_PROXY in machine.files:
            machine.files[KUBE_PROXY].content = machines[MINIONS[0]].files[KUBE_PROXY].content
    if profile == "modern":
        del master.files["/etc/kubernetes/pki/etcd-ca.crt"]
        config = master.files["/etc/systemd/system/kube-apiserver.service"]
        config.content = config.content.replace(b"pki/etcd-ca.crt", b"pki/ca.crt")
    else:  # the apiserver's etcd CA was the ca.crt of its TLS files
        del master.files[f"{EL7_TLS}/etcd-ca.crt"]
        config = master.files["/etc/kubernetes/apiserver"]
        config.content = config.content.replace(b"tls/etcd-ca.crt", b"tls/ca.crt")
    master.etcd_auth = {"enabled": False, "users": {}, "perms": {}}
    for machine in machines.values():
        machine.restarts.clear()


@pytest.fixture
def pki_restored(modern, el7):
    """The module's PKI directories as they were, whatever a test did to them."""
    directories = [Path(data["pki_dir"]) for _, data in (modern, el7)]
    saved = {d: {p.relative_to(d): p.read_bytes() for p in files_in(d)} for d in directories}
    yield
    for directory, files in saved.items():
        for path in files_in(directory):
            if path.relative_to(directory) not in files:
                path.unlink()
        for name, content in files.items():
            write_private(directory / name, content)


def files_in(directory: Path) -> list[Path]:
    """The files of a PKI directory, those of the CAs kept inside it (the front proxy's) too."""
    return [path for path in directory.rglob("*") if path.is_file()]


def test_a_secure_el7_cluster_of_the_earlier_layout_moves_over_in_one_run(el7, pki_restored):
    converged, data = el7
    machines = copy.deepcopy(converged)
    earlier_layout(machines, data["pki_dir"], "el7")
    stored = dict(machines[MASTER].etcd)
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    master = machines[MASTER]
    etcd_ca = etcd_trusts(master, "/etc/etcd/etcd.conf")
    assert issued_by(cert(master, "/etc/etcd/pki/server.crt"), etcd_ca)
    assert issued_by(cert(master, f"{EL7_TLS}/apiserver-etcd-client.crt"), etcd_ca)
    assert cert(master, f"{EL7_TLS}/etcd-ca.crt") == etcd_ca != cert(master, f"{EL7_TLS}/ca.crt")
    assert f"--etcd-cafile={EL7_TLS}/etcd-ca.crt" in master.text("/etc/kubernetes/apiserver")
    assert master.etcd == stored and not master.etcd_auth["enabled"]
    assert {"etcd.service", "kube-apiserver.service"} <= set(master.restarts)
    for name in MINIONS:
        machine = machines[name]
        assert issued_by(cert(machine, FLANNELD_ETCD), etcd_ca), name
        assert {"flanneld.service", "kube-proxy.service"} <= set(machine.restarts), name
        # docker's bridge comes from flanneld's lease, which a new certificate leaves alone
        assert not {"docker.service", "kubelet.service"} & set(machine.restarts), name
    again = run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert again.commands == {host: [] for host in HOSTS}


def test_a_secure_cluster_of_the_earlier_layout_moves_over_in_one_run(modern):
    converged, data = modern
    machines = copy.deepcopy(converged)
    pki_dir = Path(data["pki_dir"])
    saved = {path.relative_to(pki_dir): path.read_bytes() for path in files_in(pki_dir)}
    try:
        earlier_layout(machines, data["pki_dir"])
        stored = dict(machines[MASTER].etcd)
        run = run_deploy(machines, kubelab.deploy_cluster, data=data)
        master = machines[MASTER]
        etcd_ca = etcd_trusts(master, "/etc/default/etcd")
        assert common_name(etcd_ca) == "kubelab-etcd-ca"
        assert issued_by(cert(master, "/etc/etcd/pki/server.crt"), etcd_ca)
        assert issued_by(cert(master, APISERVER_ETCD), etcd_ca)
        assert master.etcd == stored  # etcd's data kept, flannel's config not rewritten
        assert master.etcd_auth["enabled"]
        commands = run.commands[MASTER]
        restart_etcd = commands.index("systemctl restart etcd.service")
        auth = next(i for i, c in enumerate(commands) if "e auth enable" in c)
        restart_api = next(i for i, c in enumerate(commands) if "restart kube-apiserver" in c)
        # auth set up with the new certificates, before the apiserver comes back on them
        assert restart_etcd < auth < restart_api
        for name in HOSTS:
            machine = machines[name]
            assert issued_by(cert(machine, FLANNELD_ETCD), etcd_ca), name
            assert {"flanneld.service", "kube-proxy.service"} <= set(machine.restarts), name
            # the pods' side stays: no runtime or kubelet restart, no pod stopped
            assert not {"containerd.service", "kubelet.service"} & set(machine.restarts), name
            assert not any("tasks delete" in c or "ip link delete" in c for c in run.commands[name])
        proxies = {machines[n].files[KUBE_PROXY].content for n in HOSTS}
        assert len(proxies) == len(HOSTS)
        again = run_deploy(machines, kubelab.deploy_cluster, data=data)
        assert again.commands == {host: [] for host in HOSTS}
    finally:
        for path in files_in(pki_dir):
            if path.relative_to(pki_dir) not in saved:
                path.unlink()
        for name, content in saved.items():
            write_private(pki_dir / name, content)


def test_etcd_auth_fact_reads_etcdctls_json():
    """etcdctl -w json prints etcd's responses as Go's encoding/json does: bytes in base64,
    empty fields (auth off, permType READ) left out."""
    key, end = (base64.b64encode(text.encode()).decode() for text in (FLANNEL_PREFIX, "/a0"))
    lines = [
        'auth status\t{"header":{"cluster_id":1},"enabled":true,"authRevision":7}',
        'user get root\t{"header":{},"roles":["root"]}',
        "user get flanneld\t",
        f'role get flanneld\t{{"header":{{}},"perm":[{{"permType":2,"key":"{key}",'
        f'"range_end":"{end}"}},{{"key":"{key}"}}]}}',
    ]
    assert EtcdAuth().process(lines) == {
        "enabled": True,
        "users": {"root": ["root"], "flanneld": None},
        "perms": {"flanneld": [(2, FLANNEL_PREFIX, "/a0"), (0, FLANNEL_PREFIX, "")]},
    }
    assert EtcdAuth().process(['auth status\t{"header":{}}'])["enabled"] is False
    assert EtcdAuth().process([]) is None  # etcd down, or no etcdctl


def test_etcd_auth_commands_are_shell():
    command = EtcdAuth().command("https://m:2379", "--cert=/c", ("root",), ("flanneld",))
    assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0
    with (
        patch("kubelab.components.etcd_access.setting", lambda name, *_: "/atomic.io/network"),
        patch("kubelab.components.etcd_access.host", SimpleNamespace(name="m")),
        patch("kubelab.components.etcd_access.topology.etcd_url", lambda: "https://m:2379"),
        patch("kubelab.components.etcd_access.etcd_tls.etcdctl_args", lambda api: "--cert=/c"),
    ):
        setup = etcd_access.setup_command()
    assert subprocess.run(["bash", "-n", "-c", setup]).returncode == 0
    assert "e role grant-permission flanneld --prefix=true readwrite /atomic.io/network/" in setup
