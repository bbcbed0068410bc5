"""flannel: the overlay network, its config stored in etcd, flanneld on every host."""

import json
import shlex
from typing import NamedTuple

from pyinfra import host
from pyinfra.api import deploy, operation

from .. import engine
from ..engine import bounds, downloads, packages, shell
from ..engine.artifacts import flanneld
from ..engine.clients import etcdctl, etcdctl_options
from ..engine.common import place, service
from ..engine.facts import EtcdValue
from ..pki import etcd_tls
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from ..settings.profiles import profile
from ..workflows.refusals import failure
from ..workflows.teardown import link_deleted_command
from .catalog import vxlan_device

# etcd API version each profile's flanneld reads its config with: 0.7.1 speaks v2 only,
# current releases v3 only (keys of one API are invisible to the other).
ETCD_API = {"el7": 2, "modern": 3}
WRITE_ATTEMPTS = 10
WRITE_PAUSE = 2  # seconds between two attempts
# flanneld picks one of the first 100 free subnets at random and leases it only if no other
# host took it meanwhile. When another did, flanneld (0.28.9) exits instead of picking again;
# its next start sees that lease. Minions that start together collide (seen in the lab with 11
# of them). el7 keeps the start its package expects.
START_ATTEMPTS = {"el7": 1, "modern": 3}


def network_config() -> dict:
    return {
        "Network": setting("flannel_network"),
        "SubnetLen": int(setting("flannel_subnet_len")),
        "Backend": {"Type": setting("flannel_backend"), "VNI": int(setting("flannel_vni"))},
    }


def config_key() -> str:
    return setting("flannel_etcd_prefix").rstrip("/") + "/config"


def stored_config_fact() -> tuple:
    """The fact (and its kwargs) reading the config in etcd, on the master."""
    api = ETCD_API[profile()]
    return EtcdValue, {
        "endpoint": topology.etcd_url(),
        "key": config_key(),
        "api": api,
        "tls_args": etcdctl_options(api),
    }


class Unreadable(NamedTuple):
    """etcd did not answer the read of flannel's config: why, in one line."""

    problem: str


def stored_config():
    """The config in etcd before this run (None: none stored), read on the master once, with
    the rest of its state. When etcd does not answer then (not started yet, or its address or
    TLS change in this run), it is read once more when the run reaches it, past etcd's start on
    the master: ``Unreadable`` when that read fails too (or, before the run, the first did)."""
    fact, kwargs = stored_config_fact()
    master = topology.master()
    found = engine.fact(fact, master, **kwargs)
    if "error" in found and engine.current_state().is_executing:
        found = engine.per_run(
            ("flannel config read again", master.name), lambda: master.get_fact(fact, **kwargs)
        )
    if "error" in found:
        return Unreadable(
            f"kubelab: {master.name}: reading flannel's network config ({kwargs['key']}) from "
            f"etcd at {kwargs['endpoint']} (each read at most {bounds.ETCD_DIAL_TIMEOUT} s to "
            f"connect, {bounds.ETCD_COMMAND_TIMEOUT} s to answer) failed: {found['error']}; "
            "nothing restarts on a config kubelab cannot read: check etcd and run again"
        )
    try:
        return json.loads(found["value"]) if found["value"] else None
    except ValueError:
        return None


def write_config_command(api: int) -> str:
    """etcdctl writing the config, retried while etcd (re)starts: WRITE_ATTEMPTS tries, each
    bounded by etcdctl's own timeouts; then one line naming the endpoint and etcdctl's error."""
    value = shlex.quote(json.dumps(network_config(), sort_keys=True))
    verb = "set" if api == 2 else "put"
    write = f"{etcdctl(api)} {verb} {shlex.quote(config_key())} {value}"
    problem = (
        f"kubelab: {host.name}: storing flannel's network config: etcd at {topology.etcd_url()} "
        f"did not accept it in {WRITE_ATTEMPTS} attempts (each at most "
        f"{bounds.ETCD_DIAL_TIMEOUT} s to connect, {bounds.ETCD_COMMAND_TIMEOUT} s to answer): "
    )
    return shell.attempts(write, WRITE_ATTEMPTS, WRITE_PAUSE, problem)


