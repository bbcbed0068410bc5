"""pyinfra inventory.py deploys/master.py: only the master part (and its prerequisites)."""

from pyinfra import host

from kubelab import deploy_master, deploy_prerequisites, validate_inventory

validate_inventory()
if "masters" in host.groups:
    deploy_prerequisites()
    deploy_master()
