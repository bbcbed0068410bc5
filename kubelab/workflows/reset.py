"""Resetting the cluster (modern profile): deploys/reset.py.

``reset_cluster=<cluster_name>`` confirms it; anything else, or nothing, stops the run with one
line before any host is touched. Then every host loses everything kubelab put there
(``teardown``: services stopped and disabled, the pods ended, their mounts, units, binaries,
configuration, keys, etcd's data, the kubelet's and containerd's state with the images it
loaded, CNI's config and state, flannel.<flannel_vni> and cni0, the KUBE-* and FLANNEL-*
iptables chains).
No distribution package, user or file outside kubelab's paths is touched.

The local PKI stays, so ``deploys/cluster.py`` rebuilds the cluster under the same CA; with
``reset_pki=<cluster_name>`` too, the files kubelab wrote in ``pki_dir`` (then the directory,
when nothing else is in it; what else is there stays and is named) and the admin kubeconfig
beside it are deleted on this machine at the end (only when every host was reset), and the
rebuild mints a new CA. With the hosts holding no CA any more, the rebuild is allowed to
(certificates.cluster_pki).

Only hosts marked as this cluster's are reset (``cluster_mark``): a host marked as another
cluster's, or holding kubelab's files without a mark, stops the run before any host is touched.
"""

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import python

from .. import engine
from ..engine.common import step
from ..pki import certificates, cluster_mark, pki_files
from ..pki.admin_kubeconfig import user_kubeconfig_path
from ..settings import topology
from ..settings.defaults import DEFAULTS, fail, setting
from ..settings.profiles import require_modern
from ..settings.validation import validate_inventory
from . import teardown


def check_request():
    """``reset_cluster`` (and ``reset_pki`` if set) is this cluster's name, on modern."""
    master = topology.master()
    name = setting("cluster_name", master)
    require_modern("reset_cluster", master, "resetting", ", built from CentOS 7's packages")
    confirm = setting("reset_cluster", master)
    if confirm is None:
        fail(
            "reset_cluster",
            master,
            f"unset: a reset removes the cluster {name!r} from every host, its etcd data with "
            f"it; confirm with reset_cluster={name}",
        )
    if confirm != name:
        fail(
            "reset_cluster",
            master,
            f"{confirm!r} is not this cluster's name {name!r} (cluster_name): nothing reset",
        )
    pki = setting("reset_pki", master)
    if pki is not None and pki != name:
        fail(
            "reset_pki",
            master,
            f"{pki!r} is not this cluster's name {name!r} (cluster_name): set reset_pki={name} "
            "to delete the local PKI too, or leave it unset to keep it",
        )


def first_facts(target=None) -> list:
    """What a reset reads first on ``target`` (default: the current host), in one command: its
    OS, its cluster mark and what of kubelab is on it."""
    return [(LinuxDistribution, {}), cluster_mark.FACT, teardown.leftovers_fact(target)]


def this_cluster() -> tuple[str, str | None]:
    """This cluster's identity as the controller knows it: its name and its CA's sha256."""
    name = setting("cluster_name", topology.master())
    return name, pki_files.ca_fingerprint(certificates.pki_directory())


def local_pki_paths() -> list:
    """The local PKI directory and the admin kubeconfig beside it, those that exist."""
    directory = certificates.pki_directory()
    return [path for path in (directory, user_kubeconfig_path(directory)) if path.exists()]


def delete_local_pki(state, host, paths):
    """python.call: the local PKI deleted, when every host was reset."""
    failed = sorted(target.name for target in state.failed_hosts)
    if failed:
        logger.error(
            f"kubelab: the local PKI {paths[0]} is kept: the reset failed on {', '.join(failed)}"
            " (re-run the reset; reset_pki deletes it once every host is reset)"
        )
        return False
    for path in paths:
        if path.is_dir():
            left = pki_files.delete_files(path)
            if left:
                logger.warning(
                    f"kubelab: kept {path} and in it what kubelab did not write there: "
                    f"{', '.join(left)}"
                )
        else:
            path.unlink(missing_ok=True)
    certificates._open.cache_clear()  # a rebuild in this process starts without it
    logger.info(f"kubelab: deleted the local PKI: {', '.join(str(p) for p in paths)}")
    return True


@deploy("Reset the cluster", data_defaults=DEFAULTS)
def deploy_reset():
    """Remove everything kubelab put on every host (see the module's text)."""
    engine.deploy_file_is_no_module()
    for target in sorted(topology.cluster_hosts(), key=lambda target: target != host):
        engine.prefetch(target, first_facts(target))  # this host's first
    validate_inventory()
    if not topology.is_cluster_host():  # validation names it
        return
    check_request()
    cluster_mark.refuse_others(
        topology.cluster_hosts(), this_cluster(), "reset", teardown.holds_kubelab
    )
    teardown.clean_host(True)
    master = topology.is_first_master()  # the local PKI is deleted once
    paths = local_pki_paths() if master and setting("reset_pki") else []
    step(
        bool(paths),
        python.call,
        name="Delete the local PKI and the admin kubeconfig (reset_pki)",
        function=delete_local_pki,
        paths=paths,
    )
