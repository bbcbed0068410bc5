"""A minion: the container runtime, flanneld, the kubelet and kube-proxy."""

from pyinfra.api import deploy

from ..engine import packages
from ..engine.common import service
from ..engine.images import deploy_image_archives
from ..pki import api_tls
from ..settings import topology
from ..settings.defaults import DEFAULTS
from ..settings.profiles import profile
from .api_balancer import deploy_api_balancer
from .container_runtime import deploy_container_runtime
from .control_plane import el7_config
from .flannel import deploy_flannel
from .kube_proxy import deploy_kube_proxy
from .kubelet import deploy_kubelet


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


def deploy_modern_node():
    deploy_flannel()
    deploy_container_runtime()
    deploy_image_archives()  # before the kubelet: it would pull what they hold
    if not topology.is_master():  # a master's runs with its control plane
        deploy_api_balancer()  # before the kubeconfigs pointing at it
    deploy_kubelet()
    deploy_kube_proxy()
