"""etcd on the master: the store of the API's objects and of flannel's network config."""

from pyinfra.api import deploy
from pyinfra.operations import files

from . import packages, topology
from .common import service, template
from .defaults import DEFAULTS, setting
from .profiles import profile


def etcd_template_data() -> dict:
    return {
        "cluster_name": setting("cluster_name"),
        "master_address": topology.master_address(),
        "etcd_client_port": setting("etcd_client_port"),
        "etcd_peer_port": setting("etcd_peer_port"),
    }


@deploy("etcd", data_defaults=DEFAULTS)
def deploy_etcd():
    if profile() == "el7":
        packages.install(["etcd"])
        config = files.template(
            name="Configure etcd (/etc/etcd/etcd.conf)",
            src=template("/etc/etcd/etcd.conf"),
            dest="/etc/etcd/etcd.conf",
            **etcd_template_data(),
        )
        service("etcd", changed=[config])
