"""Run kubelab's deploys against simulated hosts, with pyinfra's @fake connector.

A ``Machine`` is the state of one host: its OS, files, packages, systemd units and (on the
master) etcd's keys. pyinfra's facts are answered from it, and every command an operation
emits is applied to it by a small interpreter that knows exactly the commands kubelab emits;
any other command fails the test. So a first run shows what a fresh host receives, and a second
run over the resulting Machines shows whether a converged cluster is left alone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import re
import shlex
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kubelab.facts import (
    ArchiveMarker,
    CgroupVersion,
    ContainerdImages,
    EtcdAuth,
    EtcdPrefix,
    EtcdValue,
    KubelabLeftovers,
    KubeNodes,
    KubeVersions,
    ManagedState,
    PackageSources,
    Several,
)
from kubelab.images import normalized
from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import ConnectError, PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.operations import run_ops
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_state
from pyinfra.facts import deb as deb_facts
from pyinfra.facts import files as file_facts
from pyinfra.facts import rpm as rpm_facts
from pyinfra.facts import server as server_facts
from pyinfra.facts import systemd as systemd_facts
from pyinfra_cli.inventory import make_inventory

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, 0, 0)
DEBIAN = ("debian", "ubuntu")
# What a simulated curl fetches from an http(s) URL that is not a release artifact (besides
# the image archives the inventory's own ``image_archives`` name, see ``served_archives``).
WEB: dict[str, bytes] = {}
# The local PKI of runs that name no pki_dir: one per test session, never the user's own.
UNIT_PKI_DIR = str(Path(tempfile.mkdtemp(prefix="kubelab-unit-")) / "pki")

# Every curl kubelab runs is bounded (see kubelab.bounds.curl).
CURL = (
    r"err=\$\(curl -fsSL --connect-timeout \d+ --speed-limit \d+ --speed-time \d+ --max-time \d+ "
    r"--retry \d+ --retry-max-time \d+"
)
CTR = r"ctr --namespace k8s.io --connect-timeout \d+s --timeout \d+s"
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
}
PACKAGE_DIRS = {
    "etcd": ["/etc/etcd", "/var/lib/etcd"],
    "kubernetes-master": ["/etc/kubernetes"],
    "kubernetes-node": ["/etc/kubernetes", "/var/lib/kubelet"],
    "flannel": ["/etc/sysconfig"],
    "containerd": ["/etc/containerd"],
}
PACKAGE_USERS = {
    "kubernetes-master": "kube",
    "kubernetes-node": "kube",
    "etcd": "etcd",
    "etcd-server": "etcd",
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


def versions_lines(machine: Machine) -> list[str]:
    """What KubeVersions' command prints on the master ``machine``."""
    lines = []
    etcd = version_of(machine.files.get("/usr/local/bin/etcd", FileState(b"")).content)
    if etcd:
        lines.append(f"etcd {etcd}")
    if machine.kube_error:
        return [*lines, f"error {machine.kube_error}"]
    api = running_version(machine, "kube-apiserver.service")
    if not api:
        return [*lines, "error The connection to the server was refused"]
    lines.append(f"api {api}")
    for name in sorted(machine.kube_nodes):
        other = SimulatedConnector.machines.get(name)
        kubelet = running_version(other, "kubelet.service") if other else ""
        runtime = running_version(other, "containerd.service") if other else ""
        unschedulable = "true" if name in machine.cordoned else ""
        runtime = f"containerd://{runtime.lstrip('v')}" if runtime else ""
        upgrading = machine.annotated.get(name, "")
        keep = "true" if name in machine.keep_cordoned else ""
        fields = [name, kubelet or "v0.0.0", runtime, unschedulable, upgrading, keep]
        lines.append(f"node {'|'.join(fields)}")
    return lines


RELEASE_FILES = {
    ("centos", 7): 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nVERSION_ID="7"\n',
    ("debian", 12): 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n',
    ("debian", 13): 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="13"\n',
    ("ubuntu", 24): 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n',
    ("ubuntu", 22): 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="22.04"\n',
    ("rocky", 9): 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.4"\n',
}


