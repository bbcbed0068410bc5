"""pyinfra inventory.py deploys/smoke.py: the reference's final tests against a built cluster."""

from kubelab import deploy_smoke

deploy_smoke()
