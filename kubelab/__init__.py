"""kubelab: pyinfra deploys for a Kubernetes cluster of one master and N minions.

Importing the package runs nothing; call the deploys from a pyinfra deploy file::

    from kubelab import deploy_cluster
    deploy_cluster()
"""

from .components.addons import deploy_addons
from .components.container_runtime import deploy_container_runtime
from .components.control_plane import deploy_master_services
from .components.etcd import deploy_etcd
from .components.flannel import deploy_flannel, deploy_flannel_network_config
from .components.kube_proxy import deploy_kube_proxy
from .components.kubelet import deploy_kubelet
from .components.node import deploy_node
from .components.prerequisites import deploy_prerequisites
from .engine.images import deploy_image_archives
from .pki.service_account import deploy_service_account_key
from .settings.defaults import SettingError
from .settings.validation import validate_inventory
from .workflows.cluster import deploy_cluster, deploy_master, deploy_minion
from .workflows.node_removal import deploy_remove_node
from .workflows.reset import deploy_reset
from .workflows.smoke_deploy import deploy_smoke
from .workflows.upgrade import deploy_upgrade

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
