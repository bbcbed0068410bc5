"""The local load balancer over every master's apiserver, on every cluster host (masters too)
when the cluster has several masters and no ``api_endpoint``: the host's kubelet and kube-proxy
reach the API at ``https://127.0.0.1:<api_balancer_port>`` (pki/api_endpoints.py).

Debian's haproxy package, run by kubelab's own unit ``kube-api-balancer.service`` with its own
config (the package's ``haproxy.service`` and ``/etc/haproxy/haproxy.cfg`` are left alone). TCP
mode, one server per apiserver, each actively checked on its ``/readyz`` over TLS, verified
against the cluster CA: a dead or unready apiserver gets no client (nginx's open-source stream
module checks passively only, so failing clients would find it).
"""

from pyinfra.api import deploy

from ..engine import packages
from ..engine.common import place, service
from ..pki import api_endpoints
from ..pki.certificates import PKI, cluster_pki, install, private_directory
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from . import catalog

SERVICE = catalog.named("kube-api-balancer").service
CONFIG = catalog.named("kube-api-balancer").config[0]
UNIT = f"/etc/systemd/system/{SERVICE}.service"
PACKAGE = "haproxy"
# Its runtime API (root only), where the specs read each apiserver's state:
# ``echo "show servers state apiservers" | socat stdio /run/kube-api-balancer.sock``.
STATS_SOCKET = f"/run/{SERVICE}.sock"
BACKEND = "apiservers"


def apiservers() -> list[tuple[str, str]]:
    """(server name, address:port) of every master's apiserver, as the config names them."""
    port = setting("apiserver_port", topology.master())
    return [(topology.short_name(m), f"{topology.address(m)}:{port}") for m in topology.masters()]


@deploy("Local API load balancer", data_defaults=DEFAULTS)
def deploy_api_balancer():
    """haproxy on 127.0.0.1:api_balancer_port, when the cluster has one (``balanced``)."""
    if not api_endpoints.balanced():
        return
    packages.install([PACKAGE])
    private_directory()
    ca = install({f"{PKI}/ca.crt": cluster_pki().ca_cert_pem})[f"{PKI}/ca.crt"]
    config = place(
        CONFIG,
        cluster_name=setting("cluster_name"),
        balancer_port=setting("api_balancer_port", topology.master()),
        ca_file=f"{PKI}/ca.crt",
        apiservers=apiservers(),
        stats_socket=STATS_SOCKET,
        backend=BACKEND,
    )
    unit = place(UNIT, cluster_name=setting("cluster_name"), config=CONFIG)
    service(SERVICE, changed=[config, ca], units=[unit])
