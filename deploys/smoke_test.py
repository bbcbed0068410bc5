"""The reference setup's final tests, as a deploy of their own (deploys/smoke.py).

Every minion Ready, the default service account holding a token, nginx as a
ReplicationController of three replicas behind a service whose cluster IP answers from every
minion. Each wait is bounded and says what was not ready.
"""

import ipaddress

from pyinfra.api import deploy
from pyinfra.operations import files, server

from . import topology
from .common import template
from .defaults import DEFAULTS, setting
from .profiles import profile

MANIFESTS = "/etc/kubernetes/smoke"
WAIT_SECONDS = 300
NGINX_IMAGE = "nginx"


def kubectl() -> str:
    if profile() == "el7":
        return f"kubectl -s http://127.0.0.1:{setting('apiserver_insecure_port')}"
    return "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig"


def smoke_cluster_ip() -> str:
    """A fixed address of the service range for the nginx service."""
    return str(ipaddress.IPv4Network(setting("service_cluster_ip_range"))[100])


def wait_until(check: str, what: str) -> str:
    """A shell loop retrying ``check`` for WAIT_SECONDS, then failing with ``what``."""
    tries = WAIT_SECONDS // 5
    return (
        f"for try in $(seq {tries}); do if {check}; then exit 0; fi; sleep 5; done; "
        f"echo 'smoke test: {what} (waited {WAIT_SECONDS} s)' >&2; exit 1"
    )


def nodes_ready_check() -> str:
    nodes = " ".join(topology.node_name(minion) for minion in topology.minions())
    return (
        f"{kubectl()} get nodes --no-headers > /tmp/kubelab-nodes 2>&1 && "
        f'for node in {nodes}; do grep -Eq "^$node +Ready" /tmp/kubelab-nodes || exit 1; '
        "done"
    )


def service_account_token_check() -> str:
    if profile() == "el7":  # 1.5 keeps each service account's token in a secret
        get = f"{kubectl()} get serviceaccount default -o jsonpath='{{.secrets[*].name}}'"
        return f'test -n "$({get})"'
    return f"{kubectl()} create token default >/dev/null"


def replicas_ready_check() -> str:
    ready = f"{kubectl()} get rc nginx -o jsonpath='{{.status.readyReplicas}}'"
    return f'test "$({ready})" = 3'


@deploy("Smoke test on the master", data_defaults=DEFAULTS)
def deploy_smoke_master():
    server.shell(
        name="Every minion is Ready",
        commands=[wait_until(nodes_ready_check(), "a minion is not Ready in kubectl get nodes")],
    )
    server.shell(
        name="The default service account holds a token",
        commands=[wait_until(service_account_token_check(), "no token for default")],
    )
    for manifest, values in (
        ("nginx-rc.yaml", {"image": NGINX_IMAGE}),
        ("nginx-service.yaml", {"cluster_ip": smoke_cluster_ip()}),
    ):
        files.template(
            name=f"Upload {manifest}",
            src=template(f"{MANIFESTS}/{manifest}"),
            dest=f"{MANIFESTS}/{manifest}",
            create_remote_dir=True,
            **values,
        )
        server.shell(
            name=f"Apply {manifest}", commands=[f"{kubectl()} apply -f {MANIFESTS}/{manifest}"]
        )
    server.shell(
        name="Three nginx replicas are ready",
        commands=[wait_until(replicas_ready_check(), "nginx has fewer than 3 ready replicas")],
    )


@deploy("Smoke test on a minion", data_defaults=DEFAULTS)
def deploy_smoke_minion():
    url = f"http://{smoke_cluster_ip()}/"
    server.shell(
        name=f"nginx answers on its cluster IP {url}",
        commands=[wait_until(f"curl -sf -o /dev/null --max-time 5 {url}", f"no answer from {url}")],
    )


@deploy("Smoke test", data_defaults=DEFAULTS)
def deploy_smoke():
    if topology.is_master():
        deploy_smoke_master()
    if topology.is_minion():
        deploy_smoke_minion()
