"""The admin kubeconfig for the user, beside the cluster's PKI on the machine running pyinfra.

``<pki_dir>/../admin.kubeconfig`` holds the credentials of /etc/kubernetes/admin.kubeconfig on
the masters, mode 0600, so that ``kubectl --kubeconfig ~/.kubelab/<cluster_name>/admin.kubeconfig
get nodes`` works from there. Its server: ``api_endpoint`` when set; else, with one master, that
master's apiserver; with several, one cluster and one context per master, named after the
master's short name, the first master's current: ``kubectl --context <short name>`` reaches
another master while the first is down. It is rewritten only when its content differs; its
content never shows in any output.
"""

import os
import stat
from pathlib import Path

from pyinfra import logger

from ..settings import topology
from ..settings.defaults import setting
from . import api_endpoints
from .kubeconfig_text import contexts_text
from .pki import ClusterPKI
from .pki_files import write_private

ADMIN = "admin"


def user_kubeconfig(pki: ClusterPKI, client: tuple[bytes, bytes]) -> bytes:
    """The controller's admin kubeconfig with the admin's client certificate and key."""
    cert, key = client
    endpoint = api_endpoints.api_endpoint()
    masters = topology.masters()
    if endpoint or len(masters) == 1:
        server = f"https://{endpoint}" if endpoint else api_endpoints.apiserver_url()
        return pki.kubeconfig(setting("cluster_name"), server, ADMIN, cert, key).encode()
    servers = {topology.short_name(m): api_endpoints.apiserver_url(m) for m in masters}
    return contexts_text(servers, ADMIN, pki.ca_cert_pem, cert, key).encode()


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
