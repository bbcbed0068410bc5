"""What every kube service of the modern profile has: its binary and its systemd unit."""

from ..engine import downloads
from ..engine.artifacts import kube_binary
from ..engine.common import place
from ..pki import etcd_tls
from ..settings import topology
from ..settings.defaults import setting


def install_kube_binaries(names) -> dict:
    """The named Kubernetes binaries at kube_version, each checked against its sha256."""
    installed = {}
    for name in names:
        artifact = kube_binary(name, setting("kube_version"))
        installed[name] = downloads.install(artifact, f"{name} {setting('kube_version')}")
    return installed


def unit(name: str, **extra):
    """/etc/systemd/system/<name>.service from its template."""
    return place(
        f"/etc/systemd/system/{name}.service",
        cluster_name=setting("cluster_name"),
        etcd_url=topology.etcd_url(),
        apiserver_port=setting("apiserver_port"),
        service_cluster_ip_range=setting("service_cluster_ip_range"),
        secure=etcd_tls.enabled(topology.master()),
        **extra,
    )
