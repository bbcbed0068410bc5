"""pyinfra inventory.py deploys/remove_node.py --data remove_nodes=NAME[,NAME]: remove minions
from the cluster (drain, delete the Node, clean the hosts, their flannel leases and their
certificates); then take them out of the inventory."""

from kubelab import deploy_remove_node

deploy_remove_node()