def answer_fact(machine: Machine, cls, kwargs: dict):
    """What pyinfra's fact ``cls`` reads on ``machine``."""
    path = kwargs.get("path")
    if cls is Several:
        return [answer_fact(machine, part, dict(arguments)) for part, arguments in kwargs["facts"]]
    if cls is server_facts.LinuxDistribution:
        release = RELEASE_FILES[(machine.os_id, machine.major)]
        return cls().process(["/etc/os-release", *release.splitlines(), "---"])
    if cls is server_facts.Date:
        return NOW
    if cls is server_facts.Which:
        command = kwargs.get("command")
        return f"/usr/sbin/{command}" if command in ("useradd", "usermod") else None
    if cls is server_facts.Os:
        return "Linux"
    if cls is server_facts.Users:
        return {
            name: {
                "home": machine.homes.get(name, "/root" if name == "root" else f"/var/lib/{name}"),
                "shell": "/usr/sbin/nologin",
                "group": name,
                "groups": [],
                "comment": None,
                "password": None,
            }
            for name in machine.users
        }
    if cls is server_facts.Groups:
        return sorted(machine.users)
    if cls is CgroupVersion:
        return machine.cgroup
    if cls is ContainerdImages:
        return sorted(machine.images)
    if cls is server_facts.TmpDir:
        return "/tmp"
    if cls is file_facts.File:
        state = machine.files.get(path)
        if state is None:
            return None
        return {
            "mode": int(oct(state.mode)[2:]),
            "user": state.user,
            "group": state.group,
            "size": len(state.content),
            "mtime": NOW,
        }
    if cls is file_facts.Directory:
        if path not in machine.dirs:
            return None
        user, group = machine.dir_owners.get(path, ("root", "root"))
        return {
            "mode": int(oct(machine.dir_modes.get(path, 0o755))[2:]),
            "user": user,
            "group": group,
        }
    if cls is file_facts.Sha1File:
        state = machine.files.get(path)
        return hashlib.sha1(state.content).hexdigest() if state else None
    if cls is file_facts.Sha256File:
        state = machine.files.get(path)
        return state.digest() if state else None
    if cls in (file_facts.Md5File,):
        return None
    if cls is file_facts.FileContents:
        return machine.text(path).splitlines() if path in machine.files else None
    if cls is systemd_facts.SystemdStatus:
        units = {name: unit["active"] for name, unit in machine.units.items()}
        return _only(units, kwargs.get("services"))
    if cls is systemd_facts.SystemdEnabled:
        units = {name: unit["enabled"] for name, unit in machine.units.items()}
        return _only(units, kwargs.get("services"))
    if cls is rpm_facts.RpmPackages:
        return {name: ["1"] for name in machine.packages} if machine.os_id not in DEBIAN else {}
    if cls is rpm_facts.RpmPackageProvides:
        return []
    if cls is deb_facts.DebPackages:
        return {name: ["1"] for name in machine.packages} if machine.os_id in DEBIAN else {}
    if cls is ArchiveMarker:
        return cls().process(machine.text(path).splitlines()) if path in machine.files else None
    if cls is EtcdValue:
        if machine.etcd_read_errors:  # this read fails (etcd down, too slow)
            return cls().process([f"{cls.MARK} error {machine.etcd_read_errors.pop(0)}"])
        value = machine.etcd.get((kwargs.get("api", 3), kwargs["key"]))
        return cls().process([*([value] if value else []), f"{cls.MARK} read"])
    if cls is EtcdAuth:
        return etcd_auth_answer(machine, **kwargs)
    if cls is ManagedState:
        return cls().process(managed_state_output(machine, **kwargs))
    if cls is KubelabLeftovers:
        return cls().process(leftover_lines(machine, **kwargs))
    if cls is KubeVersions:
        return cls().process(versions_lines(machine))
    if cls is KubeNodes:
        if machine.kube_error:
            return cls().process([f"error {machine.kube_error}"])
        return cls().process([f"node {name}" for name in sorted(machine.kube_nodes)])
    if cls is EtcdPrefix:
        if machine.etcd_error:
            return cls().process([f"error {machine.etcd_error}"])
        prefix = kwargs["prefix"]
        lines = []
        for (api, key), value in sorted(machine.etcd.items()):
            if api == 3 and key.startswith(prefix):
                lines += [f"line {key}", f"line {value}"]
        return cls().process(lines)
    if cls is PackageSources:
        folders = ("/etc/apt/", "/etc/yum.repos.d/")
        lines = [
            line
            for name in sorted(machine.files)
            if name.startswith(folders)
            for line in machine.text(name).splitlines()
        ]
        return cls().process(lines)
    raise AssertionError(f"fakehosts: no answer for fact {cls.__name__}({kwargs})")


def etcd_auth_answer(machine: Machine, endpoint, options, users=(), roles=()):
    """EtcdAuth: None unless etcd runs and takes the certificates etcdctl presents."""
    if not machine.units.get("etcd.service", {}).get("active"):
        return None
    if etcd_refuses(machine, options):
        return None
    auth = machine.etcd_auth
    return {
        "enabled": auth["enabled"],
        "users": {user: auth["users"].get(user) for user in users},
        "perms": {role: auth["perms"].get(role) for role in roles},
    }


