"""Secrets encrypted at rest (modern profile, ``secrets_encryption``): the apiserver's
EncryptionConfiguration, its keys kept in the local PKI directory.

``<pki_dir>/secrets-encryption.keys`` (0600, backed up with the CA) holds one key a line,
``name:base64 of 32 random bytes``; it is made once, with one key, and never rewritten by
kubelab. The configuration on the master (0600) lists them as aescbc keys in the file's order
(the first encrypts, every one decrypts), then ``identity`` to read what was stored before;
with ``secrets_encryption`` off on a cluster that has keys, ``identity`` comes first (Secrets
are written in plaintext) and the keys stay to read those still encrypted.

Whenever the configuration changes, the apiserver restarts with it and then every Secret is
rewritten (``kubectl get secrets -A -o json | kubectl replace -f -``), so each is stored as the
first provider says: turning encryption on for a running cluster, and each step of a key
rotation (see docs/security.md). A marker beside the configuration holds the sha256 of the one whose
rewrite is done: a run that stopped before it rewrites next time.

A lost key file while the master has a configuration stops the run: a new key could not read
the Secrets stored with the old one.
"""

import base64
import re
import secrets
from pathlib import Path

from pyinfra.facts.files import File

from .. import engine
from ..engine.clients import kubectl
from ..settings import topology
from ..settings.defaults import setting, setting_error
from .certificates import pki_directory
from .pki_files import ENCRYPTION_KEYS, write_private
from .secret_files import secret

KEYS_FILE = ENCRYPTION_KEYS
CONFIG = "/etc/kubernetes/encryption-config.yaml"
REWRITTEN = "/etc/kubernetes/encryption-config.rewritten"
KEY_LINE = re.compile(r"([a-z0-9][a-z0-9-]{0,62}):(\S+)")


def keys_path() -> Path:
    return pki_directory() / KEYS_FILE


def new_key_line(name: str) -> str:
    """A key line with a fresh random 32-byte key (what a rotation adds)."""
    return f"{name}:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"


def parse_keys(text: str, path: Path) -> list[tuple[str, str]]:
    """(name, base64 secret) of each key line; one line naming the line of a bad one (never
    its key)."""
    keys, names = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = KEY_LINE.fullmatch(line.strip())
        problem = None
        if not match:
            problem = "is not 'name:base64 key' (a name of lower case letters, digits and -)"
        else:
            try:
                if len(base64.b64decode(match[2], validate=True)) != 32:
                    problem = "holds a key that is not 32 bytes (aescbc's AES-256)"
            except ValueError:
                problem = "holds a key that is not base64"
            if match[1] in names:
                problem = f"repeats the key name {match[1]!r}"
        if problem:
            raise setting_error("pki_dir", topology.master(), f"{path} line {number} {problem}")
        names.add(match[1])
        keys.append((match[1], match[2]))
    if not keys:
        raise setting_error("pki_dir", topology.master(), f"{path} holds no key")
    return keys


def _local_keys() -> list[tuple[str, str]] | None:
    path = keys_path()
    if not path.exists():
        master = topology.master()
        if engine.fact(File, master, path=CONFIG):
            raise setting_error(
                "pki_dir",
                master,
                f"{path} does not exist, but this master encrypts Secrets with its keys "
                f"({CONFIG}): restore it from your backup; kubelab will not make a new key "
                "that cannot read them",
            )
        if not setting("secrets_encryption", master):
            return None
        write_private(path, new_key_line("key1").encode())
    return parse_keys(path.read_text(), path)


def local_keys() -> list[tuple[str, str]] | None:
    """The keys, made once (None: encryption off and never on)."""
    return engine.per_run(("encryption keys", str(keys_path())), _local_keys)


def config_text(keys: list[tuple[str, str]], encrypt: bool) -> str:
    aescbc = ["    - aescbc:", "        keys:"]
    for name, key in keys:
        aescbc += [f"          - name: {name}", f"            secret: {key}"]
    identity = ["    - identity: {}"]
    providers = aescbc + identity if encrypt else identity + aescbc
    lines = [
        "# Secrets at rest in the kubelab cluster. Managed by pyinfra (kubelab).",
        "apiVersion: apiserver.config.k8s.io/v1",
        "kind: EncryptionConfiguration",
        "resources:",
        "  - resources:",
        "      - secrets",
        "    providers:",
        *["  " + line for line in providers],
    ]
    return "\n".join(lines) + "\n"


def deploy_encryption_config() -> list:
    """The configuration on the master, 0600; returns its step (none when off and never on)."""
    keys = local_keys()
    if keys is None:
        return []
    text = config_text(keys, setting("secrets_encryption"))
    return [secret(f"Install {CONFIG}", CONFIG, text.encode())]


def config_digest(text: bytes) -> str:
    return engine.sha256(text)


def rewrite_command(kubectl: str, retried, digest: str) -> str:
    """Shell: every Secret read and written back (tried until the apiserver takes them all),
    then the marker."""
    # kubectl replace refuses an empty list ("no objects passed to replace"): a new cluster
    # may hold no Secret yet.
    command = (
        f"secrets=$({kubectl} get secrets -A -o json) && if printf '%s' \"$secrets\" | "
        f'grep -q \'"kind": "Secret"\'; then printf \'%s\' "$secrets" | {kubectl} replace -f -; fi'
    )
    what = "rewriting the Secrets with the new encryption configuration"
    return f"{retried(command, what)} && printf '%s\\n' {digest} > {REWRITTEN}"


def secrets_rewritten(installed: list):
    """After the apiserver restarted with a new configuration: every Secret rewritten."""
    if not installed:
        return None
    from ..components.addons import retried  # the add-ons' bounded kubectl tries

    text = config_text(local_keys(), setting("secrets_encryption")).encode()
    marker = f"{config_digest(text)}\n"
    engine.manage(REWRITTEN)

    def commands():
        yield rewrite_command(kubectl(), retried, config_digest(text))

    return engine.add_step(
        "Rewrite every Secret as the encryption configuration says",
        REWRITTEN,
        lambda: engine.differs(REWRITTEN, marker.encode()),
        commands,
    )
