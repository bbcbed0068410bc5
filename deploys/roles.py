"""The reference setup's order, per role: what ``deploys/cluster.py`` runs."""

from pyinfra.api import deploy
from pyinfra.operations import server

from . import topology
from .control_plane import deploy_master_services
from .defaults import DEFAULTS
from .etcd import deploy_etcd
from .flannel import deploy_flannel, deploy_flannel_network_config
from .node import deploy_node
from .prerequisites import deploy_prerequisites
from .validation import validate_inventory


@deploy("Master", data_defaults=DEFAULTS)
def deploy_master():
    deploy_etcd()
    deploy_flannel_network_config()
    deploy_flannel()
    deploy_master_services()


@deploy("Minion", data_defaults=DEFAULTS)
def deploy_minion():
    deploy_node()


@deploy("Kubernetes cluster", data_defaults=DEFAULTS)
def deploy_cluster():
    """The whole cluster: every host's prerequisites, then the master, then the minions."""
    validate_inventory()
    deploy_prerequisites()
    if topology.is_master():
        deploy_master()
    # pyinfra interleaves the hosts' operations; one operation shared by every host is a
    # barrier: nothing of a minion runs before the master is done (its flanneld needs the
    # network config in etcd, its kubelet the apiserver).
    server.shell(name="The master is ready", commands=[])
    if topology.is_minion():
        deploy_minion()
