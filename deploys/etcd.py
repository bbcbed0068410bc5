"""etcd on the master: the store of the API's objects and of flannel's network config."""

from pyinfra.api import deploy

from . import downloads, packages, topology
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
    }


@deploy("etcd", data_defaults=DEFAULTS)
def deploy_etcd():
    if profile() == "el7":
        packages.install(["etcd"])
        config = place("/etc/etcd/etcd.conf", **etcd_template_data())
        service("etcd", changed=[config])
    else:
        deploy_modern_etcd()


def deploy_modern_etcd():
    units, binaries = [], []
    if distribution() in DISTRIBUTION_ETCD:
        packages.install(["etcd-server", "etcd-client"])
    else:
        binaries = [downloads.install(etcd_release(setting("etcd_version")))]
        units.append(place("/etc/systemd/system/etcd.service"))
    config = place("/etc/default/etcd", **etcd_template_data())
    service("etcd", changed=[config, *binaries], units=units)
