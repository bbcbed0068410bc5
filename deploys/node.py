"""A minion: the container runtime, flanneld, the kubelet and kube-proxy."""

from pyinfra.api import deploy

from . import api_tls, downloads, packages, topology
from .artifacts import (
    KUBE_MINION_BINARIES,
    cni_plugins,
    containerd_release,
    flannel_cni_plugin,
    runc_release,
)
from .certificates import deploy_minion_certificates
from .common import place, service
from .control_plane import el7_config, install_kube_binaries, unit
from .defaults import DEFAULTS, setting
from .flannel import deploy_flannel
from .profiles import family, profile


@deploy("Minion services", data_defaults=DEFAULTS)
def deploy_node():
    if profile() == "el7":
        packages.install(["docker", "kubernetes-node"])
        node = {"node_name": topology.node_name()}
        config = {name: el7_config(name, **node) for name in ("config", "kubelet", "proxy")}
        # docker takes its bridge's address range from flannel's lease: flannel first, and a
        # new flannel config means docker must restart too.
        flannel_restarts = deploy_flannel()
        service("docker", restart=flannel_restarts)
        tls = api_tls.deploy_minion_kubeconfigs() if api_tls.secure() else {}
        for name, own in (("kubelet", "kubelet"), ("kube-proxy", "proxy")):
            service(name, changed=[config["config"], config[own], *tls.get(name, [])])
    else:
        deploy_modern_node()


def node_template(path: str, **extra):
    """A minion's file at ``path`` from its template."""
    return place(
        path,
        cluster_name=setting("cluster_name"),
        node_name=topology.node_name(),
        **extra,
    )


def deploy_container_runtime():
    """containerd with the systemd cgroup driver, and flannel's CNI config and plugins."""
    units = []
    if family() == "debian":
        packages.install(["containerd"])
    else:  # EL 8/9 do not package containerd: upstream's release, runc and a unit of ours
        downloads.install(containerd_release(setting("containerd_version")))
        downloads.install(runc_release(setting("runc_version")))
        units.append(node_template("/etc/systemd/system/containerd.service"))
    downloads.install(cni_plugins(setting("cni_plugins_version")))
    downloads.install(flannel_cni_plugin(setting("flannel_cni_plugin_version")))
    cni = node_template("/etc/cni/net.d/10-flannel.conflist")
    config = node_template("/etc/containerd/config.toml")
    service("containerd", changed=[config, cni], units=units)


def deploy_modern_node():
    deploy_flannel()
    deploy_container_runtime()
    binaries = install_kube_binaries(KUBE_MINION_BINARIES)
    certificates = deploy_minion_certificates()
    settings = {
        "kubelet": node_template(
            "/etc/kubernetes/kubelet-config.yaml", cluster_domain=setting("cluster_domain")
        ),
        "kube-proxy": node_template(
            "/etc/kubernetes/kube-proxy-config.yaml", flannel_network=setting("flannel_network")
        ),
    }
    for name in KUBE_MINION_BINARIES:
        service(
            name,
            changed=[binaries[name], settings[name], *certificates[name]],
            units=[unit(name, node_name=topology.node_name(), address=topology.address())],
        )
