"""The components of the modern profile, each declared once: what the upgrade replaces and
restarts, what the reset takes away, which ports the validation keeps apart.

A component is one program kubelab installs (etcd, flanneld, containerd, runc, the CNI plugins,
a kube service, kubectl) or kubelab's own setup of a host, with:

- ``part``: the deploy that installs it (etcd, flannel, container runtime, kubelet, kube-proxy,
  control plane, prerequisites);
- ``roles``: the hosts it is on (``master``, ``minion``; the API balancer only with several
  masters and no ``api_endpoint``);
- ``service``: its systemd unit (``<service>.service``); None for a program no service of its
  own runs (kubectl; runc and the CNI plugins: the next container start uses a new one);
- ``releases``: the upstream artifacts it is installed from, each at the version a setting
  names; a new one restarts its service;
- ``config``, ``state``: what it writes (configuration and keys; data and runtime state);
- ``shared``: directories it writes into that other programs may use too, deepest first;
- ``devices``: the network interfaces it makes, from the settings;
- ``ports``: the ports it listens on whatever the settings say, and what each serves;
- ``needs_etcd``: its unit tells systemd it started only once etcd answers.

The declaration's order is the upgrade's: a host's artifacts are installed, and the master's
services upgraded, in this order.
"""

from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import NamedTuple

from ..engine.artifacts import (
    Artifact,
    cni_plugins,
    containerd_release,
    etcd_release,
    flannel_cni_plugin,
    flanneld,
    kube_binary,
    runc_release,
)
from ..settings.defaults import DEFAULTS, setting

MASTER, MINION = "master", "minion"
KUBE_CONFIG = "/etc/kubernetes"  # every kube component's certificates, kubeconfigs and configs
APT_CONFIG = "/etc/apt/apt.conf.d/80kubelab"  # apt's bounds (bounds.py)
CNI_BRIDGE = "cni0"  # the bridge plugin's, which flannel's CNI plugin delegates to


class Release(NamedTuple):
    """An upstream artifact, made for the version the setting ``version`` names."""

    make: Callable[[str], Artifact]
    version: str

    def at(self, data) -> Artifact:
        return self.make(getattr(data, self.version))


def kube(name: str) -> Release:
    return Release(partial(kube_binary, name), "kube_version")


def vxlan_device(vni) -> str:
    """flanneld's vxlan interface for the VXLAN network identifier ``vni``."""
    return f"flannel.{vni}"


def flannel_devices(data) -> tuple[str, ...]:
    """flanneld's interface: vxlan's flannel.<VNI>, udp's TUN device flannel0; host-gw makes
    none."""
    if data.flannel_backend == "vxlan":
        return (vxlan_device(data.flannel_vni),)
    return ("flannel0",) if data.flannel_backend == "udp" else ()


def cni_devices(data) -> tuple[str, ...]:
    return (CNI_BRIDGE,)


def no_devices(data) -> tuple[str, ...]:
    return ()


class Component(NamedTuple):
    """One component (its fields: the module's text)."""

    name: str
    part: str
    roles: tuple[str, ...]
    service: str | None = None
    releases: tuple[Release, ...] = ()
    config: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()
    devices: Callable[[SimpleNamespace], tuple[str, ...]] = no_devices
    ports: tuple[tuple[int, str], ...] = ()
    needs_etcd: bool = False

    def artifacts(self, data) -> list[Artifact]:
        """Its artifacts at the versions ``data`` (the settings, as attributes) names."""
        return [release.at(data) for release in self.releases]


