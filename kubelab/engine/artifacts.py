"""The upstream release artifacts of the modern profile and where each is installed (which
component installs which: ``components``).

A mirror holds every artifact under ``<mirror>/<upstream host>/<upstream path>``, so mirroring
is a plain copy (``wget -x -i urls.txt`` writes exactly that tree).
"""

from typing import NamedTuple
from urllib.parse import urlsplit

CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")  # what flannel delegates to


class Artifact(NamedTuple):
    name: str  # file name of the download, the key of ``artifact_sha256`` pins
    url: str  # upstream URL
    install_path: str  # a binary's path, or the directory an archive's members go to
    members: tuple[tuple[str, str], ...] = ()  # an archive's (member, installed name) pairs
    sums_url: str | None = None  # a sha256sum listing, where upstream has no <url>.sha256
    version: str = ""  # the release, for pins of one release (``<name>@<version>``)


def pin_keys(artifact: Artifact) -> tuple[str, ...]:
    """The ``artifact_sha256`` keys that pin ``artifact``, the most precise first: its name
    and release (``kubelet@v1.35.8``: file names such as ``kubelet`` are the same in every
    release), then its name alone."""
    return (
        (f"{artifact.name}@{artifact.version}", artifact.name)
        if artifact.version
        else (artifact.name,)
    )


def checksum_url(artifact: Artifact) -> str:
    """Where upstream publishes the artifact's sha256."""
    return artifact.sums_url or artifact.url + ".sha256"


def kube_binary(name: str, version: str, arch: str = "amd64") -> Artifact:
    return Artifact(
        name=name,
        url=f"https://dl.k8s.io/{version}/bin/linux/{arch}/{name}",
        install_path=f"/usr/local/bin/{name}",
        version=version,
    )


def flanneld(version: str, arch: str = "amd64") -> Artifact:
    name = f"flanneld-{arch}"
    return Artifact(
        name=name,
        url=f"https://github.com/flannel-io/flannel/releases/download/{version}/{name}",
        install_path="/usr/local/bin/flanneld",
        version=version,
    )


def cni_plugins(version: str, arch: str = "amd64") -> Artifact:
    name = f"cni-plugins-linux-{arch}-{version}.tgz"
    return Artifact(
        name=name,
        url=f"https://github.com/containernetworking/plugins/releases/download/{version}/{name}",
        install_path="/opt/cni/bin",
        members=tuple((plugin, plugin) for plugin in CNI_PLUGINS),
        version=version,
    )


def flannel_cni_plugin(version: str, arch: str = "amd64") -> Artifact:
    name = f"cni-plugin-flannel-linux-{arch}-{version}.tgz"
    return Artifact(
        name=name,
        url=f"https://github.com/flannel-io/cni-plugin/releases/download/{version}/{name}",
        install_path="/opt/cni/bin",
        members=((f"flannel-{arch}", "flannel"),),
        version=version,
    )


def etcd_release(version: str, arch: str = "amd64") -> Artifact:
    """etcd from upstream (every modern master)."""
    name = f"etcd-{version}-linux-{arch}.tar.gz"
    base = f"https://github.com/etcd-io/etcd/releases/download/{version}"
    folder = f"etcd-{version}-linux-{arch}"
    return Artifact(
        name=name,
        url=f"{base}/{name}",
        install_path="/usr/local/bin",
        members=((f"{folder}/etcd", "etcd"), (f"{folder}/etcdctl", "etcdctl")),
        sums_url=f"{base}/SHA256SUMS",
        version=version,
    )


def download_url(url: str, mirror: str | None) -> str:
    """Where a host fetches the upstream ``url``: upstream itself, or its copy on the mirror."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def containerd_release(version: str, arch: str = "amd64") -> Artifact:
    """containerd from upstream (every modern minion)."""
    name = f"containerd-{version.lstrip('v')}-linux-{arch}.tar.gz"
    url = f"https://github.com/containerd/containerd/releases/download/{version}/{name}"
    return Artifact(
        name=name,
        url=url,
        install_path="/usr/local/bin",
        members=tuple(
            (f"bin/{binary}", binary) for binary in ("containerd", "containerd-shim-runc-v2", "ctr")
        ),
        sums_url=f"{url}.sha256sum",
        version=version,
    )


def runc_release(version: str, arch: str = "amd64") -> Artifact:
    base = f"https://github.com/opencontainers/runc/releases/download/{version}"
    return Artifact(
        name=f"runc.{arch}",
        url=f"{base}/runc.{arch}",
        install_path="/usr/local/sbin/runc",
        sums_url=f"{base}/runc.sha256sum",
        version=version,
    )
