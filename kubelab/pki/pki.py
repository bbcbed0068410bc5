"""The cluster's PKI for the modern profile, kept on the controller (the machine running pyinfra).

Generated once into a private directory and reused on every later run: it is the cluster's
identity. A key, once written, is never replaced; a certificate is re-issued (same key, same CA)
only when what is asked of it changes, so a repeated request returns byte-identical PEM from disk.
The directory and its files: ``pki_files``; keys and certificates' parts: ``pki_x509``.

Key material is never printed, logged, or put into an exception message.
"""

from __future__ import annotations

import os
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
from cryptography.x509.oid import ExtendedKeyUsageOID

from .kubeconfig_text import kubeconfig_text
from .pki_files import (
    CA,
    ETCD_CA,
    FILE_NAME,
    MANIFEST,
    SA_KEY,
    SA_PUB,
    PKIError,
    PKIMissing,
    adopt,
    make_private_dir,
    require_private_dir,
    write_private,
)
from .pki_x509 import (
    extension,
    key_usage,
    load_key,
    load_or_create_key,
    public_der,
    sans,
    x509_name,
)

CA_VALIDITY = timedelta(days=10 * 365)
LEAF_VALIDITY = timedelta(days=5 * 365)
_ISSUE_LOCK = threading.RLock()
BACKDATE = timedelta(hours=1)  # tolerate clocks on the hosts running behind the controller's
# The leaf certificates that name the master they were issued for (``issued_for``).
MASTER_CERTS = ("apiserver.crt", "etcd-server.crt")
RESERVED_NAMES = frozenset({CA, ETCD_CA, "service-account"})

IPAddress = IPv4Address | IPv6Address


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
            make_private_dir(directory)
        require_private_dir(directory)
        pki = cls(directory, ca)
        with _locked(directory):
            if create and not pki.ca_cert_path.exists():
                if not (directory / MANIFEST).exists():
                    write_private(directory / MANIFEST, b"")
                pki._create_ca(cluster_name)
            pki._load_ca()
            adopt(directory)
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
                names |= {*sans(cert, x509.DNSName), *map(str, sans(cert, x509.IPAddress))}
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
        return self._leaf(name, _Request(x509_name(common_name), dns, ips, tuple(usages)))

    def client_cert(
        self, name: str, common_name: str, organizations: Iterable[str] = ()
    ) -> tuple[bytes, bytes]:
        """Client certificate and key ``<name>.crt``/``<name>.key`` as (cert_pem, key_pem).

        Under RBAC the common name is the user and each organization a group.
        """
        subject = x509_name(common_name, _unique(organizations))
        return self._leaf(name, _Request(subject, (), (), (ExtendedKeyUsageOID.CLIENT_AUTH,)))

    def service_account_keypair(self) -> tuple[bytes, bytes]:
        """The service-account signing key pair as (private_pem, public_pem)."""
        key_path, pub_path = self.directory / SA_KEY, self.directory / SA_PUB
        with _locked(self.directory):
            key = load_or_create_key(key_path, validate=False)
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
        return kubeconfig_text(cluster_name, server, user, self.ca_cert_pem, cert_pem, key_pem)

    def _create_ca(self, cluster_name: str) -> None:
        key = load_or_create_key(self.ca_key_path)
        name = x509_name(f"{cluster_name}-{self.ca}")
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
                key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
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
        self._ca_key = load_key(self.ca_key_path, validate=False)
        if public_der(self._ca_key.public_key()) != public_der(self._ca_cert.public_key()):
            raise PKIError(f"{self.ca_key_path} is not the key of {self.ca_cert_path}")

    def _signing_key(self) -> rsa.RSAPrivateKey:
        """The CA's key, checked (RSA consistency) before its first signature."""
        if not self._ca_key_checked:
            try:
                self._ca_key = load_key(self.ca_key_path)
            except ValueError as error:
                raise PKIError(f"{self.ca_key_path} is no sound RSA key: {error}") from None
            self._ca_key_checked = True
        return self._ca_key

    def _leaf(self, name: str, request: _Request) -> tuple[bytes, bytes]:
        if not FILE_NAME.fullmatch(name) or name in RESERVED_NAMES:
            raise ValueError(f"invalid certificate name {name!r} (a plain file stem, not a CA's)")
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        with _locked(self.directory):
            key = load_or_create_key(key_path, validate=False)
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
            public_der(cert.public_key()) == public_der(key.public_key())
            and cert.subject == request.subject
            and set(sans(cert, x509.DNSName)) == set(request.dns_names)
            and set(sans(cert, x509.IPAddress)) == set(request.ip_addresses)
            and set(extension(cert, x509.ExtendedKeyUsage) or ()) == set(request.usages)
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
            .add_extension(key_usage(digital_signature=True, key_encipherment=True), critical=True)
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
        ski = extension(self._ca_cert, x509.SubjectKeyIdentifier)
        if ski is None:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One issuer at a time within this process (pyinfra prepares hosts concurrently)."""
    with _ISSUE_LOCK:
        yield


def _unique(items: Iterable) -> tuple:
    return tuple(dict.fromkeys(items))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
