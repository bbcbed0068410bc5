"""pyinfra inventory.py deploys/cluster.py: the whole cluster, in the reference order."""

from kubelab import deploy_cluster

deploy_cluster()
