"""The admin kubeconfig for the user, beside the cluster's PKI on the machine running pyinfra.

``<pki_dir>/../admin.kubeconfig`` holds the credentials of /etc/kubernetes/admin.kubeconfig on
the master (server: the master's API URL), mode 0600, so that ``kubectl --kubeconfig
~/.kubelab/<cluster_name>/admin.kubeconfig get nodes`` works from there. It is rewritten only
when its content differs; its content never shows in any output.
"""

import os
import stat
from pathlib import Path

from pyinfra import logger

from .pki_files import write_private


def user_kubeconfig_path(pki_directory: Path) -> Path:
    return pki_directory.parent / "admin.kubeconfig"


def write_user_kubeconfig(pki_directory: Path, content: bytes) -> bool:
    """The admin kubeconfig in place, mode 0600; returns whether it was (re)written."""
    path = user_kubeconfig_path(pki_directory)
    try:
        same = path.read_bytes() == content
    except FileNotFoundError:
        same = False
    if same:
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)
        return False
    write_private(path, content)
    logger.info(f"kubelab: the admin kubeconfig for kubectl is {path}")
    return True
