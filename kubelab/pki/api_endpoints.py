"""Where each component reaches the API, one master or several.

- Each master's own apiserver: ``https://<its address>:<apiserver_port>``; its
  controller-manager, scheduler and admin kubeconfig point there.
- A host's kubelet and kube-proxy (``node_api_url``): ``api_endpoint`` when set; else, with
  several masters, the host's local load balancer on 127.0.0.1 (api_balancer); else the one
  master's apiserver, as before high availability.
- The service-account issuer: the first master's URL on every apiserver (tokens issued before
  more masters came stay valid).
"""

from pyinfra import host
from pyinfra.api.host import Host

from ..settings import topology
from ..settings.defaults import setting
from ..settings.profiles import profile


def apiserver_url(target: Host | None = None) -> str:
    """The apiserver of the master ``target`` (default: the first master)."""
    master = topology.master() if target is None else target
    return f"https://{topology.address(master)}:{setting('apiserver_port')}"


def service_account_issuer() -> str:
    return apiserver_url(topology.master())


def api_endpoint() -> str | None:
    """``api_endpoint`` as the master holds it (a cluster-wide setting of the modern profile:
    el7's single master ignores it, as it does every modern setting)."""
    if profile(topology.master()) != "modern":
        return None
    return setting("api_endpoint", topology.master())


def endpoint_host() -> str | None:
    """The host part of ``api_endpoint`` (a DNS name or an IPv4 address), if set."""
    endpoint = api_endpoint()
    return endpoint.rpartition(":")[0] if endpoint else None


def balanced() -> bool:
    """Whether every cluster host runs the local load balancer: several masters, and no
    external one (``api_endpoint``)."""
    return len(topology.masters()) > 1 and not api_endpoint()


def balancer_url() -> str:
    return f"https://127.0.0.1:{setting('api_balancer_port', topology.master())}"


def node_api_url() -> str:
    """Where a host's kubelet and kube-proxy reach the API."""
    if api_endpoint():
        return f"https://{api_endpoint()}"
    return balancer_url() if balanced() else apiserver_url()


def own_apiserver_url(target: Host | None = None) -> str:
    """The apiserver of the master running this deploy (or ``target``)."""
    return apiserver_url(host if target is None else target)
