"""A minion: the container runtime, flanneld, the kubelet and kube-proxy."""

from pyinfra.api import deploy

from . import packages, topology
from .common import service
from .control_plane import el7_config
from .defaults import DEFAULTS
from .flannel import deploy_flannel
from .profiles import profile


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
        service("kubelet", changed=[config["config"], config["kubelet"]])
        service("kube-proxy", changed=[config["config"], config["proxy"]])
