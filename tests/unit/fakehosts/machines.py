"""The state of a simulated host (``Machine``): its OS, files, packages, systemd units and (on
the master) etcd's keys and the API's objects; the fresh hosts tests start from; and ``Hosts``,
every Machine of the run under way."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field
from datetime import datetime

NOW = datetime(2026, 11, 26, 12, 0, 0)
DEBIAN = ("debian", "ubuntu")
# What a simulated curl fetches from an http(s) URL that is not a release artifact (besides
# the image archives the inventory's own ``image_archives`` name, see ``served_archives``).
WEB: dict[str, bytes] = {}
# What the package sources of a fresh host name.
DEBIAN_SOURCES = (
    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
    "Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n"
    "Suites: bookworm-security\nComponents: main\n"
)
CENTOS_REPOS = (
    "[base]\nname=CentOS-$releasever - Base\n"
    "mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os\n"
    "#baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/\n"
)

# What installing a package puts on a host: its units and the users it creates.
PACKAGE_UNITS = {
    "etcd": ["etcd.service"],
    "kubernetes-master": [
        "kube-apiserver.service",
        "kube-controller-manager.service",
        "kube-scheduler.service",
    ],
    "kubernetes-node": ["kubelet.service", "kube-proxy.service"],
    "flannel": ["flanneld.service"],
    "docker": ["docker.service"],
    "chrony": ["chronyd.service", "chrony.service"],
    "firewalld": ["firewalld.service"],
    "containerd": ["containerd.service"],
    "etcd-server": ["etcd.service"],
    "haproxy": ["haproxy.service"],
}
PACKAGE_DIRS = {
    "etcd": ["/etc/etcd", "/var/lib/etcd"],
    "kubernetes-master": ["/etc/kubernetes"],
    "kubernetes-node": ["/etc/kubernetes", "/var/lib/kubelet"],
    "flannel": ["/etc/sysconfig"],
    "containerd": ["/etc/containerd"],
    "haproxy": ["/etc/haproxy"],
}
PACKAGE_USERS = {
    "kubernetes-master": "kube",
    "kubernetes-node": "kube",
    "etcd": "etcd",
    "etcd-server": "etcd",
    "haproxy": "haproxy",
}


@dataclass
class FileState:
    content: bytes
    mode: int = 0o644
    user: str = "root"
    group: str = "root"
    sha256: str | None = None  # a downloaded binary: its content stands for bytes we never see

    def digest(self) -> str:
        return self.sha256 or hashlib.sha256(self.content).hexdigest()


@dataclass
class Machine:
    os_id: str
    major: int
    minor: int = 0
    files: dict[str, FileState] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"/etc", "/tmp", "/var/lib"})
    dir_modes: dict[str, int] = field(default_factory=dict)  # those not 0755
    dir_owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # those not root:root
    packages: set[str] = field(default_factory=set)
    units: dict[str, dict] = field(default_factory=dict)  # name -> {"active", "enabled"}
    users: set[str] = field(default_factory=lambda: {"root"})
    homes: dict[str, str] = field(default_factory=dict)  # user -> home, of users we created
    cgroup: int = 2  # the cgroup version the host boots with
    images: set[str] = field(default_factory=set)  # in containerd's k8s.io namespace
    etcd: dict[tuple[int, str], str] = field(default_factory=dict)  # (api, key) -> value
    # master: etcd's auth (v3): enabled, users -> roles, roles -> [(type, key, range_end)]
    etcd_auth: dict = field(default_factory=lambda: {"enabled": False, "users": {}, "perms": {}})
    downloads: list[str] = field(default_factory=list)  # URLs fetched
    restarts: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # manifests given to kubectl apply
    deleted: list[str] = field(default_factory=list)  # manifests given to kubectl delete
    rewritten: list[str] = field(default_factory=list)  # Secrets rewritten, per config sha256
    sysctl_applied: bool = False
    unread: set[str] = field(default_factory=set)  # files written after their service started
    waited_for: list[str] = field(default_factory=list)  # checks of bounded wait loops
    stalled: set[str] = field(default_factory=set)  # URLs (or package sources) that never answer
    lost_starts: dict[str, int] = field(default_factory=dict)  # unit -> starts that fail first
    # What a running cluster adds (see ``running``): the kernel's and the API's state.
    mounts: set[str] = field(default_factory=set)  # mount points (pods' volumes, rootfs, netns)
    mountpoints: set[str] = field(default_factory=set)  # directories that are mounts of their own
    links: set[str] = field(default_factory=set)  # network interfaces kubelab's programs made
    chains: set[tuple[str, str, str]] = field(default_factory=set)  # (iptables, table, chain)
    tasks: set[str] = field(default_factory=set)  # containerd's running tasks (k8s.io)
    kube_nodes: set[str] = field(default_factory=set)  # master: the API's Node objects
    unavailable: set[str] = field(default_factory=set)  # master: Deployments never available
    kube_error: str | None = None  # master: what kubectl says when it cannot list the Nodes
    etcd_error: str | None = None  # master: what etcdctl says when it cannot read etcd
    etcd_read_errors: list[str] = field(default_factory=list)  # master: the next reads fail
    undrainable: dict[str, list[str]] = field(default_factory=dict)  # node -> pods that stay
    drained: list[str] = field(default_factory=list)  # nodes cordoned and drained
    unit_files_removed: set[str] = field(default_factory=set)  # dropped at daemon-reload
    started: dict[str, bytes] = field(default_factory=dict)  # unit -> its binary at its start
    cordoned: set[str] = field(default_factory=set)  # master: Nodes marked unschedulable
    annotated: dict[str, str] = field(default_factory=dict)  # master: Node -> kubelab.io/upgrading
    keep_cordoned: set[str] = field(default_factory=set)  # master: kubelab.io/keep-cordoned
    snapshots: list[str] = field(default_factory=list)  # master: etcd snapshots saved
    not_ready: set[str] = field(default_factory=set)  # minion units whose start never gets Ready
    unreachable: bool = False  # powered off: pyinfra cannot connect (ConnectError)
    # master: etcd's members as this member knows them (name -> peer URL), member updates
    # and adds run here ((name, url) each), the members a joining one was added at
    etcd_members: dict[str, str] = field(default_factory=dict)
    etcd_peer_updates: list[tuple[str, str]] = field(default_factory=list)
    etcd_member_adds: list[tuple[str, str, str]] = field(default_factory=list)

    def install(self, package: str):
        self.packages.add(package)
        for unit in PACKAGE_UNITS.get(package, []):
            self.units.setdefault(unit, {"active": False, "enabled": False})
        self.dirs.update(PACKAGE_DIRS.get(package, []))
        if package in PACKAGE_USERS:
            self.users.add(PACKAGE_USERS[package])

    def text(self, path: str) -> str:
        return self.files[path].content.decode()

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs or bool(self.below(path))

    def below(self, path: str) -> list[str]:
        """Files and directories strictly under ``path``."""
        prefix = path.rstrip("/") + "/"
        return [name for name in (*self.files, *self.dirs) if name.startswith(prefix)]

    def entries(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({name[len(prefix) :].split("/")[0] for name in self.below(path)})

    def remove(self, path: str, keep_top: bool = False):
        """``rm -rf --one-file-system`` (of the contents only with ``keep_top``): refuses to
        cross into a mount."""
        prefix = path.rstrip("/") + "/"
        mounted = [m for m in self.mounts if m.startswith(prefix) or (m == path and not keep_top)]
        assert not mounted, f"rm -rf --one-file-system {path}: still mounted: {mounted}"
        for name in self.below(path):
            self.files.pop(name, None)
            self.dirs.discard(name)
        if not keep_top:
            assert path not in self.mountpoints, f"rm -rf of the mount point {path}"
            self.files.pop(path, None)
            self.dirs.discard(path)
        if path == "/var/lib/etcd":  # etcd's data: its keys are gone with it
            self.etcd.clear()


class Hosts:
    """The simulated hosts of the run under way (``run_deploy`` sets them): each host's Machine
    by its name, and the image archives the simulated web serves besides WEB (URL -> archive,
    see ``served_archives``)."""

    machines: dict[str, Machine] = {}
    served: dict[str, bytes] = {}


def centos7() -> Machine:
    machine = Machine("centos", 7, 9)
    machine.files["/etc/hosts"] = FileState(b"127.0.0.1 localhost\n")
    machine.files["/etc/yum.repos.d/CentOS-Base.repo"] = FileState(CENTOS_REPOS.encode())
    machine.install("firewalld")
    machine.units["firewalld.service"] = {"active": True, "enabled": True}
    return machine


def modern(os_id: str, major: int) -> Machine:
    machine = Machine(os_id, major)
    machine.files["/etc/hosts"] = FileState(b"127.0.0.1 localhost\n")
    machine.files["/etc/resolv.conf"] = FileState(b"nameserver 192.168.122.1\n")
    if os_id in DEBIAN:
        machine.files["/etc/apt/sources.list.d/debian.sources"] = FileState(DEBIAN_SOURCES.encode())
    return machine


def debian12() -> Machine:
    return modern("debian", 12)


def ubuntu24() -> Machine:
    return modern("ubuntu", 24)


def rocky9() -> Machine:
    return modern("rocky", 9)


# The binary each unit runs: its version is the one in the URL it was fetched from.
UNIT_BINARIES = {
    "etcd.service": "/usr/local/bin/etcd",
    "kube-apiserver.service": "/usr/local/bin/kube-apiserver",
    "kube-controller-manager.service": "/usr/local/bin/kube-controller-manager",
    "kube-scheduler.service": "/usr/local/bin/kube-scheduler",
    "kube-proxy.service": "/usr/local/bin/kube-proxy",
    "kubelet.service": "/usr/local/bin/kubelet",
    "flanneld.service": "/usr/local/bin/flanneld",
    "containerd.service": "/usr/local/bin/containerd",
}


def version_of(content: bytes | None) -> str:
    """The release in a simulated binary's content (the URL it came from): ``v1.35.8``."""
    match = re.search(rb"/(v\d+\.\d+\.\d+)/", content or b"")
    return match[1].decode() if match else ""


def running_version(machine: Machine, unit: str) -> str:
    return (
        version_of(machine.started.get(unit)) if machine.units.get(unit, {}).get("active") else ""
    )


def image_archive(*references: str) -> bytes:
    """An image archive as ``ctr images export`` writes one: its index names the images."""
    index = {
        "schemaVersion": 2,
        "manifests": [{"annotations": {"io.containerd.image.name": ref}} for ref in references],
    }
    data = json.dumps(index).encode()
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return stream.getvalue()


def archive_images(content: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        index = json.load(tar.extractfile("index.json"))
    return [entry["annotations"]["io.containerd.image.name"] for entry in index["manifests"]]