def etcd_refuses(machine: Machine, options: str) -> str | None:
    """Why etcd on ``machine`` (its config files as they are) refuses etcdctl's ``options``
    (--cacert, --cert, --key): etcd's server certificate not of --cacert, or --cert not of a CA
    etcd trusts; None when it accepts them."""
    from cryptography import x509

    flags = dict(re.findall(r"--(cacert|cert|key)=(\S+)", options))
    config = next(
        (path for path in ("/etc/default/etcd", "/etc/etcd/etcd.conf") if path in machine.files),
        None,
    )
    env = dict(re.findall(r'^(ETCD_\w+)="?([^"\n]*)"?$', machine.text(config), re.M))
    if "ETCD_TRUSTED_CA_FILE" not in env:
        return None if not flags else "etcd serves plain HTTP"
    needed = [flags.get("cacert"), flags.get("cert"), flags.get("key")]
    if not all(path in machine.files for path in needed):
        return f"etcdctl's files missing: {needed}"

    def load(path):
        return x509.load_pem_x509_certificate(machine.files[path].content)

    def signed(cert, ca) -> bool:
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:
            return False
        return True

    if not signed(load(env["ETCD_CERT_FILE"]), load(flags["cacert"])):
        return "etcd's server certificate is not of etcdctl's CA"
    if not signed(load(flags["cert"]), load(env["ETCD_TRUSTED_CA_FILE"])):
        return "etcd does not trust etcdctl's certificate"
    return None


def managed_state_output(machine: Machine, paths=(), digests=(), units=(), users=()) -> list:
    """What ManagedState's command prints on ``machine``. Every active unit started at NOW;
    files it has not read yet (``Machine.unread``) were written a second later, others an hour
    earlier."""
    now = int(NOW.timestamp())
    lines = []
    for path in paths:
        state = machine.files.get(path)
        mtime = f"{now + 1 if path in machine.unread else now - 3600}.0000000000"
        if state:
            lines.append(f"F f {oct(state.mode)[2:]} {state.user} {state.group} {mtime} {path}")
        elif path in machine.dirs:
            user, group = machine.dir_owners.get(path, ("root", "root"))
            mode = oct(machine.dir_modes.get(path, 0o755))[2:]
            lines.append(f"F d {mode} {user} {group} {mtime} {path}")
    lines += [
        f"D {machine.files[path].digest()}  {path}" for path in digests if path in machine.files
    ]
    for unit in units:
        state = machine.units.get(unit)
        if state is None:
            props = [
                "ActiveState=inactive",
                "SubState=dead",
                "UnitFileState=",
                "ActiveEnterTimestamp=",
            ]
        else:
            active = state["active"]
            props = [
                f"ActiveState={'active' if active else 'inactive'}",
                f"SubState={'running' if active else 'dead'}",
                f"UnitFileState={'enabled' if state['enabled'] else 'disabled'}",
                f"ActiveEnterTimestamp={NOW:%a %Y-%m-%d %H:%M:%S}.000000 UTC"
                if active
                else "ActiveEnterTimestamp=",
            ]
            if active:
                props.append(f"Since={now}000000")
        lines += [f"U {unit} {prop}" for prop in props]
    for user in users:
        if user in machine.users:
            home = machine.homes.get(user, "/root" if user == "root" else f"/var/lib/{user}")
            lines.append(f"P {user}:x:999:999::{home}:/usr/sbin/nologin")
    return [*lines, f"N {now}"]


def leftover_lines(machine: Machine, units, paths, shared, mount_roots, links, chain_prefixes):
    """What KubelabLeftovers' command prints on ``machine``."""
    lines = []
    for unit in units:
        state = machine.units.get(unit)
        if state and state["active"]:
            lines.append(f"active {unit}")
        if state and state["enabled"]:
            lines.append(f"enabled {unit}")
    for pattern in paths:
        if "*" in pattern:
            known = {*machine.files, *machine.dirs}
            found = sorted(name for name in known if fnmatch.fnmatch(name, pattern))
        else:
            found = [pattern]
        for path in found:
            if path in machine.mountpoints:
                if machine.below(path):
                    lines.append(f"mountpoint {path}")
            elif machine.exists(path):
                lines.append(f"path {path}")
    for directory in shared:
        if machine.exists(directory):
            lines.append(f"dir {directory}")
            lines += [f"entry {directory} {entry}" for entry in machine.entries(directory)]
    lines += [f"mount {m}" for m in sorted(machine.mounts) if m.startswith(tuple(mount_roots))]
    lines += [f"link {link}" for link in links if link in machine.links]
    lines += [
        f"chain {command} {table} {chain}"
        for command, table, chain in sorted(machine.chains)
        if chain.startswith(tuple(chain_prefixes))
    ]
    return lines


def _only(units: dict, services) -> dict:
    if services is None:
        return units
    services = [services] if isinstance(services, str) else services
    return {name: value for name, value in units.items() if name in services}


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


