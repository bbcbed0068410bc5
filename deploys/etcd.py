"""etcd on the master: the store of the API's objects and of flannel's network config."""

from pyinfra.api import deploy

from . import downloads, etcd_tls, packages, topology
from .artifacts import etcd_release
from .common import place, service
from .defaults import DEFAULTS, setting
from .profiles import distribution, profile

# Where the distribution's own etcd is recent enough (3.4 or later, with the v3 gateway).
DISTRIBUTION_ETCD = {("debian", 12), ("debian", 13), ("ubuntu", 24)}


def etcd_template_data() -> dict:
    return {
        "cluster_name": setting("cluster_name"),
        "master_address": topology.master_address(),
        "etcd_client_port": setting("etcd_client_port"),
        "etcd_peer_port": setting("etcd_peer_port"),
        "etcd_name": topology.short_name(),
        "scheme": etcd_tls.scheme(),
        "tls": etcd_tls.etcd_server_files() if etcd_tls.enabled() else None,
    }


def server_certificate(owner: str = "etcd") -> list:
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
    units, binaries, owner = [], [], "etcd"
    if distribution() in DISTRIBUTION_ETCD:
        packages.install(["etcd-server", "etcd-client"])
    else:  # our own unit runs etcd as root
        owner = "root"
        binaries = [downloads.install(etcd_release(setting("etcd_version")))]
        units.append(place("/etc/systemd/system/etcd.service"))
    config = place("/etc/default/etcd", **etcd_template_data())
    service("etcd", changed=[config, *binaries, *server_certificate(owner)], units=units)
