"""Who is who in the cluster: the master, the minions and the addresses they use."""

from pyinfra import host
from pyinfra.api.host import Host

from .defaults import secure_for, setting
from .profiles import profile

MASTERS_GROUP = "masters"
MINIONS_GROUP = "minions"


def masters() -> list[Host]:
    return list(host.inventory.get_group(MASTERS_GROUP, []))


def minions() -> list[Host]:
    return list(host.inventory.get_group(MINIONS_GROUP, []))


def master() -> Host:
    return masters()[0]


def cluster_hosts() -> list[Host]:
    return masters() + [h for h in minions() if h not in masters()]


def outside_hosts() -> list[Host]:
    """The inventory's hosts in neither group: no deploy of kubelab's touches them."""
    cluster = cluster_hosts()
    return [target for target in host.inventory if target not in cluster]


def unreachable(target: Host) -> bool:
    """Whether pyinfra failed to connect to ``target`` in this run (its CLI goes on without it)."""
    state = getattr(target, "state", None)  # None: an inventory no run has taken up yet
    return state is not None and not target.connected and target in (state.failed_hosts or ())


def is_cluster_host(target: Host | None = None) -> bool:
    return is_master(target) or is_minion(target)


def is_master(target: Host | None = None) -> bool:
    return MASTERS_GROUP in (host if target is None else target).groups


def is_first_master(target: Host | None = None) -> bool:
    """Whether ``target`` (default: this host) is the first master: the one that does the
    cluster-level work (flannel's config, etcd's auth, the add-ons, the smoke test's objects)."""
    first = masters()[:1]
    return (host if target is None else target) in first


def is_minion(target: Host | None = None) -> bool:
    return MINIONS_GROUP in (host if target is None else target).groups


def address(target: Host | None = None) -> str:
    """The IP address the cluster uses for a host."""
    target = host if target is None else target
    return target.data.get("kube_address") or target.data.get("ssh_hostname") or target.name


def short_name(target: Host | None = None) -> str:
    return (host if target is None else target).name.split(".")[0]


def node_name(target: Host | None = None) -> str:
    """The name a minion's kubelet registers under."""
    target = host if target is None else target
    return target.data.get("node_name") or target.name


def master_address() -> str:
    return address(master())


def secure() -> bool:
    """``secure`` as it applies to the cluster: the master's value, unset per profile."""
    return secure_for(setting("secure", master()), profile(master()))


def etcd_scheme() -> str:
    return "https" if secure() else "http"


def etcd_member_url(target: Host | None = None) -> str:
    """The client URL of the etcd member on the master ``target`` (default: this host)."""
    port = setting("etcd_client_port", master())
    return f"{etcd_scheme()}://{address(target)}:{port}"


def etcd_peer_url(target: Host | None = None) -> str:
    """The peer URL of the etcd member on the master ``target``: its address, TLS with
    ``secure`` (peers of one cluster talk across hosts, even while it has one member)."""
    port = setting("etcd_peer_port", master())
    return f"{etcd_scheme()}://{address(target)}:{port}"


def etcd_urls() -> list[str]:
    """Every etcd member's client URL, the first master's first."""
    return [etcd_member_url(target) for target in masters()]


def etcd_url() -> str:
    """What etcd's clients are given: every member's client URL, comma-separated (for one
    master, its URL alone)."""
    return ",".join(etcd_urls())