COMPONENTS = (
    Component(
        "etcd",
        "etcd",
        (MASTER,),
        service="etcd",
        releases=(Release(etcd_release, "etcd_version"),),
        config=("/etc/default/etcd", "/etc/etcd/pki"),
        state=("/var/lib/etcd",),
        shared=("/etc/etcd",),
    ),
    Component(
        "kube-apiserver",
        "control plane",
        (MASTER,),
        service="kube-apiserver",
        releases=(kube("kube-apiserver"),),
        config=(KUBE_CONFIG,),
        needs_etcd=True,
    ),
    Component(
        "kube-controller-manager",
        "control plane",
        (MASTER,),
        service="kube-controller-manager",
        releases=(kube("kube-controller-manager"),),
        config=(KUBE_CONFIG,),
        ports=((10257, "port"),),
    ),
    Component(
        "kube-scheduler",
        "control plane",
        (MASTER,),
        service="kube-scheduler",
        releases=(kube("kube-scheduler"),),
        config=(KUBE_CONFIG,),
        ports=((10259, "port"),),
    ),
    Component(
        "kubectl", "control plane", (MASTER,), releases=(kube("kubectl"),), config=(KUBE_CONFIG,)
    ),
    Component(
        "kube-api-balancer",
        "api balancer",
        (MASTER, MINION),
        service="kube-api-balancer",
        config=("/etc/haproxy/kube-api-balancer.cfg",),
    ),
    Component(
        "kubelet",
        "kubelet",
        (MINION,),
        service="kubelet",
        releases=(kube("kubelet"),),
        config=(KUBE_CONFIG,),
        state=("/var/lib/kubelet", "/var/log/pods", "/var/log/containers"),
        ports=((10250, "port"), (10248, "health port")),
    ),
    Component(
        "kube-proxy",
        "kube-proxy",
        (MASTER, MINION),
        service="kube-proxy",
        releases=(kube("kube-proxy"),),
        config=(KUBE_CONFIG,),
        ports=((10249, "metrics port"), (10256, "health port")),
    ),
    Component(
        "flanneld",
        "flannel",
        (MASTER, MINION),
        service="flanneld",
        releases=(Release(flanneld, "flannel_version"),),
        config=("/etc/flannel/pki",),
        state=("/run/flannel",),
        shared=("/etc/flannel",),
        devices=flannel_devices,
        needs_etcd=True,
    ),
    Component(
        "cni",
        "container runtime",
        (MINION,),
        releases=(
            Release(cni_plugins, "cni_plugins_version"),
            Release(flannel_cni_plugin, "flannel_cni_plugin_version"),
        ),
        config=("/etc/cni/net.d/10-flannel.conflist",),
        state=("/var/lib/cni", "/run/netns/cni-*"),
        shared=("/etc/cni/net.d", "/etc/cni", "/opt/cni/bin", "/opt/cni"),
        devices=cni_devices,
    ),
    Component(
        "containerd",
        "container runtime",
        (MINION,),
        service="containerd",
        releases=(Release(containerd_release, "containerd_version"),),
        config=("/etc/containerd/config.toml",),
        state=("/var/lib/containerd", "/run/containerd", "/opt/containerd"),
        shared=("/etc/containerd",),
    ),
    Component(
        "runc", "container runtime", (MINION,), releases=(Release(runc_release, "runc_version"),)
    ),
    Component(
        "host",
        "prerequisites",
        (MASTER, MINION),
        config=(APT_CONFIG, "/etc/modules-load.d/kubelab.conf", "/etc/sysctl.d/90-kubelab.conf"),
        state=("/var/lib/kubelab",),
    ),
)

# The order a reset stops the services in: the node's agents and the control plane, then (the
# pods ended) the runtime, the network, the store.
STOP_ORDER = (
    "kubelet",
    "kube-proxy",
    "kube-api-balancer",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "containerd",
    "flanneld",
    "etcd",
)
# The order a minion's services restart in when several do at once (an upgrade): the network,
# the runtime, then the node's agents. The master's restart one at a time, as declared.
RESTART_ORDER = ("flanneld", "containerd", "kube-api-balancer", "kubelet", "kube-proxy")


def named(name: str) -> Component:
    return next(component for component in COMPONENTS if component.name == name)


def on(role: str) -> tuple[Component, ...]:
    """The components on a host of ``role``, as declared."""
    return tuple(component for component in COMPONENTS if role in component.roles)


def of_part(part: str) -> tuple[str, ...]:
    """The names of the components the deploy ``part`` installs, as declared."""
    return tuple(component.name for component in COMPONENTS if component.part == part)


def settings_of(target=None) -> SimpleNamespace:
    """Every setting's value for ``target`` (default: the current host), as attributes."""
    return SimpleNamespace(**{name: setting(name, target) for name in DEFAULTS})


def services_with_artifacts(role: str, data) -> list[tuple[str | None, Artifact]]:
    """A host's (service, artifact) pairs at the settings ``data``: each artifact with the
    service a new one restarts (None: none does)."""
    return [
        (component.service, artifact)
        for component in on(role)
        for artifact in component.artifacts(data)
    ]


def master_artifacts(data) -> list[Artifact]:
    """What a master fetches (modern: kube-proxy and flanneld run there too)."""
    return [artifact for _, artifact in services_with_artifacts(MASTER, data)]


def minion_artifacts(data) -> list[Artifact]:
    """What a minion fetches."""
    return [artifact for _, artifact in services_with_artifacts(MINION, data)]


def _every(field: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for c in COMPONENTS for item in getattr(c, field)))


def config_paths() -> tuple[str, ...]:
    return _every("config")


def state_paths() -> tuple[str, ...]:
    return _every("state")


def shared_dirs() -> tuple[str, ...]:
    return _every("shared")


def devices(data) -> tuple[str, ...]:
    """Every network interface the components make, at the settings ``data``."""
    return tuple(dict.fromkeys(name for c in COMPONENTS for name in c.devices(data)))


def fixed_ports(role: str) -> dict[int, str]:
    """The ports the components on a host of ``role`` listen on whatever the settings say:
    port -> what it is (``kube-proxy's health port``)."""
    return {port: f"{c.name}'s {what}" for c in on(role) for port, what in c.ports}


def port(name: str, what: str) -> int:
    """The port ``what`` (``health port``) of the component ``name``."""
    return next(number for number, serves in named(name).ports if serves == what)


# The services whose start waits on etcd (bounds.service_start names it).
NEEDS_ETCD = tuple(c.service for c in COMPONENTS if c.needs_etcd)
# The Kubernetes binaries only the master has, in the order the control plane installs them.
KUBE_MASTER_BINARIES = of_part("control plane")
