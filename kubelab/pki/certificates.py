"""The modern profile's identities: certificates and kubeconfigs from the local cluster PKI.

The PKI lives on the machine running pyinfra (``pki_dir``, mode 0700) and is created on the
first run only. Every later run, and every host added later, is signed by the same CA. A lost
PKI directory while the master already has a CA stops the run: minting a new CA would lock every
existing component out of the cluster.
"""

import hashlib
import ipaddress
from functools import cache
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.host import Host
from pyinfra.facts.files import Sha256File

from .. import engine
from ..engine.common import directory
from ..settings import topology
from ..settings.defaults import DEFAULTS, fail, setting, setting_error
from ..settings.kinds import is_ip
from . import api_endpoints, secret_files
from .admin_kubeconfig import user_kubeconfig, write_user_kubeconfig
from .pki import ClusterPKI, PKIError, PKIMissing
from .pki_files import CA_CERT, ETCD_CA, SA_KEY

PKI = "/etc/kubernetes/pki"
# A master holding one of these already belongs to a cluster with a CA.
CLUSTER_CA_CERTS = (f"{PKI}/ca.crt", "/etc/etcd/pki/ca.crt", "/etc/kubernetes/tls/ca.crt")
# The master's copies of what the cluster's identity depends on, and the file of the local PKI
# each must equal: a master holding one the PKI lacks or holds otherwise stops the run.
MASTER_IDENTITY = {
    f"{PKI}/ca.crt": CA_CERT,
    "/etc/kubernetes/tls/ca.crt": CA_CERT,  # el7 with secure
    f"{PKI}/service-account.key": SA_KEY,
}
IDENTITY_HINTS = {
    CA_CERT: "kubelab will not mint a new CA for a running cluster",
    SA_KEY: "a new service-account key would void every service-account token",
}


def master_facts() -> list:
    """What ``cluster_pki`` reads on the master, as (fact, kwargs) pairs (``roles.first_facts``
    reads them with the rest)."""
    paths = dict.fromkeys((*CLUSTER_CA_CERTS, *MASTER_IDENTITY))
    return [(Sha256File, {"path": path}) for path in paths]


def pki_directory() -> Path:
    raw = setting("pki_dir").format(cluster_name=setting("cluster_name"))
    return Path(raw).expanduser()


@cache
def _open(directory: Path, create: bool, cluster_name: str, ca: str = "ca") -> ClusterPKI:
    return ClusterPKI.open(directory, create=create, cluster_name=cluster_name, ca=ca)


def cluster_pki() -> ClusterPKI:
    """The cluster's PKI; created only while the master holds no CA yet."""
    return engine.per_run(("cluster PKI", str(pki_directory())), _checked_pki)


def _checked_pki() -> ClusterPKI:
    master = topology.master()
    engine.prefetch(master, master_facts())  # read already, unless a partial deploy runs
    held = {kw["path"]: engine.fact(cls, master, **kw) for cls, kw in master_facts()}
    found = [path for path in CLUSTER_CA_CERTS if held[path]]
    directory = pki_directory()
    try:
        pki = _open(directory, not found, setting("cluster_name"))
    except PKIMissing:
        raise setting_error(
            "pki_dir",
            master,
            f"{directory} holds no CA, but this master already has one "
            f"({found[0]}): restore the directory from your backup; kubelab will not mint "
            "a new CA for a running cluster",
        ) from None
    except PKIError as error:
        raise setting_error("pki_dir", master, str(error)) from None
    for path, name in MASTER_IDENTITY.items():
        local = directory / name
        if held[path] and (not local.is_file() or sha256_of(local) != held[path]):
            if local.is_file():
                problem = f"{directory} holds another {name} than this master's {path}"
            else:
                problem = f"{directory} holds no {name}, but this master has one ({path})"
            fail(
                "pki_dir",
                master,
                f"{problem}: restore the directory from this cluster's backup (or point "
                f"pki_dir at this cluster's PKI); {IDENTITY_HINTS[name]}",
            )
    if not found:
        _refuse_another_masters_ca(pki, master)
    return pki


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refuse_another_masters_ca(pki: ClusterPKI, master):
    """A master with no CA gets none that already served another master."""
    issued = pki.issued_for()
    if not issued or {master.name, topology.master_address()} & issued:
        return
    service_ip = str(ipaddress.IPv4Network(setting("service_cluster_ip_range"))[1])
    generic = {service_ip, "127.0.0.1"}
    names = [n for n in issued if n not in generic and not n.startswith(GENERIC_NAMES)]
    others = ", ".join(sorted(names))
    fail(
        "pki_dir",
        master,
        f"{pki.directory} holds the CA of another cluster (its master: {others}), and this "
        "master holds no CA: give this cluster a PKI of its own (a cluster_name of its own, "
        "or pki_dir); kubelab will not share one CA between two clusters",
    )