class Interpreter:
    """Applies the commands kubelab emits to a Machine."""

    def __init__(self, machine: Machine):
        self.machine = machine

    def run(self, command: str):
        for pattern, handler in self.HANDLERS:
            match = re.fullmatch(pattern, command.strip(), re.S)
            if match:
                return handler(self, *match.groups())
        raise AssertionError(f"fakehosts: unexpected command: {command}")

    def yum_install(self, args):
        for package in shlex.split(args):
            if not package.startswith("-"):
                self.machine.install(package)

    def systemctl(self, verb, unit):
        unit = unit.strip("'\"")
        if verb == "daemon-reload":
            return
        state = self.machine.units.get(unit)
        assert state is not None, f"systemctl {verb} of a unit not installed: {unit}"
        if verb in ("start", "restart", "stop") and unit in self.machine.stalled:
            return False  # its start (or stop) timed out
        if verb in ("start", "restart") and self.machine.lost_starts.get(unit):
            self.machine.lost_starts[unit] -= 1
            return False  # it exited as it started (flanneld losing a subnet to another host)
        if verb in ("start", "restart"):
            state["active"] = True
            binary = self.machine.files.get(UNIT_BINARIES.get(unit, ""))
            self.machine.started[unit] = binary.content if binary else b""
        if verb == "restart":
            self.machine.restarts.append(unit)
        if verb in ("start", "restart"):
            self.machine.unread.clear()
        if verb == "stop":
            state["active"] = False
        if verb in ("enable", "disable"):
            state["enabled"] = verb == "enable"

    def tried(self, command, attempts):
        if self.run(command) is not False:
            return None
        unit = command.split()[2]
        again = (self.run(f"systemctl restart {unit}") for _ in range(int(attempts) - 1))
        return any(result is not False for result in again) or False

    def daemon_reload(self):
        pass

    def below(self, path):
        """The files under the directory ``path``."""
        return [name for name in self.machine.files if name.startswith(path.rstrip("/") + "/")]

    def chmod(self, recursive, mode, path):
        path = path.strip("'")
        if path in self.machine.dirs:
            self.machine.dir_modes[path] = int(mode, 8)
            for name in self.below(path) if recursive else []:
                self.machine.files[name].mode = int(mode, 8)
        else:
            self.machine.files[path].mode = int(mode, 8)

    def chown(self, recursive, owner, path):
        user, _, group = owner.partition(":")
        path = path.strip("'")
        assert user in self.machine.users, f"chown to unknown user {user}"
        if path in self.machine.dirs:
            self.machine.dir_owners[path] = (user, group or user)
            targets = self.below(path) if recursive else []
        else:
            targets = [path]
        for name in targets:
            state = self.machine.files[name]
            state.user, state.group = user, group or state.group

    def useradd(self, args):
        words = shlex.split(args)
        name = words[-1]
        assert name not in self.machine.users, f"useradd of an existing user {name}"
        self.machine.users.add(name)
        if "-d" in words:
            self.machine.homes[name] = words[words.index("-d") + 1]

    def fetch(self, dest, url):
        if url in self.machine.stalled:
            return False
        web = {**SimulatedConnector.served, **WEB}
        assert url in web, f"fakehosts: nothing at {url}"
        self.machine.downloads.append(url)
        self.machine.files[dest] = FileState(web[url])

    def import_image(self, archive, wanted):
        """ctr importing an archive (see ``image_archive``): its images, then the check."""
        assert "/usr/local/bin/ctr" in self.machine.files, "ctr is not installed"
        assert self.machine.units.get("containerd.service", {}).get("active"), "no containerd"
        content = self.machine.files.pop(archive).content
        self.machine.images.update(archive_images(content))
        return shlex.split(wanted)[0] in self.machine.images

    def mkdir(self, paths):
        self.machine.dirs.update(path.strip("'") for path in paths.split())

    def apt_install(self, args):
        if self.sources_stall():
            return False
        self.yum_install(args)

    def download(self, temp, url, sha256, rest):
        if url in self.machine.stalled:
            return False
        self.machine.downloads.append(url)
        if "tar -xf" not in rest:  # a binary
            dest = rest.rsplit(" ", 1)[1]
            self.machine.files[dest] = FileState(url.encode(), 0o755, sha256=sha256)
            return
        # an archive's members (each its own content, naming the release), then its marker
        listing = [f"{sha256}  {url.rsplit('/', 1)[1]}"]
        for member, target in re.findall(r"--no-anchored (\S+) > (\S+)\.new", rest):
            self.machine.files[target] = FileState(f"{url}#{member}".encode(), 0o755)
            listing.append(f"{self.machine.files[target].digest()}  {target}")
        marker = re.search(r"\} > (\S+)\.new && mv -f", rest)[1]
        self.machine.files[marker] = FileState("\n".join([*listing, ""]).encode())

    def private_dir(self, path):
        self.machine.dirs.add(path)
        self.machine.dir_modes[path] = 0o700

    def secret_dir(self, private, parent):
        self.machine.dirs.update({private, parent})

    def secret_move(self, user, group, temp, mode, temp2, dest):
        uploaded = self.machine.files.pop(temp)
        assert user in self.machine.users, f"chown to unknown user {user}"
        uploaded.user, uploaded.group, uploaded.mode = user, group, int(mode, 8)
        self.machine.files[dest] = uploaded

    def load_sysctl(self):
        self.machine.sysctl_applied = True

    def touch(self, path):
        self.machine.files.setdefault(path.strip("'"), FileState(b""))

    def generate_key(self, path, _new, _again, _again2):
        self.machine.files.setdefault(path, FileState(b"RSA PRIVATE KEY", mode=0o600))

    def etcdctl_write(self, api, endpoint, _verb, key, value):
        if endpoint in self.machine.stalled:
            return False
        self.machine.etcd[(int(api), shlex.split(key)[0])] = shlex.split(value)[0]

    def etcd_auth_setup(self, options, steps):
        """etcd_access.setup_command: users, the flanneld role, auth on."""
        machine = self.machine
        if not machine.units.get("etcd.service", {}).get("active"):
            return False
        if etcd_refuses(machine, options):
            return False
        auth = machine.etcd_auth
        for user in re.findall(r"e user add (\S+) --no-password", steps):
            auth["users"].setdefault(user, [])
        for user, role in re.findall(r"e user grant-role (\S+) (\S+)", steps):
            auth["users"][user] = sorted({*auth["users"][user], role})
        for role in re.findall(r"e role add ([\w-]+)", steps):
            auth["perms"].setdefault(role, [])
        for role, prefix in re.findall(
            r"e role grant-permission (\S+) --prefix=true readwrite (\S+)", steps
        ):
            prefix = shlex.split(prefix)[0]
            perm = (2, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
            auth["perms"][role] = sorted({*auth["perms"][role], perm})
        assert "root" in auth["users"] and "e auth enable" in steps
        auth["enabled"] = True

    def sources_stall(self) -> bool:
        return bool(self.machine.stalled & set(answer_fact(self.machine, PackageSources, {})))

    def apt_update(self):
        """apt-get update, failing (as APT::Update::Error-Mode any makes it) on a stalled source."""
        return not self.sources_stall()

    def wait_loop(self, check):
        self.machine.waited_for.append(check)

    def kubectl_apply(self, manifest):
        assert manifest in self.machine.files, f"kubectl apply of a missing file {manifest}"
        self.machine.applied.append(manifest)

    def addon_applied(self, pending, deployment, path):
        """An add-on's manifest applied (tried until the API accepts it), its Deployment
        waited on (never available: ``unavailable``), then the manifest in place."""
        assert pending == f"{path}.pending", (pending, path)
        if self.machine.kube_error:
            return False
        self.kubectl_apply(pending)
        self.machine.waited_for.append(f"deployment {deployment}")
        if deployment in self.machine.unavailable:
            return False
        self.machine.files[path] = self.machine.files.pop(pending)

    def secrets_rewritten(self, digest, marker):
        """Every Secret read and written back through the apiserver, then the marker."""
        if self.machine.kube_error:
            return False
        self.machine.rewritten.append(digest)
        self.machine.files[marker] = FileState(f"{digest}\n".encode())

    def addon_deleted(self, path, again):
        assert path == again and path in self.machine.files
        if self.machine.kube_error:
            return False
        self.machine.deleted.append(path)
        del self.machine.files[path]

    def stop_pods(self):
        """The kubelet's slice stopped, containerd's tasks deleted (their rootfs unmounted)."""
        if "kubepods.slice" in self.machine.units:
            self.machine.units["kubepods.slice"]["active"] = False
        if self.machine.units.get("containerd.service", {}).get("active"):
            self.machine.tasks.clear()
            self.machine.mounts = {
                m for m in self.machine.mounts if not m.startswith("/run/containerd/")
            }

    def unmount(self, pattern):
        roots = [root.replace("\\.", ".") for root in pattern.split("|")]
        self.machine.mounts = {m for m in self.machine.mounts if not m.startswith(tuple(roots))}

    def rm_rf(self, path):
        path = shlex.split(path)[0]
        self.machine.remove(path)
        if path.startswith("/etc/systemd/system/") and path.count("/") == 4:
            self.machine.unit_files_removed.add(path.rsplit("/", 1)[1])

    def rm_contents(self, path):
        self.machine.remove(shlex.split(path)[0], keep_top=True)

    def rmdir(self, path):
        path = shlex.split(path)[0]
        assert not self.machine.below(path), f"rmdir of a directory not empty: {path}"
        assert path not in self.machine.files, f"rmdir of a file: {path}"
        self.machine.dirs.discard(path)

    def reload_units(self):
        for unit in self.machine.unit_files_removed:
            self.machine.units.pop(unit, None)
        self.machine.unit_files_removed.clear()

    def delete_link(self, link, _again):
        self.machine.links.discard(link)

    def remove_chains(self, command, table, _pattern, _restore):
        self.machine.chains = {
            (c, t, chain)
            for c, t, chain in self.machine.chains
            if (c, t) != (command, table) or not chain.startswith(("KUBE-", "FLANNEL-"))
        }

    def drain(self, node, rest):
        assert node in self.machine.kube_nodes, f"drain of a node the API does not hold: {node}"
        assert "--ignore-daemonsets --delete-emptydir-data --timeout=" in rest
        if node in self.machine.undrainable and "--force --disable-eviction" not in rest:
            return False
        self.machine.drained.append(node)
        self.machine.cordoned.add(node)

    def snapshot(self, path, endpoint):
        """etcdctl snapshot save: the keys of etcd, in a file only root reads."""
        if endpoint in self.machine.stalled or not self.machine.units.get("etcd.service", {}).get(
            "active"
        ):
            return False
        content = json.dumps(sorted(f"{api} {key}" for api, key in self.machine.etcd)).encode()
        self.machine.dirs.add(path.rsplit("/", 1)[0])
        self.machine.files[path] = FileState(content, 0o600)
        self.machine.snapshots.append(path)

    def rm_f(self, path):
        self.machine.files.pop(shlex.split(path)[0], None)

    def proxy_live(self):
        self.machine.waited_for.append("/livez")
        return bool(running_version(self.machine, "kube-proxy.service"))

    def api_ready(self):
        self.machine.waited_for.append("/readyz")
        return bool(running_version(self.machine, "kube-apiserver.service"))

    def node_upgraded(self, node, wanted, uncordoned, again, keep):
        """The wait for ``node`` Ready at ``wanted`` (its kubelet restarted on that binary),
        then kubectl uncordon (not when it stays cordoned: ``keep``), its annotations removed."""
        assert again == node and node in self.machine.kube_nodes
        assert uncordoned in (None, node) and (uncordoned is None) == bool(keep)
        other = SimulatedConnector.machines[node]
        self.machine.waited_for.append(f"node {node} {wanted}")
        if running_version(other, "kubelet.service") != wanted or other.not_ready:
            return False
        if uncordoned:
            self.machine.cordoned.discard(node)
        self.machine.annotated.pop(node, None)
        self.machine.keep_cordoned.discard(node)

    def annotate(self, node, version, keep):
        assert node in self.machine.kube_nodes, f"annotate of a node the API does not hold: {node}"
        self.machine.annotated[node] = version
        if keep:
            self.machine.keep_cordoned.add(node)

    def delete_node(self, node):
        self.machine.kube_nodes.discard(node)

    def etcdctl_delete(self, endpoint, key):
        if endpoint in self.machine.stalled:
            return False
        del self.machine.etcd[(3, shlex.split(key)[0])]

    HANDLERS = [
        (
            r"systemctl stop kubepods\.slice 2>/dev/null; for id in \$\(" + CTR + r" tasks ls -q "
            r"2>/dev/null\); do " + CTR + r' tasks delete -f "\$id" >/dev/null 2>&1; done; true',
            stop_pods,
        ),
        (
            r"findmnt -rn -o TARGET \| grep -E '\^\(([^)]+)\)' \| sort -r \| while read -r m; "
            r"do .*; done; left=.*",
            unmount,
        ),
        (r"rm -rf --one-file-system (\S+)", rm_rf),
        (
            r"\[ ! -e (\S+) \] \|\| find \S+ -mindepth 1 -maxdepth 1 -exec rm -rf "
            r"--one-file-system \{\} \+",
            rm_contents,
        ),
        (r"rmdir (\S+)", rmdir),
        (
            r"ip link delete (\S+) 2>/dev/null \|\| ! ip link show (\S+) >/dev/null 2>&1",
            delete_link,
        ),
        (
            r"(ip6?tables)-save -t (\w+) \| grep -vE '([^']+)' \| (ip6?tables)-restore -w 5; "
            r"left=.*",
            remove_chains,
        ),
        (
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s cordon (\S+) 2>&1\) \|\| .*?; "
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s drain \S+ (.*?) 2>&1\) "
            r"\|\| \{ left=.*",
            drain,
        ),
        (
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s delete node (\S+) "
            r"--ignore-not-found --timeout=\d+s 2>&1\) \|\| .*",
            delete_node,
        ),
        (
            r"err=\$\(ETCDCTL_API=3 etcdctl --endpoints=(\S+)(?: --\S+)* del (\S+) "
            r"2>&1 >/dev/null\) \|\| .*",
            etcdctl_delete,
        ),
        (
            r"umask 077 && mkdir -p \S+ && err=\$\(timeout \d+ env ETCDCTL_API=3 etcdctl "
            r"--endpoints=(\S+)(?: --\S+)* snapshot save (\S+) 2>&1 >/dev/null\) \|\| .*",
            lambda self, endpoint, path: self.snapshot(path, endpoint),
        ),
        (r"rm -f (\S+)", rm_f),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s get --raw /readyz 2>&1\) && .*",
            api_ready,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until curl -fsS --max-time 2 -o /dev/null "
            r"http://127\.0\.0\.1:10256/livez 2>/dev/null; do .*",
            proxy_live,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s get node (\S+) -o jsonpath=.*? 2>&1\) && "
            r"\[ \"\$out\" = '(\S+) True' \]; do .*; done; (?:out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s uncordon (\S+) 2>&1\) && )?out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s annotate node (\S+) kubelab\.io/upgrading-"
            r"( kubelab\.io/keep-cordoned-)? 2>&1\) \|\| .*",
            node_upgraded,
        ),
        (
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s annotate node (\S+) --overwrite "
            r"kubelab\.io/upgrading=(\S+)( kubelab\.io/keep-cordoned=true)? 2>&1\) \|\| .*",
            annotate,
        ),
        (r"yum install -y (.+)", yum_install),
        (r"systemctl (start|stop|restart|enable|disable) (\S+)", systemctl),
        (r"(systemctl \S+ \S+) && exit 0; for attempt in \$\(seq 2 (\d+)\); do .*", tried),
        (r"systemctl daemon-reload", reload_units),
        (r"chmod (-R )?(\d+) (\S+)", chmod),
        (r"chown (-R )?(\S+) (\S+)", chown),
        (r"useradd (.+)", useradd),
        (r"touch (\S+)", touch),
        (r"mkdir -p (.+)", mkdir),
        (
            r"DEBIAN_FRONTEND=noninteractive apt-get -y .* install "
            r"(?:--no-install-recommends )?(.+)",
            apt_install,
        ),
        (
            rf"{CURL} -o (\S+) (\S+) 2>&1\) \|\| \{{.*?; exit 1; \}}; "
            r"echo '(\w+)  \S+' \| sha256sum -c --quiet - >/dev/null 2>&1 \|\| \{.*?\} && (.*)",
            download,
        ),
        (rf"{CURL} -o (\S+) (\S+) 2>&1\) \|\| \{{ rm -f \S+; echo .* >&2; exit 1; \}}", fetch),
        (
            rf"{CTR} images import --platform linux/amd64 "
            r"--label io.cri-containerd.pinned=pinned (\S+); imported=\$\?; rm -f \S+; "
            rf"\[ \$imported = 0 \] && {CTR} images ls -q \| grep -qxF (\S+) "
            r"\|\| \{ echo .* >&2; exit 1; \}",
            import_image,
        ),
        (r"if \[ -d /var/lib/kubelab \] && .* >> \S+/sha256sums\); fi", lambda self: None),
        (r"install -d -m 700 (\S+) && mkdir -p (\S+)", secret_dir),
        (r"install -d -m 700 (\S+)", private_dir),
        (r"chown (\w+):(\w+) (\S+) && chmod (\d+) (\S+) && mv -f \S+ (\S+)", secret_move),
        (r"test -d /proc/sys/net/bridge \|\| modprobe br_netfilter", lambda self: None),
        (r"sysctl -q -p /etc/sysctl.d/90-kubelab.conf", load_sysctl),
        (
            r"test -e (\S+) \|\| \(umask 077 && openssl genrsa -out (\S+) 2048 2>/dev/null "
            r"&& mv (\S+) (\S+)\)",
            generate_key,
        ),
        (
            r"for attempt in .*?ETCDCTL_API=(\d) etcdctl --endpoints=(\S+)(?: --\S+)* "
            r"(set|put) (\S+) ('[^']*') 2>&1 >/dev/null\) && exit 0; .*",
            etcdctl_write,
        ),
        (
            r"e\(\) \{ ETCDCTL_API=3 etcdctl --endpoints=\S+ (.*?) \"\$@\"; \}; "
            r"for attempt in \$\(seq \d+\); do err=\$\(\{ (.*?); \} 2>&1 >/dev/null\) .*",
            etcd_auth_setup,
        ),
        (r"apt-get update", apt_update),
        (r"for try in \$\(seq \d+\); do if (.+?); then exit 0; fi; sleep \d+; done; .*", wait_loop),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s apply -f (\S+) 2>&1\); do .*?; done && "
            r"end=.*? until out=\$\(\{ s=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s -n "
            r"kube-system get deployment (\S+) .*?; done && mv -f \S+ (\S+)",
            addon_applied,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s delete --ignore-not-found --timeout=\d+s -f (\S+) 2>&1\); "
            r"do .*; done "
            r"&& rm -f (\S+)",
            addon_deleted,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(secrets=\$\(\S+ "
            r"--kubeconfig \S+ --request-timeout=\d+s get secrets -A -o json\) && "
            r"if printf '%s' \"\$secrets\" \| "
            r"grep -q '\"kind\": \"Secret\"'; then printf '%s' \"\$secrets\" \| \S+ --kubeconfig "
            r"\S+ --request-timeout=\d+s replace -f -; fi 2>&1\); do .*; done && "
            r"printf '%s\\n' (\w+) > (\S+)",
            secrets_rewritten,
        ),
        (r"kubectl .*apply -f (\S+)", kubectl_apply),
    ]


