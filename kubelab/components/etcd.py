"""etcd on the master: the store of the API's objects and of flannel's network config."""

from pyinfra import host
from pyinfra.api import deploy

from ..engine import downloads, packages
from ..engine.artifacts import etcd_release
from ..engine.common import directory, place, service, step, system_user
from ..pki import etcd_tls
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from ..settings.profiles import profile
from . import etcd_members
from .etcd_access import deploy_etcd_auth

# modern: upstream's etcd runs as this system user, its data under DATA_DIR (mode 0700).
ETCD_USER = "etcd"
DATA_DIR = "/var/lib/etcd"


def etcd_template_data() -> dict:
    """What etcd's file says on this master (modern: but its ``ETCD_INITIAL_CLUSTER*``, see
    ``etcd_members``)."""
    return {
        "cluster_name": setting("cluster_name"),
        "master_address": topology.master_address(),
        "etcd_client_port": setting("etcd_client_port"),
        "etcd_peer_port": setting("etcd_peer_port"),
        "etcd_name": topology.short_name(),
        "client_url": topology.etcd_member_url(),
        "peer_url": topology.etcd_peer_url(),
        "scheme": topology.etcd_scheme(),
        "tls": etcd_tls.etcd_server_files() if etcd_tls.enabled() else None,
    }


def server_certificate(owner: str = ETCD_USER) -> list:
    """With ``secure``: etcd's serving certificate, for the user etcd runs as."""
    return etcd_tls.deploy_etcd_server_certificate(owner) if etcd_tls.enabled() else []


@deploy("etcd", data_defaults=DEFAULTS)
def deploy_etcd():
    if profile() == "el7":
        packages.install(["etcd"])
        config = place("/etc/etcd/etcd.conf", **etcd_template_data())
        service("etcd", changed=[config, *server_certificate()])
    else:
        deploy_modern_etcd()


def deploy_modern_etcd():
    """
    Upstream's release under kubelab's unit on every modern master: no supported distribution
    packages an etcd Kubernetes 1.35 supports (3.4.29+, 3.5.11+; Debian 12 has 3.4.23, and 3.4
    is end of life).
    """
    system_user(ETCD_USER, home=DATA_DIR, shell="/usr/sbin/nologin")
    # Recursive: a data directory an earlier etcd wrote as root becomes etcd's.
    directory(
        DATA_DIR,
        f"{DATA_DIR} for {ETCD_USER} only",
        user=ETCD_USER,
        group=ETCD_USER,
        mode="700",
        recursive=True,
    )
    binaries = downloads.install(etcd_release(setting("etcd_version")))
    unit = place("/etc/systemd/system/etcd.service", etcd_user=ETCD_USER)
    data = etcd_template_data()
    certificate = server_certificate()
    # A joining master: nothing here, its turn (below) configures and starts its member.
    joins = host in etcd_members.joining()
    config = [] if joins else [etcd_members.place_config(data)]
    step(
        not joins,
        service,
        name="etcd",
        changed=[*config, binaries, *certificate],
        units=[unit],
        before_restart=etcd_members.before_restart,
    )
    etcd_members.join_turns(data)
    deploy_etcd_auth()
