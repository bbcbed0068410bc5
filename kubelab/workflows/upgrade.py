"""Upgrading a running modern cluster to the versions its settings name: deploys/upgrade.py.

``kube_version`` (and ``etcd_version``, ``flannel_version``, ``containerd_version``,
``runc_version``, the CNI plugins' versions) changed in the inventory, then
``pyinfra inventory.py deploys/upgrade.py``. Before any host is touched, the inventory, the
settings and the request are checked, one line naming the setting and the host on the first
problem: the modern profile only; the running versions read on the master (the apiserver's
``/version`` through kubectl, every Node's kubelet and container runtime, ``etcd --version``)
must allow the step under upstream's version skew policy: one minor version at a time, no
kubelet newer than the apiserver (nor more than three minors older), no downgrade unless
``upgrade_allow_downgrade`` (then of a patch release only). Then, each step done before the
next begins:

1. master: an etcd snapshot (``etcdctl snapshot save``, bounded by ``operation_timeout``),
   downloaded to ``<pki_dir>/../backups/etcd-<UTC time>.db`` on this machine (mode 0600 in a
   0700 directory), removed from the master;
2. master: etcd's binaries when they changed (etcd restarted), then kube-apiserver (restarted;
   then its ``/readyz`` waited for, at most ``upgrade_timeout`` seconds),
   kube-controller-manager, kube-scheduler, kubectl, kube-proxy and flanneld: each new binary
   checked against its sha256, each service restarted only when its binary changed;
3. each minion in turn, the next only once the previous one is done and only while no host
   has failed: master ``kubectl cordon`` and ``kubectl drain`` (as deploys/remove_node.py:
   ``drain_timeout``, ``drain_force``); the minion's new binaries (kubelet, kube-proxy,
   flanneld, the CNI plugins, containerd, runc); its services whose binary changed restarted
   (flanneld, containerd, kubelet, kube-proxy); master: its Node Ready at the new kubelet
   version (at most ``upgrade_timeout`` seconds), then ``kubectl uncordon`` (not a Node the
   operator had cordoned before: ``kubelab.io/keep-cordoned`` remembers it for a resumed run).
4. the add-ons (``addons.deploy_upgraded_addons``): every minion holds the images of
   ``image_archives``, then the master applies the add-ons whose manifests changed (the
   releases ``dns_image`` and ``metrics_server_image`` pin).

A host whose binaries are the wanted ones and whose services run them gets no command: on a
cluster at the wanted versions the deploy changes nothing. A minion whose upgrade failed stays
cordoned and the minions after it are not started; a re-run picks up where it stopped.

The workflow's parts, as kubeadm splits its own upgrade: ``upgrade_policy`` (what may be
upgraded: the checks above), ``upgrade_plan`` (what changes on each host, read from the
components' declaration), ``upgrade_steps`` (the order of the steps, one minion at a time) and
``upgrade_operations`` (the remote commands).
"""

from pyinfra.api import deploy

from .. import engine
from ..components import addons
from ..settings import topology
from ..settings.defaults import DEFAULTS
from ..settings.validation import validate_inventory
from .refusals import Refused, hosts_in_step, require_hosts_in_step
from .upgrade_plan import plan_host
from .upgrade_policy import IN_STEP, check_request
from .upgrade_steps import master_steps, minion_turn, snapshot_steps


def refuse_several_masters():
    """The upgrade's steps run on one master (its etcd snapshot, its components restarted
    one after the other): several masters would restart their etcd members at once."""
    masters = topology.masters()
    if len(masters) > 1:
        names = ", ".join(target.name for target in masters)
        raise Refused(
            f"kubelab: deploy_upgrade upgrades a cluster of one master; this one has "
            f"{len(masters)} ({names}): nothing was changed"
        )


@deploy("Upgrade the cluster", data_defaults=DEFAULTS)
def deploy_upgrade():
    """Upgrade the running cluster to the versions of its settings (see the module's text)."""
    engine.deploy_file_is_no_module()
    require_hosts_in_step(*IN_STEP)
    validate_inventory()
    if not topology.is_cluster_host():  # validation names it
        return
    refuse_several_masters()
    check_request()
    hosts_in_step(
        name="Every host in step (no --serial, no --no-wait)", deploy=IN_STEP[0], why=IN_STEP[1]
    )
    current = engine.current_state()
    addons.named_ahead()
    plan_host()
    here_master = topology.is_master()
    snapshot_steps(current, here_master)
    master_steps(current, here_master)
    minions = topology.minions()
    for index, target in enumerate(minions):
        minion_turn(current, index, target, len(minions))
    addons.deploy_upgraded_addons()