def etcd_pki() -> ClusterPKI:
    """etcd's own CA, beside the cluster CA in the same directory: it signs etcd's serving
    certificate and its clients' (the apiserver, flanneld) and nothing else, so the cluster CA's
    certificates (kubelets', kube-proxies', CSRs the controller-manager approves) open no etcd.
    Made on the first run that needs it, a secure cluster of an earlier layout included."""
    cluster_pki()  # the cluster PKI's checks first: a lost directory stops the run
    try:
        return _open(pki_directory(), True, setting("cluster_name"), ETCD_CA)
    except PKIError as error:
        raise setting_error("pki_dir", topology.master(), str(error)) from None


def apiserver_url() -> str:
    """The first master's apiserver."""
    return api_endpoints.apiserver_url()


# Names every apiserver certificate holds, whatever its master.
GENERIC_NAMES = ("kubernetes", "localhost")


def apiserver_names(master: Host | None = None) -> tuple[list[str], list[str]]:
    """DNS names and IPs clients use for the apiserver of ``master`` (default: the first), with
    ``api_endpoint``'s host when set."""
    master = topology.master() if master is None else master
    domain = setting("cluster_domain")
    service_ip = ipaddress.IPv4Network(setting("service_cluster_ip_range"))[1]
    dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
        master.name,
        topology.short_name(master),
        "localhost",
    ]
    ips = [topology.address(master), str(service_ip), "127.0.0.1"]
    endpoint = api_endpoints.endpoint_host()
    if endpoint:
        (ips if is_ip(endpoint) else dns).append(endpoint)
    return dns, ips


def master_cert_name(base: str, master: Host | None = None) -> str:
    """The name in the local PKI of a certificate each master has its own of (``apiserver``,
    ``etcd-server``): ``base`` for the first master, as a cluster deployed before several
    masters were named it; ``<base>-<short name>`` for the others."""
    master = host if master is None else master
    return base if master == topology.master() else f"{base}-{topology.short_name(master)}"


# The admin's client certificate: its name in the local PKI, its user and its group.
ADMIN_CLIENT = ("admin", "admin", ["system:masters"])


def admin_client(pki: ClusterPKI) -> tuple[bytes, bytes]:
    """The admin's client certificate and key (the same on every master)."""
    return client_cert(pki, *ADMIN_CLIENT)


def client_cert(pki: ClusterPKI, name: str, common_name: str, organizations=()):
    """``pki.client_cert``, read once per run: every host's flanneld has the same one."""
    key = ("client certificate", str(pki.directory), name, common_name, tuple(organizations))
    return engine.per_run(key, lambda: pki.client_cert(name, common_name, organizations))


def kubeconfig(
    pki: ClusterPKI, name: str, common_name: str, organizations=(), server: str | None = None
) -> bytes:
    """A kubeconfig on ``server`` (default: the first master's apiserver)."""
    cert, key = client_cert(pki, name, common_name, organizations)
    server = server or apiserver_url()
    return pki.kubeconfig(setting("cluster_name"), server, common_name, cert, key).encode()


def install(files: dict[str, bytes], owner: str = "root") -> dict:
    """Each file in place, keys and kubeconfigs 0600 for ``owner`` only; returns path ->
    its step."""
    return {
        path: secret_files.secret(
            name=f"Install {path}",
            dest=path,
            content=content,
            user=owner,
            group=owner,
            mode=600 if path.endswith((".key", ".kubeconfig")) else 644,
        )
        for path, content in files.items()
    }


def private_directory():
    directory(PKI, f"{PKI} readable by root only", user="root", group="root", mode="700")


def by_service(installed: dict, readers: dict[str, tuple[str, ...]]) -> dict[str, list]:
    """service -> the operations of the files it reads (to restart it when they change)."""
    return {name: [installed[path] for path in paths] for name, paths in readers.items()}


