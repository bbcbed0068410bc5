"""pyinfra inventory.py deploys/minion.py: only the minion part (and its prerequisites)."""

from pyinfra import host

from kubelab import deploy_minion, deploy_prerequisites, validate_inventory

validate_inventory()
if "minions" in host.groups:
    deploy_prerequisites()
    deploy_minion()
