"""el7 with the ``secure`` setting: the API over TLS only, outside the master.

The apiserver's plain HTTP port then listens on localhost, for the controller-manager and the
scheduler beside it; kubelets and kube-proxies use its TLS port with client certificates, and
the apiserver presents its own certificate to etcd. (The modern profile always works this way.)
"""

from ..settings import topology
from ..settings.defaults import setting
from . import etcd_tls
from .certificates import (
    MINION_KUBECONFIGS,
    apiserver_names,
    apiserver_url,
    cluster_pki,
    install,
    minion_kubeconfigs,
)

TLS = etcd_tls.EL7_KUBE_TLS
APISERVER_FILES = {
    "ca": f"{TLS}/ca.crt",
    "cert": f"{TLS}/apiserver.crt",
    "key": f"{TLS}/apiserver.key",
}


def secure() -> bool:
    return etcd_tls.enabled(topology.master())


def api_url(target=None) -> str:
    """Where a host's kube services reach the apiserver."""
    plain = f"http://{{}}:{setting('apiserver_insecure_port')}"
    if not secure():
        return plain.format(topology.master_address())
    if topology.is_master(target):
        return plain.format("127.0.0.1")
    return apiserver_url()


def apiserver_arguments() -> str:
    """The apiserver's TLS flags (serving, client CA, its etcd client certificate)."""
    if not secure():
        return ""
    etcd = etcd_tls.client_files("apiserver")
    return (
        f" --tls-cert-file={APISERVER_FILES['cert']}"
        f" --tls-private-key-file={APISERVER_FILES['key']}"
        f" --client-ca-file={APISERVER_FILES['ca']}"
        f" --etcd-cafile={etcd['ca']} --etcd-certfile={etcd['cert']} --etcd-keyfile={etcd['key']}"
    )


def deploy_apiserver_certificates() -> list:
    """The apiserver's serving certificate and its etcd client certificate (user kube)."""
    pki = cluster_pki()
    dns, ips = apiserver_names()
    cert, key = pki.server_cert("apiserver", "kubernetes", dns, ips)
    installed = install(
        {
            APISERVER_FILES["ca"]: pki.ca_cert_pem,
            APISERVER_FILES["cert"]: cert,
            APISERVER_FILES["key"]: key,
        },
        owner="kube",
    )
    return [*installed.values(), *etcd_tls.deploy_etcd_client_certificate("apiserver", "kube")]


def deploy_minion_kubeconfigs() -> dict[str, list]:
    """The kubelet's and kube-proxy's kubeconfigs with their client certificates."""
    kubeconfigs = minion_kubeconfigs(cluster_pki())
    installed = install({MINION_KUBECONFIGS[name]: text for name, text in kubeconfigs.items()})
    return {name: [installed[path]] for name, path in MINION_KUBECONFIGS.items()}