@deploy("Master certificates", data_defaults=DEFAULTS)
def deploy_master_certificates():
    """The master's certificates, keys and kubeconfigs; returns service -> their operations."""
    private_directory()
    pki = cluster_pki()
    dns, ips = apiserver_names(host)
    apiserver_cert, apiserver_key = pki.server_cert(
        master_cert_name("apiserver"), "kubernetes", dns, ips
    )
    kubelet_client = pki.client_cert(
        "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"]
    )
    sa_private, sa_public = pki.service_account_keypair()
    own = api_endpoints.own_apiserver_url()
    admin = kubeconfig(pki, *ADMIN_CLIENT, server=own)
    # For kubectl on this machine: every master's, or api_endpoint's.
    write_user_kubeconfig(pki_directory(), user_kubeconfig(pki, admin_client(pki)))
    etcd_client = {}
    if topology.secure():
        etcd = etcd_pki()
        cert, key = etcd.client_cert("apiserver-etcd-client", "apiserver")
        etcd_client = {
            f"{PKI}/etcd-ca.crt": etcd.ca_cert_pem,
            f"{PKI}/apiserver-etcd-client.crt": cert,
            f"{PKI}/apiserver-etcd-client.key": key,
        }
    installed = install(
        {
            f"{PKI}/ca.crt": pki.ca_cert_pem,
            f"{PKI}/ca.key": pki.ca_key_path.read_bytes(),
            f"{PKI}/apiserver.crt": apiserver_cert,
            f"{PKI}/apiserver.key": apiserver_key,
            f"{PKI}/apiserver-kubelet-client.crt": kubelet_client[0],
            f"{PKI}/apiserver-kubelet-client.key": kubelet_client[1],
            f"{PKI}/service-account.key": sa_private,
            f"{PKI}/service-account.pub": sa_public,
            "/etc/kubernetes/controller-manager.kubeconfig": kubeconfig(
                pki, "controller-manager", "system:kube-controller-manager", server=own
            ),
            "/etc/kubernetes/scheduler.kubeconfig": kubeconfig(
                pki, "scheduler", "system:kube-scheduler", server=own
            ),
            "/etc/kubernetes/admin.kubeconfig": admin,
            **etcd_client,
        }
    )
    return by_service(
        installed,
        {
            "kube-apiserver": (
                *etcd_client,
                f"{PKI}/ca.crt",
                f"{PKI}/apiserver.crt",
                f"{PKI}/apiserver.key",
                f"{PKI}/apiserver-kubelet-client.crt",
                f"{PKI}/apiserver-kubelet-client.key",
                f"{PKI}/service-account.key",
                f"{PKI}/service-account.pub",
            ),
            "kube-controller-manager": (
                f"{PKI}/ca.crt",
                f"{PKI}/ca.key",
                f"{PKI}/service-account.key",
                "/etc/kubernetes/controller-manager.kubeconfig",
            ),
            "kube-scheduler": ("/etc/kubernetes/scheduler.kubeconfig",),
        },
    )


MINION_KUBECONFIGS = {
    "kubelet": "/etc/kubernetes/kubelet.kubeconfig",
    "kube-proxy": "/etc/kubernetes/kube-proxy.kubeconfig",
}


def kube_proxy_kubeconfig(pki: ClusterPKI) -> bytes:
    """This host's kube-proxy's kubeconfig: a client certificate of its own (the user
    system:kube-proxy, as kube-proxy's RBAC binding expects), so one host's key is not every
    host's."""
    name = f"kube-proxy-{topology.short_name()}"
    return kubeconfig(
        pki, name, "system:kube-proxy", ["system:node-proxier"], api_endpoints.node_api_url()
    )


def kubelet_kubeconfig(pki: ClusterPKI) -> bytes:
    """This minion's kubelet's kubeconfig (its own node identity)."""
    node = topology.node_name()
    return kubeconfig(
        pki,
        f"kubelet-{topology.short_name()}",
        f"system:node:{node}",
        ["system:nodes"],
        api_endpoints.node_api_url(),
    )


def minion_kubeconfigs(pki: ClusterPKI) -> dict[str, bytes]:
    """The kubelet's and kube-proxy's kubeconfigs, with their client certificates."""
    return {"kubelet": kubelet_kubeconfig(pki), "kube-proxy": kube_proxy_kubeconfig(pki)}


@deploy("kubelet certificates", data_defaults=DEFAULTS)
def deploy_kubelet_certificates() -> list:
    """A minion's kubelet: its serving certificate, the CA and its kubeconfig; returns their
    operations."""
    private_directory()
    pki = cluster_pki()
    node = topology.node_name()
    short = topology.short_name()
    serving = pki.server_cert(f"kubelet-serving-{short}", node, [node, short], [topology.address()])
    installed = install(
        {
            f"{PKI}/ca.crt": pki.ca_cert_pem,
            f"{PKI}/kubelet.crt": serving[0],
            f"{PKI}/kubelet.key": serving[1],
            MINION_KUBECONFIGS["kubelet"]: kubelet_kubeconfig(pki),
        }
    )
    return list(installed.values())


@deploy("kube-proxy kubeconfig", data_defaults=DEFAULTS)
def deploy_kube_proxy_kubeconfig() -> list:
    """kube-proxy's kubeconfig on any host (modern: the master runs kube-proxy too)."""
    path = MINION_KUBECONFIGS["kube-proxy"]
    return list(install({path: kube_proxy_kubeconfig(cluster_pki())}).values())
