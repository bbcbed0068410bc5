"""The ``secure`` setting: etcd serves TLS and answers only clients holding a certificate of
its own CA (the apiserver, every flanneld, kubelab's own etcdctl).

Certificates come from etcd's CA in the PKI on the controller (see ``certificates.etcd_pki``),
for both profiles; the cluster CA, which signs kubelets', kube-proxies' and approved CSRs'
certificates, is not trusted by etcd. kubelab's own etcdctl runs on the master with etcd's
serving certificate (it has clientAuth): that pair and etcd's trusted CA always match the etcd
running there, before and after a run switches them.
"""

from pyinfra import host

from ..settings import topology
from ..settings.defaults import secure_for, setting
from ..settings.profiles import profile
from .certificates import PKI, client_cert, etcd_pki, install, master_cert_name

ETCD_PKI = "/etc/etcd/pki"
FLANNEL_PKI = "/etc/flannel/pki"  # flanneld's client certificate, also used by kubelab's etcdctl
EL7_KUBE_TLS = "/etc/kubernetes/tls"  # el7: read by kube-apiserver, which runs as kube


def enabled(target=None) -> bool:
    """``secure`` as it applies to the cluster of ``target``: unset, per profile."""
    return secure_for(setting("secure", target), profile(target))


def etcd_server_files() -> dict[str, str]:
    return {
        "ca": f"{ETCD_PKI}/ca.crt",
        "cert": f"{ETCD_PKI}/server.crt",
        "key": f"{ETCD_PKI}/server.key",
    }


def client_files(component: str) -> dict[str, str]:
    """Where ``component`` ("flanneld" or "apiserver") keeps its etcd client certificate and
    etcd's CA (the apiserver's beside the cluster CA's ca.crt, hence its own name)."""
    if component == "flanneld":
        directory, ca = FLANNEL_PKI, "ca.crt"
    else:
        directory = EL7_KUBE_TLS if profile() == "el7" else PKI
        ca = "etcd-ca.crt"
    return {
        "ca": f"{directory}/{ca}",
        "cert": f"{directory}/{component}-etcd-client.crt",
        "key": f"{directory}/{component}-etcd-client.key",
    }


def etcdctl_args(api: int) -> str:
    """kubelab's etcdctl's TLS arguments on the master (its v2 and v3 modes name them
    differently); none when off."""
    if not enabled():
        return ""
    files = etcd_server_files()
    if api == 2:
        return f"--ca-file={files['ca']} --cert-file={files['cert']} --key-file={files['key']}"
    return f"--cacert={files['ca']} --cert={files['cert']} --key={files['key']}"


def deploy_etcd_server_certificate(owner: str) -> list:
    """This master's etcd serving certificate, its key readable by ``owner`` (etcd's user):
    it serves etcd's clients and its peers (the other masters' members)."""
    pki = etcd_pki()
    # clientAuth too: etcd's own gateway (/v3/ over HTTP) dials etcd with this certificate,
    # each member dials its peers with it, and kubelab's etcdctl presents it.
    cert, key = pki.server_cert(
        master_cert_name("etcd-server"),
        "etcd",
        [host.name, topology.short_name(), "localhost"],
        [topology.address(), "127.0.0.1"],
        client_auth=True,
    )
    files = etcd_server_files()
    installed = install(
        {files["ca"]: pki.ca_cert_pem, files["cert"]: cert, files["key"]: key}, owner=owner
    )
    return list(installed.values())


def deploy_etcd_client_certificate(component: str, owner: str = "root") -> list:
    """``component``'s client certificate for etcd (CN ``<component>``, its etcd user)."""
    pki = etcd_pki()
    cert, key = client_cert(pki, f"{component}-etcd-client", component)
    files = client_files(component)
    installed = install(
        {files["ca"]: pki.ca_cert_pem, files["cert"]: cert, files["key"]: key}, owner=owner
    )
    return list(installed.values())
