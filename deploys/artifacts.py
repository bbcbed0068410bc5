"""The upstream release artifacts of the modern profile and where each is installed.

A mirror holds every artifact under ``<mirror>/<upstream host>/<upstream path>``, so mirroring
is a plain copy (``wget -x -i urls.txt`` writes exactly that tree).
"""

from typing import NamedTuple
from urllib.parse import urlsplit

KUBE_MASTER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
KUBE_MINION_BINARIES = ("kubelet", "kube-proxy")


class Artifact(NamedTuple):
    name: str  # file name of the download, the key of ``artifact_sha256`` pins
    url: str  # upstream URL
    install_path: str  # a binary's path, or the directory an archive unpacks into
    archive: bool = False
    members: tuple[str, ...] = ()  # archive members to install (all when empty)


def kube_binary(name: str, version: str, arch: str = "amd64") -> Artifact:
    return Artifact(
        name=name,
        url=f"https://dl.k8s.io/{version}/bin/linux/{arch}/{name}",
        install_path=f"/usr/local/bin/{name}",
    )


def flanneld(version: str, arch: str = "amd64") -> Artifact:
    name = f"flanneld-{arch}"
    return Artifact(
        name=name,
        url=f"https://github.com/flannel-io/flannel/releases/download/{version}/{name}",
        install_path="/usr/local/bin/flanneld",
    )


def cni_plugins(version: str, arch: str = "amd64") -> Artifact:
    name = f"cni-plugins-linux-{arch}-{version}.tgz"
    return Artifact(
        name=name,
        url=f"https://github.com/containernetworking/plugins/releases/download/{version}/{name}",
        install_path="/opt/cni/bin",
        archive=True,
        members=("bridge", "host-local", "loopback", "portmap"),
    )


def flannel_cni_plugin(version: str, arch: str = "amd64") -> Artifact:
    name = f"cni-plugin-flannel-linux-{arch}-{version}.tgz"
    return Artifact(
        name=name,
        url=f"https://github.com/flannel-io/cni-plugin/releases/download/{version}/{name}",
        install_path="/opt/cni/bin/flannel",
        archive=True,
        members=(f"flannel-{arch}",),
    )


def master_artifacts(data) -> list[Artifact]:
    return [kube_binary(name, data.kube_version) for name in KUBE_MASTER_BINARIES] + [
        flanneld(data.flannel_version),
    ]


def minion_artifacts(data) -> list[Artifact]:
    return [kube_binary(name, data.kube_version) for name in KUBE_MINION_BINARIES] + [
        flanneld(data.flannel_version),
        cni_plugins(data.cni_plugins_version),
        flannel_cni_plugin(data.flannel_cni_plugin_version),
    ]


def download_url(artifact: Artifact, mirror: str | None) -> str:
    """The URL a host downloads ``artifact`` from: upstream, or its copy on the mirror."""
    if not mirror:
        return artifact.url
    parts = urlsplit(artifact.url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"
