"""The reference setup's order, per role: what ``deploys/cluster.py`` runs."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FileContents
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import server

from .. import engine
from ..components import coredns, etcd_members
from ..components.addons import deploy_addons
from ..components.control_plane import deploy_master_services
from ..components.etcd import deploy_etcd
from ..components.flannel import deploy_flannel, deploy_flannel_network_config
from ..components.node import deploy_node
from ..components.prerequisites import HOSTS_FILE, deploy_prerequisites
from ..engine import hoststate, once
from ..engine.facts import CgroupVersion, PackageSources
from ..pki import certificates, cluster_mark, encryption, front_proxy
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from ..settings.profiles import profile
from ..settings.validation import validate_inventory
from .refusals import hosts_in_step, require_hosts_in_step

GROWTH_IN_STEP = ("deploys/cluster.py", "etcd's new members join one at a time")


def first_facts(target) -> list:
    """What preparing ``target`` reads first, as (fact, kwargs) pairs: its OS, /etc/hosts,
    package sources and cgroup version, its cluster mark, and on the master the digests of the
    files the cluster's identity depends on (certificates.master_facts)."""
    facts = [
        (LinuxDistribution, {}),
        (FileContents, {"path": HOSTS_FILE}),
        (PackageSources, {}),
        (CgroupVersion, {}),
        cluster_mark.FACT,
    ]
    if topology.is_master(target):
        facts += certificates.master_facts() + etcd_members.data_facts(target)
        # what a run may create only while the master holds none (a key of the add-ons)
        facts += [(File, {"path": path}) for path in (front_proxy.CA_CERT, encryption.CONFIG)]
    if topology.is_minion(target):  # where CoreDNS may forward (coredns.forward_targets)
        facts += [(FileContents, {"path": path}) for path in coredns.RESOLVERS]
    return facts


def mark_cluster_hosts():
    """modern: every cluster host marked as this cluster's (cluster_mark), none marked as
    another's; checked for every host before any is touched."""
    if profile(topology.master()) != "modern":
        return
    identity = (setting("cluster_name"), certificates.cluster_pki().ca_fingerprint)
    cluster_mark.refuse_others(topology.cluster_hosts(), identity, "deployed")
    cluster_mark.deploy_mark(identity)


@deploy("Master", data_defaults=DEFAULTS)
def deploy_master():
    deploy_etcd()
    if topology.is_first_master():  # cluster-level: the first master's
        deploy_flannel_network_config()
    deploy_flannel()
    deploy_master_services()


@deploy("Minion", data_defaults=DEFAULTS)
def deploy_minion():
    deploy_node()


@deploy("Kubernetes cluster", data_defaults=DEFAULTS)
def deploy_cluster():
    """The whole cluster: every host's prerequisites, then the master, then the minions."""
    engine.deploy_file_is_no_module()
    if not topology.is_cluster_host():  # validation names it, from a cluster host's run
        return
    # Validation reads every host's OS: this host's facts first, then (already read or being
    # read by their own preparation, under the CLI) the others'.
    for target in [host, *(other for other in topology.cluster_hosts() if other != host)]:
        if not topology.unreachable(target):  # validation names an unreachable master
            engine.prefetch(target, first_facts(target))
    with once.one_host_at_a_time():
        validate_inventory()
        if etcd_members.joining():  # and under a script's run_ops, when the operations run
            require_hosts_in_step(*GROWTH_IN_STEP)
            deploy, why = GROWTH_IN_STEP
            label = "Every host in step (no --serial, no --no-wait)"
            hosts_in_step(name=label, deploy=deploy, why=why)
        mark_cluster_hosts()
        deploy_prerequisites()
        if topology.is_master():
            deploy_master()
        # pyinfra interleaves the hosts' operations; one operation shared by every host is a
        # barrier: nothing of a minion runs before the master is done (its flanneld needs the
        # network config in etcd, its kubelet the apiserver).
        server.shell(name="The master is ready", commands=[])
        if topology.is_minion():
            deploy_minion()
        if profile() == "modern":
            # Again one operation of every host: the add-ons need the minions.
            server.shell(name="The minions are ready", commands=[])
            if topology.is_first_master():  # cluster-level
                deploy_addons()
    hoststate.read_ahead()
