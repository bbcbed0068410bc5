"""The PKI's directory on the controller, and the files kubelab keeps in it.

The directory is mode 0700 and every file in it 0600, written through a temporary file and
``os.replace`` so that no reader sees half a file. Files in the directory::

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
gives its files (``adopt``).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

CA = "ca"
ETCD_CA = "etcd-ca"
CA_CERT = f"{CA}.crt"
CA_KEY = f"{CA}.key"
SA_KEY = "service-account.key"
SA_PUB = "service-account.pub"
ENCRYPTION_KEYS = "secrets-encryption.keys"  # encryption.py's, kept beside the CA
MANIFEST = "kubelab-files"
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class PKIError(Exception):
    """The PKI directory cannot be used as it is."""


class PKIMissing(PKIError):
    """The directory holds no cluster CA and creating one was not allowed."""


def make_private_dir(directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return
    os.chmod(directory, 0o700)


def require_private_dir(directory: Path) -> None:
    mode = directory.stat().st_mode
    if not stat.S_ISDIR(mode):
        raise PKIError(f"PKI path {directory} is not a directory")
    if mode & 0o077:
        raise PKIError(
            f"refusing PKI directory {directory}: mode {stat.S_IMODE(mode):04o} lets group/others"
            " in; make it 0700 (chmod 700) after checking who could read its keys"
        )


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


def adopt(directory: Path) -> None:
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
        if cert_path.name in names or not any(issued_by(cert_path, ca) for ca in cas):
            continue
        key = cert_path.with_suffix(".key")
        names += [cert_path.name, *([key.name] if key.is_file() else [])]
    _replace(directory / MANIFEST, "".join(f"{name}\n" for name in sorted(names)).encode())


def issued_by(cert_path: Path, ca: x509.Certificate) -> bool:
    try:
        x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def delete_files(directory: Path) -> list[str]:
    """Delete the files kubelab wrote in ``directory`` (``kubelab-files``), then the directory
    if nothing else is in it; returns the names of what stays (sorted)."""
    if (directory / CA_CERT).is_file():
        adopt(directory)
    kept_inside = []
    for inner in sorted(directory.iterdir()):  # a CA of its own kept inside (the front proxy's)
        if inner.is_dir() and not inner.is_symlink() and (inner / MANIFEST).is_file():
            kept_inside += [f"{inner.name}/{name}" for name in delete_files(inner)]
    manifest = directory / MANIFEST
    names = manifest.read_text().split() if manifest.is_file() else []
    for name in names:
        if FILE_NAME.fullmatch(name):  # a plain file name: nothing outside the directory
            (directory / name).unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)
    left = [path.name for path in directory.iterdir()]
    if not left:
        directory.rmdir()
    inner_dirs = {name.split("/", 1)[0] for name in kept_inside}
    return sorted([name for name in left if name not in inner_dirs] + kept_inside)
