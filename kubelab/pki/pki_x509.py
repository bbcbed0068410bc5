"""The RSA keys and the X.509 parts the cluster's PKI makes its certificates of (see ``pki``).

Keys are RSA 2048: every Kubernetes component, etcd, curl and older TLS stacks accept it, and a
service-account key must be RSA or ECDSA anyway; ECDSA P-256 would be smaller, not more useful
for a lab. Everything is PEM.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .pki_files import PKIError, write_private

KEY_SIZE = 2048


def load_or_create_key(path: Path, validate: bool = True) -> rsa.RSAPrivateKey:
    """The key stored at ``path``, generated and stored first if there is none."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    return load_key(path, validate)


def load_key(path: Path, validate: bool = True) -> rsa.RSAPrivateKey:
    """The RSA key at ``path``. Only the CA's key signs here, checked before it first does; of
    every other key only the public half is used (compared with its certificate's), so the RSA
    consistency check, some 30 ms a key, is skipped for them (``validate=False``)."""
    key = serialization.load_pem_private_key(
        path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=not validate
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PKIError(f"{path} is not an RSA private key")
    return key


def x509_name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    if not common_name:
        raise ValueError("a certificate needs a non-empty common name")
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def key_usage(
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


def extension(cert: x509.Certificate, kind: type) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def sans(cert: x509.Certificate, kind: type) -> list:
    san = extension(cert, x509.SubjectAlternativeName)
    return san.get_values_for_type(kind) if san is not None else []


def public_der(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
