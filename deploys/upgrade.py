"""pyinfra inventory.py deploys/upgrade.py: upgrade the running cluster to the versions its
settings name (kube_version, etcd_version, flannel_version, containerd_version, ...): an etcd
snapshot kept on this machine, then the master, then each minion in turn (drained, upgraded,
Ready at the new version, uncordoned)."""

from kubelab import deploy_upgrade

deploy_upgrade()
