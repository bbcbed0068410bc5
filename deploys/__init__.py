"""kubelab: pyinfra deploys for a Kubernetes cluster of one master and N minions.

Importing the package runs nothing; call the deploys from a pyinfra deploy file::

    from kubelab import deploy_cluster
    deploy_cluster()
"""

from .addons import deploy_addons
from .cluster_reset import deploy_reset
from .cluster_upgrade import deploy_upgrade
from .container_runtime import deploy_container_runtime
from .control_plane import deploy_master_services
from .defaults import SettingError
from .etcd import deploy_etcd
from .flannel import deploy_flannel, deploy_flannel_network_config
from .images import deploy_image_archives
from .kube_proxy import deploy_kube_proxy
from .kubelet import deploy_kubelet
from .node import deploy_node
from .node_removal import deploy_remove_node
from .prerequisites import deploy_prerequisites
from .roles import deploy_cluster, deploy_master, deploy_minion
from .service_account import deploy_service_account_key
from .smoke_deploy import deploy_smoke
from .validation import validate_inventory

__all__ = [
    "SettingError",
    "deploy_addons",
    "deploy_cluster",
    "deploy_container_runtime",
    "deploy_etcd",
    "deploy_flannel",
    "deploy_flannel_network_config",
    "deploy_image_archives",
    "deploy_kube_proxy",
    "deploy_kubelet",
    "deploy_master",
    "deploy_master_services",
    "deploy_minion",
    "deploy_node",
    "deploy_prerequisites",
    "deploy_remove_node",
    "deploy_reset",
    "deploy_service_account_key",
    "deploy_smoke",
    "deploy_upgrade",
    "validate_inventory",
]
