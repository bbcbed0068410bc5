"""kube-proxy of the modern profile: service cluster IPs on every host, minions and master."""

from pyinfra.api import deploy

from ..engine.common import place, service
from ..pki.certificates import deploy_kube_proxy_kubeconfig
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from .kube_services import install_kube_binaries, unit


@deploy("kube-proxy", data_defaults=DEFAULTS)
def deploy_kube_proxy():
    binary = install_kube_binaries(["kube-proxy"])["kube-proxy"]
    kubeconfig = deploy_kube_proxy_kubeconfig()
    config = place(
        "/etc/kubernetes/kube-proxy-config.yaml",
        cluster_name=setting("cluster_name"),
        node_name=topology.node_name(),
        address=topology.address(),
        flannel_network=setting("flannel_network"),
        conntrack_max_per_core=setting("kube_proxy_conntrack_max_per_core"),
    )
    service(
        "kube-proxy",
        changed=[binary, config, *kubeconfig],
        units=[unit("kube-proxy", node_name=topology.node_name())],
    )