class SimulatedConnector(FakeConnector):
    machines: dict[str, Machine] = {}
    served: dict[str, bytes] = {}  # URL -> image archive, see ``served_archives``

    def _sleep(self):
        pass

    def connect(self):
        if self.machines[self.host.name].unreachable:
            raise ConnectError("Could not connect (timed out)")
        return super().connect()

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        text = command if isinstance(command, str) else command.get_raw_value()
        self.executed_commands.append(text)
        self.host.kubelab_commands.append(text)
        succeeded = Interpreter(self.machines[self.host.name]).run(text) is not False
        return succeeded, CommandOutput([])

    def get_file(self, remote_filename, filename_or_io, remote_temp_filename=None, **kwargs):
        """files.get: the machine's file, written on this machine."""
        machine = self.machines[self.host.name]
        if remote_filename not in machine.files:
            return False
        data = machine.files[remote_filename].content
        if hasattr(filename_or_io, "write"):
            filename_or_io.write(data)
        else:
            Path(filename_or_io).write_bytes(data)
        self.host.kubelab_commands.append(f"(download {remote_filename})")
        return True

    def put_file(self, filename_or_io, remote_filename, remote_temp_filename=None, **kwargs):
        if hasattr(filename_or_io, "read"):
            filename_or_io.seek(0)
            data = filename_or_io.read()
        else:
            data = Path(filename_or_io).read_bytes()
        data = data.encode() if isinstance(data, str) else data
        machine = self.machines[self.host.name]
        existing = machine.files.get(remote_filename)
        if existing:
            existing.content = data
        else:
            machine.files[remote_filename] = FileState(data)
        if remote_filename.startswith("/etc/systemd/system/"):  # a unit of our own
            unit = remote_filename.rsplit("/", 1)[1]
            machine.units.setdefault(unit, {"active": False, "enabled": False})
        self.host.kubelab_uploads[remote_filename] = data
        return True


