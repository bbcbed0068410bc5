"""pyinfra inventory.py deploys/minion.py: only the minion part (and its prerequisites)."""

from kubelab import deploy_minion, deploy_prerequisites, validate_inventory
from pyinfra import host

validate_inventory()
if "minions" in host.groups:
    deploy_prerequisites()
    deploy_minion()