def client_certificate() -> list:
    """With ``secure``: flanneld's certificate for etcd."""
    return etcd_tls.deploy_etcd_client_certificate("flanneld") if etcd_tls.enabled() else []


def flanneld_tls_options() -> str:
    """With ``secure``: flanneld's options to present its certificate to etcd."""
    if not etcd_tls.enabled():
        return ""
    files = etcd_tls.client_files("flanneld")
    return f"-etcd-cafile={files['ca']} -etcd-certfile={files['cert']} -etcd-keyfile={files['key']}"


def network_config_changes() -> bool:
    """Whether this run writes a new network config: every flanneld must then restart. Not
    when etcd could not be read: the master's run fails there (``network_config_stored``),
    and no host restarts on a guess."""
    stored = stored_config()
    return not isinstance(stored, Unreadable) and stored != network_config()


def old_vxlan_device() -> str | None:
    """flanneld's vxlan device under the network config stored before this run, if any."""
    stored = stored_config()
    stored = stored if isinstance(stored, dict) else {}
    backend = stored.get("Backend") or {}
    if not stored or backend.get("Type", "udp") != "vxlan":
        return None
    return vxlan_device(backend.get("VNI", 1))


@operation()
def network_config_stored(api: int):
    """etcd holds the network config, written when the one stored before this run differs;
    this host fails, saying why, when etcd could not be read."""
    stored = stored_config()
    if isinstance(stored, Unreadable):
        yield failure(stored.problem)
        return
    if not network_config_changes():
        host.noop("etcd holds flannel's network config")
        return
    yield write_config_command(api)


@deploy("flannel network config", data_defaults=DEFAULTS)
def deploy_flannel_network_config():
    api = ETCD_API[profile()]
    fact, kwargs = stored_config_fact()
    engine.will_ask(fact, **kwargs)  # read with the rest of this host's state
    network_config_stored(
        name=f"Store flannel's network config in etcd ({config_key()}, v{api} API)", api=api
    )


@deploy("flannel", data_defaults=DEFAULTS)
def deploy_flannel():
    """
    flanneld, leasing this host's subnet of the overlay. Returns whether flanneld restarts
    (its own config changed or the network did), which the container runtime follows.
    """
    certificate = client_certificate()
    if profile() == "el7":
        packages.install(["flannel"])
        changed = place(
            "/etc/sysconfig/flanneld",
            cluster_name=setting("cluster_name"),
            etcd_url=topology.etcd_url(),
            flannel_etcd_prefix=setting("flannel_etcd_prefix"),
            flannel_options=flanneld_tls_options(),
        )
        units = []
    else:
        changed = downloads.install(flanneld(setting("flannel_version")))
        units = [
            place(
                "/etc/systemd/system/flanneld.service",
                cluster_name=setting("cluster_name"),
                etcd_url=topology.etcd_url(),
                flannel_etcd_prefix=setting("flannel_etcd_prefix"),
                address=topology.address(),
                flannel_options=flanneld_tls_options(),
            )
        ]
    own = [changed, *certificate]
    service(
        "flanneld",
        changed=own,
        units=units,
        restart=network_config_changes,
        before_restart=old_device_dropped,
        attempts=START_ATTEMPTS[profile()],
    )
    # A new client certificate leaves flanneld's lease, hence docker's bridge, as it was.
    return lambda: network_config_changes() or any(engine.changes(op) for op in [changed, *units])


def old_device_dropped() -> list[str]:
    """With a new network config, before flanneld restarts: flanneld stopped and its vxlan
    device on the old network deleted. flanneld adds the new network's address to that device
    but keeps the old one, which the kernel then picks as the source towards the new network:
    no reply finds its way back. A running flanneld puts a deleted device back: stopped first,
    it makes the device afresh when it starts."""
    device = old_vxlan_device() if network_config_changes() else None
    return ["systemctl stop flanneld.service", link_deleted_command(device)] if device else []
