"""A minion's container runtime: upstream's containerd and runc under kubelab's unit, with
flannel's CNI config and plugins.

Every supported distribution packages a containerd older than Kubernetes 1.35 supports (2.2.0+,
2.1.5+, 1.7.28+: Debian 12 has 1.6.20, Debian 13 1.7.24) or none (EL 8/9), so every host gets
upstream's release.
"""

from pyinfra.api import deploy

from ..engine import downloads
from ..engine.artifacts import cni_plugins, containerd_release, flannel_cni_plugin, runc_release
from ..engine.common import place, service
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting


def runtime_template(path: str, **extra):
    return place(
        path,
        cluster_name=setting("cluster_name"),
        node_name=topology.node_name(),
        **extra,
    )


@deploy("Container runtime", data_defaults=DEFAULTS)
def deploy_container_runtime():
    """containerd with the systemd cgroup driver, and flannel's CNI config and plugins."""
    containerd = downloads.install(containerd_release(setting("containerd_version")))
    # runc runs once per container start: a new one needs no containerd restart.
    downloads.install(runc_release(setting("runc_version")))
    downloads.install(cni_plugins(setting("cni_plugins_version")))
    downloads.install(flannel_cni_plugin(setting("flannel_cni_plugin_version")))
    cni = runtime_template("/etc/cni/net.d/10-flannel.conflist")
    config = runtime_template(
        "/etc/containerd/config.toml",
        sandbox_image=setting("sandbox_image"),
        restrict_oom_score_adj=setting("containerd_restrict_oom_score_adj"),
    )
    unit = runtime_template("/etc/systemd/system/containerd.service")
    service("containerd", changed=[containerd, config, cni], units=[unit])
