"""The service-account key: the controller-manager signs tokens with it, the apiserver checks them.

It is the cluster's identity for every token ever issued, so it is generated once and never
replaced: a re-run keeps the tokens valid.
"""

import shlex

from pyinfra.api import deploy
from pyinfra.operations import files, server

from .. import engine
from ..settings.defaults import DEFAULTS, setting

KEY_OWNER = "kube"  # kube-apiserver and kube-controller-manager run as this user


def generate_key_command(path: str) -> str:
    """openssl writing a new RSA key, unreadable to others from the first byte, never over one."""
    key, new = shlex.quote(path), shlex.quote(f"{path}.new")
    return (
        f"test -e {key} || (umask 077 && openssl genrsa -out {new} 2048 2>/dev/null "
        f"&& mv {new} {key})"
    )


@deploy("Service-account key", data_defaults=DEFAULTS)
def deploy_service_account_key():
    """Returns the operations that changed the key (its creation)."""
    path = setting("service_account_key_file")
    engine.manage(path, digest=False)
    generate = server.shell(
        name=f"Generate the service-account key {path} (only once)",
        commands=[generate_key_command(path)],
        _if=lambda: not engine.exists(path),
    )
    files.file(
        name="Service-account key readable by kube only",
        path=path,
        user=KEY_OWNER,
        group=KEY_OWNER,
        mode="600",
        _if=lambda: engine.attributes_differ(path, KEY_OWNER, KEY_OWNER, mode=600),
    )
    return [generate]
