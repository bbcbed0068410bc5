"""The cluster's PKI for the modern profile, kept on the controller (the machine running pyinfra).

Generated once into a private directory and reused on every later run: it is the cluster's
identity. A key, once written, is never replaced; a certificate is re-issued (same key, same CA)
only when what is asked of it changes, so a repeated request returns byte-identical PEM from disk.

Keys are RSA 2048: every Kubernetes component, etcd, curl and older TLS stacks accept it, and a
service-account key must be RSA or ECDSA anyway; ECDSA P-256 would be smaller, not more useful
for a lab. Everything is PEM. The directory is mode 0700 and every file in it 0600, written
through a temporary file and ``os.replace`` so that no reader sees half a file.

Files in the directory::

    ca.crt, ca.key                          the cluster CA ("<cluster_name>-ca")
    etcd-ca.crt, etcd-ca.key                etcd's own CA ("<cluster_name>-etcd-ca"): etcd trusts
                                            only it, so no certificate of the cluster CA (a
                                            kubelet's, an approved CSR's) opens etcd
    <name>.crt, <name>.key                  leaf certificates (server_cert, client_cert)
    service-account.key, service-account.pub  the service-account token signing key pair
    kubelab-files                           the name of every file kubelab wrote here

Every file written here goes through ``write_private``, which adds its name to
``kubelab-files``: ``delete_files`` (reset_pki) deletes exactly those, and what anyone else put in
the directory stays. A directory made before that list existed gets it from the names kubelab
gives its files (``_adopt``).

Key material is never printed, logged, or put into an exception message.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_SIZE = 2048
CA_VALIDITY = timedelta(days=10 * 365)
LEAF_VALIDITY = timedelta(days=5 * 365)
_ISSUE_LOCK = threading.RLock()
BACKDATE = timedelta(hours=1)  # tolerate clocks on the hosts running behind the controller's

CA = "ca"
ETCD_CA = "etcd-ca"
CA_CERT = f"{CA}.crt"
CA_KEY = f"{CA}.key"
SA_KEY = "service-account.key"
SA_PUB = "service-account.pub"
ENCRYPTION_KEYS = "secrets-encryption.keys"  # encryption.py's, kept beside the CA
MANIFEST = "kubelab-files"
# The leaf certificates that name the master they were issued for (``issued_for``).
MASTER_CERTS = ("apiserver.crt", "etcd-server.crt")
RESERVED_NAMES = frozenset({CA, ETCD_CA, "service-account"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

IPAddress = IPv4Address | IPv6Address


class PKIError(Exception):
    """The PKI directory cannot be used as it is."""


class PKIMissing(PKIError):
    """The directory holds no cluster CA and creating one was not allowed."""


class _Request(NamedTuple):
    subject: x509.Name
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPAddress, ...]
    usages: tuple[x509.ObjectIdentifier, ...]


class ClusterPKI:
    """A CA and the certificates and keys it issued, stored in one private directory.

    ``ca`` names the CA's files (``<ca>.crt``, ``<ca>.key``): the cluster CA, or etcd's own CA
    beside it in the same directory."""

    def __init__(self, directory: Path, ca: str = CA) -> None:
        self.directory = directory
        self.ca = ca
        self._ca_cert: x509.Certificate
        self._ca_key: rsa.RSAPrivateKey
        self._ca_key_checked = False
        self._ca_cert_pem: bytes

    def __repr__(self) -> str:
        ca = "" if self.ca == CA else f", ca={self.ca!r}"
        return f"ClusterPKI({str(self.directory)!r}{ca})"

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        create: bool,
        *,
        cluster_name: str = "kubelab",
        ca: str = CA,
    ) -> ClusterPKI:
        """Open the PKI in ``directory``; with ``create``, make the directory and CA if absent."""
        directory = Path(directory).expanduser()
        if not create and not (directory / f"{ca}.crt").is_file():
            raise PKIMissing(f"no cluster CA in {directory} (expected {ca}.crt and {ca}.key)")
        if create:
            _make_private_dir(directory)
        _require_private_dir(directory)
        pki = cls(directory, ca)
        with _locked(directory):
            if create and not pki.ca_cert_path.exists():
                if not (directory / MANIFEST).exists():
                    write_private(directory / MANIFEST, b"")
                pki._create_ca(cluster_name)
            pki._load_ca()
            _adopt(directory)
        return pki

    @property
    def ca_fingerprint(self) -> str:
        return self._ca_cert.fingerprint(hashes.SHA256()).hex()

    def issued_for(self) -> set[str]:
        """The names and addresses of the master(s) this CA issued serving certificates for
        (``MASTER_CERTS``): empty while it issued none."""
        names: set[str] = set()
        for name in MASTER_CERTS:
            path = self.directory / name
            if path.is_file():
                cert = x509.load_pem_x509_certificate(path.read_bytes())
                names |= {*_sans(cert, x509.DNSName), *map(str, _sans(cert, x509.IPAddress))}
        return names

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / f"{self.ca}.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / f"{self.ca}.key"

    @property
    def ca_cert_pem(self) -> bytes:
        return self._ca_cert_pem

    def server_cert(
        self,
        name: str,
        common_name: str,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[str | IPAddress] = (),
        client_auth: bool = False,
    ) -> tuple[bytes, bytes]:
        """Serving certificate and key ``<name>.crt``/``<name>.key`` as (cert_pem, key_pem)."""
        dns = _unique(dns_names)
        ips = _unique(ip_address(ip) for ip in ip_addresses)
        if not dns and not ips:
            raise ValueError(f"server certificate {name!r} needs at least one DNS name or IP")
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        return self._leaf(name, _Request(_subject(common_name), dns, ips, tuple(usages)))

    def client_cert(
        self, name: str, common_name: str, organizations: Iterable[str] = ()
    ) -> tuple[bytes, bytes]:
        """Client certificate and key ``<name>.crt``/``<name>.key`` as (cert_pem, key_pem).

        Under RBAC the common name is the user and each organization a group.
        """
        subject = _subject(common_name, _unique(organizations))
        return self._leaf(name, _Request(subject, (), (), (ExtendedKeyUsageOID.CLIENT_AUTH,)))

    def service_account_keypair(self) -> tuple[bytes, bytes]:
        """The service-account signing key pair as (private_pem, public_pem)."""
        key_path, pub_path = self.directory / SA_KEY, self.directory / SA_PUB
        with _locked(self.directory):
            key = _load_or_create_key(key_path, validate=False)
            public_pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if not pub_path.exists() or pub_path.read_bytes() != public_pem:
                write_private(pub_path, public_pem)
            return key_path.read_bytes(), pub_path.read_bytes()

    def kubeconfig(
        self, cluster_name: str, server: str, user: str, cert_pem: bytes, key_pem: bytes
    ) -> str:
        """A kubeconfig for ``user`` on ``server`` (https), trusting this CA; deterministic."""
        if not server.startswith("https://"):
            raise ValueError(f"kubeconfig server {server!r} must be an https:// URL")
        context = f"{user}@{cluster_name}"
        lines = [
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            f"- name: {_quote(cluster_name)}",
            "  cluster:",
            f"    certificate-authority-data: {_b64(self.ca_cert_pem)}",
            f"    server: {_quote(server)}",
            "contexts:",
            f"- name: {_quote(context)}",
            "  context:",
            f"    cluster: {_quote(cluster_name)}",
            f"    user: {_quote(user)}",
            f"current-context: {_quote(context)}",
            "users:",
            f"- name: {_quote(user)}",
            "  user:",
            f"    client-certificate-data: {_b64(cert_pem)}",
            f"    client-key-data: {_b64(key_pem)}",
        ]
        return "\n".join(lines) + "\n"

    def _create_ca(self, cluster_name: str) -> None:
        key = _load_or_create_key(self.ca_key_path)
        name = _subject(f"{cluster_name}-{self.ca}")
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        write_private(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))

    def _load_ca(self) -> None:
        if not self.ca_key_path.exists():
            raise PKIError(
                f"{self.ca_cert_path} has no {self.ca_key_path.name} beside it: the CA cannot sign"
            )
        self._ca_cert_pem = self.ca_cert_path.read_bytes()
        self._ca_cert = x509.load_pem_x509_certificate(self._ca_cert_pem)
        # The key's own consistency check waits for its first signature (_signing_key): a run
        # that signs nothing needs only its public half.
        self._ca_key = _load_key(self.ca_key_path, validate=False)
        if _public_der(self._ca_key.public_key()) != _public_der(self._ca_cert.public_key()):
            raise PKIError(f"{self.ca_key_path} is not the key of {self.ca_cert_path}")

    def _signing_key(self) -> rsa.RSAPrivateKey:
        """The CA's key, checked (RSA consistency) before its first signature."""
        if not self._ca_key_checked:
            try:
                self._ca_key = _load_key(self.ca_key_path)
            except ValueError as error:
                raise PKIError(f"{self.ca_key_path} is no sound RSA key: {error}") from None
            self._ca_key_checked = True
        return self._ca_key

    def _leaf(self, name: str, request: _Request) -> tuple[bytes, bytes]:
        if not _NAME.fullmatch(name) or name in RESERVED_NAMES:
            raise ValueError(f"invalid certificate name {name!r} (a plain file stem, not a CA's)")
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        with _locked(self.directory):
            key = _load_or_create_key(key_path, validate=False)
            if not (cert_path.exists() and self._stored_fits(cert_path, key, request)):
                write_private(cert_path, self._issue(request, key.public_key()))
            return cert_path.read_bytes(), key_path.read_bytes()

    def _stored_fits(self, cert_path: Path, key: rsa.RSAPrivateKey, request: _Request) -> bool:
        """Whether the stored certificate is this CA's, for this key, and what is requested."""
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            cert.verify_directly_issued_by(self._ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return (
            _public_der(cert.public_key()) == _public_der(key.public_key())
            and cert.subject == request.subject
            and set(_sans(cert, x509.DNSName)) == set(request.dns_names)
            and set(_sans(cert, x509.IPAddress)) == set(request.ip_addresses)
            and set(_extension(cert, x509.ExtendedKeyUsage) or ()) == set(request.usages)
        )

    def _issue(self, request: _Request, public_key: rsa.RSAPublicKey) -> bytes:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(request.subject)
            .issuer_name(self._ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + LEAF_VALIDITY, self._ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(request.usages)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if request.dns_names or request.ip_addresses:
            names = [x509.DNSName(dns) for dns in request.dns_names]
            names += [x509.IPAddress(ip) for ip in request.ip_addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._signing_key(), hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = _extension(self._ca_cert, x509.SubjectKeyIdentifier)
        if ski is None:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _make_private_dir(directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)


def _require_private_dir(directory: Path) -> None:
    mode = directory.stat().st_mode
    if not stat.S_ISDIR(mode):
        raise PKIError(f"PKI path {directory} is not a directory")
    if mode & 0o077:
        raise PKIError(
            f"refusing PKI directory {directory}: mode {stat.S_IMODE(mode):04o} lets group/others"
            " in; make it 0700 (chmod 700) after checking who could read its keys"
        )


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One issuer at a time within this process (pyinfra prepares hosts concurrently)."""
    with _ISSUE_LOCK:
        yield


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the file is mode 0600 from its creation. In
    a PKI directory (one holding ``kubelab-files``) its name joins that list."""
    _replace(path, data)
    manifest = path.parent / MANIFEST
    if path.name != MANIFEST and manifest.is_file():
        names = manifest.read_text().split()
        if path.name not in names:
            _replace(manifest, "".join(f"{n}\n" for n in sorted({*names, path.name})).encode())


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def ca_fingerprint(directory: Path) -> str | None:
    """The sha256 of the CA certificate in ``directory`` (of its DER, as ``openssl x509
    -fingerprint -sha256`` shows it); None when there is none."""
    try:
        pem = (Path(directory).expanduser() / CA_CERT).read_bytes()
    except FileNotFoundError:
        return None
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()


def _adopt(directory: Path) -> None:
    """``kubelab-files`` for a directory an earlier kubelab made: the CA, the service-account
    key pair, and every certificate this CA issued with its key."""
    if (directory / MANIFEST).exists():
        return
    own = (CA_CERT, CA_KEY, f"{ETCD_CA}.crt", f"{ETCD_CA}.key", SA_KEY, SA_PUB, ENCRYPTION_KEYS)
    names = [n for n in own if (directory / n).is_file()]
    cas = [
        x509.load_pem_x509_certificate((directory / name).read_bytes())
        for name in (CA_CERT, f"{ETCD_CA}.crt")
        if (directory / name).is_file()
    ]
    for cert_path in sorted(directory.glob("*.crt")):
        if cert_path.name in names or not any(_issued_by(cert_path, ca) for ca in cas):
            continue
        key = cert_path.with_suffix(".key")
        names += [cert_path.name, *([key.name] if key.is_file() else [])]
    _replace(directory / MANIFEST, "".join(f"{name}\n" for name in sorted(names)).encode())


def _issued_by(cert_path: Path, ca: x509.Certificate) -> bool:
    try:
        x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def delete_files(directory: Path) -> list[str]:
    """Delete the files kubelab wrote in ``directory`` (``kubelab-files``), then the directory
    if nothing else is in it; returns the names of what stays (sorted)."""
    if (directory / CA_CERT).is_file():
        _adopt(directory)
    kept_inside = []
    for inner in sorted(directory.iterdir()):  # a CA of its own kept inside (the front proxy's)
        if inner.is_dir() and not inner.is_symlink() and (inner / MANIFEST).is_file():
            kept_inside += [f"{inner.name}/{name}" for name in delete_files(inner)]
    manifest = directory / MANIFEST
    names = manifest.read_text().split() if manifest.is_file() else []
    for name in names:
        if _NAME.fullmatch(name):  # a plain file name: nothing outside the directory
            (directory / name).unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)
    left = [path.name for path in directory.iterdir()]
    if not left:
        directory.rmdir()
    inner_dirs = {name.split("/", 1)[0] for name in kept_inside}
    return sorted([name for name in left if name not in inner_dirs] + kept_inside)


def _load_or_create_key(path: Path, validate: bool = True) -> rsa.RSAPrivateKey:
    """The key stored at ``path``, generated and stored first if there is none."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    return _load_key(path, validate)


def _load_key(path: Path, validate: bool = True) -> rsa.RSAPrivateKey:
    """The RSA key at ``path``. Only the CA's key signs here, checked before it first does; of
    every other key only the public half is used (compared with its certificate's), so the RSA
    consistency check, some 30 ms a key, is skipped for them (``validate=False``)."""
    key = serialization.load_pem_private_key(
        path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=not validate
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PKIError(f"{path} is not an RSA private key")
    return key


def _subject(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    if not common_name:
        raise ValueError("a certificate needs a non-empty common name")
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _extension(cert: x509.Certificate, kind: type) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _sans(cert: x509.Certificate, kind: type) -> list:
    san = _extension(cert, x509.SubjectAlternativeName)
    return san.get_values_for_type(kind) if san is not None else []


def _public_der(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _unique(items: Iterable) -> tuple:
    return tuple(dict.fromkeys(items))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _quote(value: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(value)
