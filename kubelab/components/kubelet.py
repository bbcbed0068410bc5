"""The kubelet of a modern minion, told about the host's cgroup version.

Kubernetes 1.35 refuses a cgroup v1 host unless the kubelet's config says ``failCgroupV1:
false``; kubelab says so on such hosts (and warns: cgroup v1 is in maintenance mode) rather than
leave a minion whose kubelet never starts.
"""

from pyinfra import host, logger
from pyinfra.api import deploy

from .. import engine
from ..engine.common import place, service
from ..engine.facts import CgroupVersion
from ..pki.certificates import deploy_kubelet_certificates
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from .coredns import RESOLV_CONF, cluster_dns_ip, resolv_conf
from .kube_services import install_kube_binaries, unit


def cgroup_v1() -> bool:
    """Whether this host runs cgroup v1 (or hybrid); warns once per host and run."""
    if engine.fact(CgroupVersion) == 2:
        return False
    warned = engine.run_cache("cgroup v1 warned")
    if host.name not in warned:
        warned[host.name] = True
        logger.warning(
            f"kubelab: {host.name} uses cgroup v1: its kubelet runs with failCgroupV1: false, "
            "supported by Kubernetes 1.35 only in maintenance mode"
        )
    return True


@deploy("kubelet", data_defaults=DEFAULTS)
def deploy_kubelet():
    binary = install_kube_binaries(["kubelet"])["kubelet"]
    certificates = deploy_kubelet_certificates()
    config = place(
        "/etc/kubernetes/kubelet-config.yaml",
        cluster_name=setting("cluster_name"),
        node_name=topology.node_name(),
        cluster_domain=setting("cluster_domain"),
        cluster_dns_ip=cluster_dns_ip(),
        resolv_conf=None if resolv_conf() == RESOLV_CONF else resolv_conf(),
        cgroup_v1=cgroup_v1(),
    )
    service(
        "kubelet",
        changed=[binary, config, *certificates],
        units=[unit("kubelet", node_name=topology.node_name(), address=topology.address())],
    )
