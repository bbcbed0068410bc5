"""pyinfra inventory.py deploys/reset.py --data reset_cluster=CLUSTER_NAME: remove everything
kubelab put on every host (add reset_pki=CLUSTER_NAME to delete the local PKI too)."""

from kubelab import deploy_reset

deploy_reset()