def served_archives(inventory) -> dict[str, bytes]:
    """The web server of every http(s) archive the hosts' ``image_archives`` name (the lab's
    group_data, say): each holds the image it is named for."""
    served = {}
    for target in inventory:
        archives = target.data.get("image_archives") or {}
        if not isinstance(archives, dict):
            continue
        for reference, archive in archives.items():
            if isinstance(archive, str) and archive.startswith(("http://", "https://")):
                served[archive] = image_archive(normalized(reference))
    return served


@dataclass
class Run:
    """What one deploy did: commands and uploads per host name."""

    commands: dict[str, list[str]]
    uploads: dict[str, dict[str, bytes]]
    failed: list[str] = field(default_factory=list)  # hosts that failed (expect_failures)
    facts: dict[str, list[str]] = field(default_factory=dict)  # fact classes read, in order
    operations: dict[str, int] = field(default_factory=dict)  # operations added per host

    def remote_commands(self, name: str) -> int:
        """Every command the host ran: each fact read and each operation's command."""
        return len(self.facts[name]) + len(self.commands[name])

    def changed_hosts(self) -> list[str]:
        return [name for name, cmds in self.commands.items() if cmds]


def run_deploy(
    machines: dict[str, Machine],
    deploy_func,
    inventory="inventory.py",
    data=None,
    expect_failures=False,
    check_for_changes=False,
    serial=False,
    no_wait=False,
):
    """Run ``deploy_func`` on every host of ``inventory`` (with group_data/) over ``machines``;
    a host that fails fails the test, unless ``expect_failures`` (then ``Run.failed``).
    As ``pyinfra -y`` does, unless ``check_for_changes`` (pyinfra without ``-y``: every
    operation is asked for its changes while the run is prepared, then executed); ``serial``,
    ``no_wait``: as pyinfra's ``--serial`` and ``--no-wait``."""
    state = State(check_for_changes=check_for_changes)
    with ctx_state.use(state):
        inv = make_inventory(
            str(REPO / inventory),
            override_data={"pki_dir": UNIT_PKI_DIR, **(data or {})},
            cwd=str(REPO),
            group_data_directories=[str(REPO / "group_data")],
        )
    SimulatedConnector.machines = machines
    SimulatedConnector.served = served_archives(inv)
    for target in inv:
        target.connector_cls = SimulatedConnector
    state.init(inv, Config())
    connect_all(state)
    original_get_fact = Host.get_fact

    def get_fact(self, cls, *args, **kwargs):
        name = cls.__name__  # one remote command each: pyinfra caches none
        if cls is Several:
            name += f"[{','.join(part.__name__ for part, _ in kwargs['facts'])}]"
        self.kubelab_facts.append(name)
        if machines[self.name].unreachable:  # pyinfra connects for the fact, and fails
            raise ConnectError(f"Could not connect to {self.name} (timed out)")
        return answer_fact(machines[self.name], cls, kwargs)

    Host.get_fact = get_fact
    try:
        for target in inv:
            target.kubelab_commands, target.kubelab_uploads, target.kubelab_facts = [], {}, []
        add_deploy(state, deploy_func)
        try:
            run_ops(state, serial=serial, no_wait=no_wait)
        except PyinfraError as error:  # every host failed
            if not expect_failures or "No hosts remaining" not in str(error):
                raise
    finally:
        Host.get_fact = original_get_fact
    failed = sorted(target.name for target in state.failed_hosts or ())
    assert expect_failures or not failed, f"hosts failed: {failed}"
    return Run(
        commands={t.name: t.kubelab_commands for t in inv},
        uploads={t.name: t.kubelab_uploads for t in inv},
        failed=failed,
        facts={t.name: t.kubelab_facts for t in inv},
        operations={t.name: len(t.op_hash_order) for t in inv},
    )
