"""The controller-side PKI: file modes, reuse across runs, certificate contents, kubeconfigs."""

import base64
import json
import os
import re
import stat
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubelab.pki import pki

ClusterPKI, PKIError, PKIMissing = pki.ClusterPKI, pki.PKIError, pki.PKIMissing

API_DNS = ["kubemaster.traininglab.com", "kubernetes", "kubernetes.default"]
API_IPS = ["192.168.122.130", "10.254.0.1"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(cert_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_pem)


def ext(cert: x509.Certificate, kind: type):
    return cert.extensions.get_extension_for_class(kind)


def public_der(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_of(key_pem: bytes):
    return serialization.load_pem_private_key(key_pem, password=None)


def names(cert: x509.Certificate, oid) -> list[str]:
    return [attribute.value for attribute in cert.subject.get_attributes_for_oid(oid)]


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    return tmp_path / "kubelab" / "pki"


@pytest.fixture
def cluster(pki_dir: Path) -> ClusterPKI:
    return ClusterPKI.open(pki_dir, create=True, cluster_name="lab")


def test_creates_private_directory_and_files(cluster, pki_dir):
    cluster.server_cert("apiserver", "kubernetes", API_DNS, API_IPS)
    cluster.client_cert("admin", "admin", ["system:masters"])
    cluster.service_account_keypair()

    assert mode(pki_dir) == 0o700
    assert sorted(path.name for path in pki_dir.iterdir()) == [
        "admin.crt",
        "admin.key",
        "apiserver.crt",
        "apiserver.key",
        "ca.crt",
        "ca.key",
        "kubelab-files",
        "service-account.key",
        "service-account.pub",
    ]
    assert {mode(path) for path in pki_dir.iterdir()} == {0o600}
    # kubelab-files names every other file: what kubelab wrote
    written = (pki_dir / "kubelab-files").read_text().split()
    assert written == sorted(p.name for p in pki_dir.iterdir() if p.name != "kubelab-files")


def test_modes_do_not_depend_on_the_umask(pki_dir):
    previous = os.umask(0)
    try:
        cluster = ClusterPKI.open(pki_dir, create=True)
        cluster.client_cert("admin", "admin")
    finally:
        os.umask(previous)
    assert mode(pki_dir) == 0o700
    assert {mode(path) for path in pki_dir.iterdir()} == {0o600}


def test_second_open_reuses_everything(cluster, pki_dir):
    first = (
        cluster.ca_cert_pem,
        cluster.server_cert("apiserver", "kubernetes", API_DNS, API_IPS),
        cluster.client_cert("admin", "admin", ["system:masters"]),
        cluster.service_account_keypair(),
    )
    files = {path.name: path.read_bytes() for path in pki_dir.iterdir()}

    for create in (True, False):
        again = ClusterPKI.open(pki_dir, create=create, cluster_name="lab")
        assert (
            again.ca_cert_pem,
            again.server_cert("apiserver", "kubernetes", API_DNS, API_IPS),
            again.client_cert("admin", "admin", ["system:masters"]),
            again.service_account_keypair(),
        ) == first
    assert {path.name: path.read_bytes() for path in pki_dir.iterdir()} == files


def test_missing_ca_without_create(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for directory in (empty, tmp_path / "absent"):
        with pytest.raises(PKIMissing, match=re.escape(str(directory))) as raised:
            ClusterPKI.open(directory, create=False)
        assert "\n" not in str(raised.value)
    assert list(empty.iterdir()) == []
    assert not (tmp_path / "absent").exists()


def test_loose_directory_is_refused(pki_dir):
    pki_dir.mkdir(parents=True, mode=0o755)
    pki_dir.chmod(0o755)
    with pytest.raises(PKIError, match="0755"):
        ClusterPKI.open(pki_dir, create=True)
    assert list(pki_dir.iterdir()) == []

    pki_dir.chmod(0o700)
    ClusterPKI.open(pki_dir, create=True)
    pki_dir.chmod(0o750)
    with pytest.raises(PKIError, match="refusing"):
        ClusterPKI.open(pki_dir, create=False)


def test_ca_key_must_match_ca_cert(cluster, pki_dir, tmp_path):
    other = ClusterPKI.open(tmp_path / "other", create=True)
    (pki_dir / "ca.key").write_bytes(other.ca_key_path.read_bytes())
    with pytest.raises(PKIError, match="ca.key"):
        ClusterPKI.open(pki_dir, create=False)


def test_an_unsound_ca_key_signs_nothing(cluster, pki_dir):
    """The CA key's consistency is checked before it first signs (not when the PKI opens: a
    re-run signs nothing): a key whose private half does not fit its public half is refused."""
    numbers = key_of((pki_dir / "ca.key").read_bytes()).private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p,
        numbers.q,
        numbers.d + 2,
        numbers.dmp1,
        numbers.dmq1,
        numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    (pki_dir / "ca.key").write_bytes(
        broken.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    reopened = ClusterPKI.open(pki_dir, create=False)
    with pytest.raises(PKIError, match="ca.key is no sound RSA key"):
        reopened.client_cert("admin", "admin")
    assert not (pki_dir / "admin.crt").exists()


def test_ca_certificate(cluster):
    ca = load(cluster.ca_cert_pem)
    assert cluster.ca_cert_path.read_bytes() == cluster.ca_cert_pem
    assert names(ca, NameOID.COMMON_NAME) == ["lab-ca"]
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)

    constraints = ext(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ext(ca, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign and usage.value.digital_signature
    assert not usage.value.key_encipherment
    assert ext(ca, x509.SubjectKeyIdentifier).value.digest

    key = key_of(cluster.ca_key_path.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert public_der(key.public_key()) == public_der(ca.public_key())
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime >= timedelta(days=3650)


def test_server_certificate(cluster):
    cert_pem, key_pem = cluster.server_cert("apiserver", "kubernetes", API_DNS, API_IPS)
    cert, ca = load(cert_pem), load(cluster.ca_cert_pem)

    cert.verify_directly_issued_by(ca)
    assert names(cert, NameOID.COMMON_NAME) == ["kubernetes"]
    assert names(cert, NameOID.ORGANIZATION_NAME) == []
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == API_DNS
    assert san.get_values_for_type(x509.IPAddress) == [ip_address(ip) for ip in API_IPS]
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    key = key_of(key_pem)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert public_der(key.public_key()) == public_der(cert.public_key())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime >= pki.LEAF_VALIDITY


def test_server_certificate_with_client_auth(cluster):
    cert_pem, _ = cluster.server_cert(
        "etcd", "etcd", ["localhost"], ["127.0.0.1"], client_auth=True
    )
    assert set(ext(load(cert_pem), x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }


def test_server_certificate_needs_a_name(cluster):
    with pytest.raises(ValueError, match="DNS name or IP"):
        cluster.server_cert("apiserver", "kubernetes", [], [])


@pytest.mark.parametrize(
    ("name", "common_name", "organizations"),
    [
        ("kubelet-kubeminion1", "system:node:kubeminion1", ["system:nodes"]),
        ("kube-proxy", "system:kube-proxy", ["system:node-proxier"]),
        ("kube-controller-manager", "system:kube-controller-manager", []),
        ("admin", "admin", ["system:masters"]),
    ],
)
def test_client_certificate(cluster, name, common_name, organizations):
    cert_pem, key_pem = cluster.client_cert(name, common_name, organizations)
    cert = load(cert_pem)

    cert.verify_directly_issued_by(load(cluster.ca_cert_pem))
    assert names(cert, NameOID.COMMON_NAME) == [common_name]
    assert names(cert, NameOID.ORGANIZATION_NAME) == organizations
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ext(cert, x509.KeyUsage).value.digital_signature
    assert not ext(cert, x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.SubjectAlternativeName)
    assert public_der(key_of(key_pem).public_key()) == public_der(cert.public_key())


def test_changed_sans_reissue_with_same_key_and_ca(cluster):
    cert_pem, key_pem = cluster.server_cert("apiserver", "kubernetes", API_DNS, API_IPS)

    shuffled = cluster.server_cert("apiserver", "kubernetes", API_DNS[::-1], API_IPS[::-1])
    assert shuffled == (cert_pem, key_pem)

    new_pem, new_key_pem = cluster.server_cert(
        "apiserver", "kubernetes", API_DNS, [*API_IPS, "192.168.122.140"]
    )
    assert new_key_pem == key_pem
    assert new_pem != cert_pem
    new = load(new_pem)
    new.verify_directly_issued_by(load(cluster.ca_cert_pem))
    assert public_der(new.public_key()) == public_der(load(cert_pem).public_key())
    assert ip_address("192.168.122.140") in ext(
        new, x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.IPAddress)
    assert cluster.server_cert(
        "apiserver", "kubernetes", API_DNS, [*API_IPS, "192.168.122.140"]
    ) == (
        new_pem,
        key_pem,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"common_name": "other"},
        {"dns_names": ["kubernetes"]},
        {"client_auth": True},
    ],
)
def test_any_changed_request_reissues(cluster, change):
    request = {"common_name": "kubernetes", "dns_names": API_DNS, "ip_addresses": API_IPS}
    cert_pem, key_pem = cluster.server_cert("apiserver", **request)
    new_pem, new_key_pem = cluster.server_cert("apiserver", **{**request, **change})
    assert new_key_pem == key_pem and new_pem != cert_pem


def test_changed_organizations_reissue(cluster):
    cert_pem, key_pem = cluster.client_cert("admin", "admin", ["system:masters"])
    new_pem, new_key_pem = cluster.client_cert("admin", "admin", ["kubelab:admins"])
    assert new_key_pem == key_pem and new_pem != cert_pem
    assert names(load(new_pem), NameOID.ORGANIZATION_NAME) == ["kubelab:admins"]


def test_key_without_certificate_is_kept(cluster, pki_dir):
    _, key_pem = cluster.client_cert("admin", "admin")
    (pki_dir / "admin.crt").unlink()
    cert_pem, again = cluster.client_cert("admin", "admin")
    assert again == key_pem
    assert public_der(load(cert_pem).public_key()) == public_der(key_of(key_pem).public_key())


def test_later_leaves_are_signed_by_the_same_ca(pki_dir):
    first = ClusterPKI.open(pki_dir, create=True)
    ca_pem = first.ca_cert_pem
    ca_key = first.ca_key_path.read_bytes()
    node1, _ = first.client_cert("kubelet-kubeminion1", "system:node:kubeminion1", ["system:nodes"])

    later = ClusterPKI.open(pki_dir, create=True)
    node3, _ = later.client_cert("kubelet-kubeminion3", "system:node:kubeminion3", ["system:nodes"])

    assert later.ca_cert_pem == ca_pem
    assert later.ca_key_path.read_bytes() == ca_key
    ca = load(ca_pem)
    load(node1).verify_directly_issued_by(ca)
    load(node3).verify_directly_issued_by(ca)


def test_invalid_names_are_refused(cluster):
    for name in ("ca", "service-account", "../escape", "sub/dir", ".hidden", ""):
        with pytest.raises(ValueError, match="certificate name"):
            cluster.client_cert(name, "admin")


def test_service_account_keypair(cluster, pki_dir):
    private_pem, public_pem = cluster.service_account_keypair()
    key = key_of(private_pem)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    stored_public = serialization.load_pem_public_key(
        (pki_dir / "service-account.pub").read_bytes()
    )
    assert public_der(key.public_key()) == public_der(stored_public)
    assert (pki_dir / "service-account.key").read_bytes() == private_pem
    assert b"BEGIN PUBLIC KEY" in public_pem
    assert cluster.service_account_keypair() == (private_pem, public_pem)


def kubeconfig_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.strip().removeprefix("- ").partition(": ")
        if value:
            fields.setdefault(key, json.loads(value) if value.startswith('"') else value)
    return fields


def test_kubeconfig(cluster):
    cert_pem, key_pem = cluster.client_cert("admin", "admin", ["system:masters"])
    text = cluster.kubeconfig("lab", "https://192.168.122.130:6443", "admin", cert_pem, key_pem)

    assert text == cluster.kubeconfig(
        "lab", "https://192.168.122.130:6443", "admin", cert_pem, key_pem
    )
    assert text.endswith("\n") and "\t" not in text
    assert text.splitlines()[:2] == ["apiVersion: v1", "kind: Config"]
    fields = kubeconfig_fields(text)
    assert fields["server"] == "https://192.168.122.130:6443"
    assert fields["current-context"] == "admin@lab"
    assert fields["cluster"] == "lab" and fields["user"] == "admin"
    assert base64.b64decode(fields["certificate-authority-data"]) == cluster.ca_cert_pem
    assert base64.b64decode(fields["client-certificate-data"]) == cert_pem
    assert base64.b64decode(fields["client-key-data"]) == key_pem


def test_kubeconfig_needs_https(cluster):
    cert_pem, key_pem = cluster.client_cert("admin", "admin")
    with pytest.raises(ValueError, match="https"):
        cluster.kubeconfig("lab", "http://kubemaster:8080", "admin", cert_pem, key_pem)


def test_repr_shows_no_material(cluster, pki_dir):
    assert repr(cluster) == f"ClusterPKI({str(pki_dir)!r})"
