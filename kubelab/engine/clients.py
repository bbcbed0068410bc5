"""The command lines of the clients kubelab runs on the master, each bounded in time.

kubectl acts with the cluster's admin credentials; etcdctl presents etcd's own serving
certificate (``etcd_tls``). Every deploy, check and fact that runs one takes its command line
from here.
"""

import shlex

from ..pki import etcd_tls
from ..settings import topology
from ..settings.defaults import setting
from ..settings.profiles import profile
from . import bounds

KUBECTL = "/usr/local/bin/kubectl"  # modern; el7's package puts kubectl on the PATH
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.kubeconfig"
REQUEST_TIMEOUT = 20  # seconds, each kubectl request


def kubectl() -> str:
    """kubectl on the master, with the cluster's admin credentials; no request waits longer
    than REQUEST_TIMEOUT (kubectl 1.5 has the flag too: client-go 1.5, kubernetes#33958)."""
    bound = f"--request-timeout={REQUEST_TIMEOUT}s"
    if profile() == "el7":
        return f"kubectl -s http://127.0.0.1:{setting('apiserver_insecure_port')} {bound}"
    return f"{KUBECTL} --kubeconfig {ADMIN_KUBECONFIG} {bound}"


def etcdctl_options(api: int = 3) -> str:
    """etcdctl's bounds and, with ``secure``, its TLS arguments (v2 and v3 name them
    differently)."""
    return f"{bounds.etcdctl_options(api)} {etcd_tls.etcdctl_args(api)}".strip()


def etcdctl_line(api: int, endpoint: str, options: str = "") -> str:
    """etcdctl speaking etcd's ``api`` (2 or 3) to ``endpoint`` with ``options``: how every
    etcdctl command starts (the facts pass the endpoint and options they were given)."""
    return f"ETCDCTL_API={api} etcdctl --endpoints={shlex.quote(endpoint)} {options}".strip()


def etcdctl(api: int = 3) -> str:
    """etcdctl on the master, speaking to the cluster's etcd: every member (it takes the
    first that answers)."""
    return etcdctl_line(api, topology.etcd_url(), etcdctl_options(api))


def etcdctl_to_member(api: int = 3) -> str:
    """etcdctl on a master, speaking to its own member only: what one member must answer
    (``snapshot save`` takes exactly one endpoint)."""
    return etcdctl_line(api, topology.etcd_member_url(), etcdctl_options(api))
