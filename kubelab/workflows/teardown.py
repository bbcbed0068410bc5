"""Taking kubelab off a host (modern profile): what deploys/reset.py does on every host and
deploys/remove_node.py on each removed minion.

Five steps, each one operation (``clean_host`` runs them in this order, on every host of the
run: those it does not apply to get ``nothing``, so each step is done everywhere before the
next begins):

1. kubelab's services stopped and disabled: the kube services first; then the pods (systemd's
   ``kubepods.slice`` stopped, which ends every container, and containerd's tasks deleted, which
   ends their shims and unmounts their root filesystems); then containerd, flanneld, etcd;
2. what is still mounted under the kubelet's and containerd's directories and the pods' network
   namespaces unmounted (deepest first; lazily if busy);
3. kubelab's files removed: units, binaries, configuration, keys, state (a directory that is a
   mount point of its own, such as a bind-mounted /var/lib/kubelet, is emptied, not removed);
   directories kubelab may share with others (/etc/cni, /opt/cni/bin, ...) only when nothing
   but kubelab's files were in them;
4. the interfaces flannel and the CNI bridge made (flannel.<flannel_vni>, cni0), and every
   iptables chain named KUBE-* or FLANNEL-* (filter, nat, mangle; IPv4 and IPv6) with the rules
   jumping to it;
5. the cluster mark (``cluster_mark``), last: until then a reset stopped half-way runs again.

Every step reads what is there first (``KubelabLeftovers``) and does only what is left to do: on
a clean host nothing runs. Nothing else is touched: no distribution package, no user, no file
outside these paths, no rule of another chain.
"""

import posixpath
import shlex
from types import SimpleNamespace

from pyinfra import host
from pyinfra.api import operation

from .. import engine
from ..components import catalog
from ..engine import bounds
from ..engine.common import step
from ..engine.facts import KubelabLeftovers
from ..engine.shell import or_fail
from ..pki import cluster_mark
from ..settings.defaults import DEFAULTS

# What the components declare (``components``), in the order the reset takes it away.
SERVICES = catalog.STOP_ORDER
PODS_SLICE = "kubepods.slice"  # the kubelet's (systemd cgroup driver): every pod's containers
UNIT_DIR = "/etc/systemd/system"
CONFIG = catalog.config_paths()
STATE = catalog.state_paths()
# Directories kubelab creates but another program may use too: removed only when they would
# hold nothing but kubelab's files (deepest first).
SHARED_DIRS = catalog.shared_dirs()
NETNS_PREFIX = "/run/netns/cni-"
MOUNT_ROOTS = ("/var/lib/kubelet/", "/var/lib/containerd/", "/run/containerd/", "/run/netns/cni-")
CHAIN_PREFIXES = ("KUBE-", "FLANNEL-")
STOP_BOUND = "systemd's stop timeout, 90 s per unit unless its unit sets one"
# Seconds each umount may take: one of a dead network mount can block for good.
UMOUNT_TIMEOUT = 10


def binaries() -> tuple[str, ...]:
    """Every program kubelab installs, on either role (their paths do not depend on versions)."""
    data = SimpleNamespace(**DEFAULTS)
    paths = []
    for artifact in catalog.master_artifacts(data) + catalog.minion_artifacts(data):
        if artifact.members:
            paths += [f"{artifact.install_path}/{name}" for _, name in artifact.members]
        else:
            paths.append(artifact.install_path)
    return tuple(dict.fromkeys(paths))


def unit_files() -> tuple[str, ...]:
    """kubelab's units, and the links ``systemctl enable`` made (gone with ``disable``, listed
    for a host where the unit file went first)."""
    files = []
    for name in SERVICES:
        files += [
            f"{UNIT_DIR}/{name}.service",
            f"{UNIT_DIR}/multi-user.target.wants/{name}.service",
        ]
    return tuple(files)


def paths() -> tuple[str, ...]:
    """Every path kubelab may have put on a host, in the order they are removed."""
    return (*unit_files(), *binaries(), *CONFIG, *STATE)


def units() -> tuple[str, ...]:
    return (*(f"{name}.service" for name in SERVICES), PODS_SLICE)


def links(target=None) -> tuple[str, ...]:
    """The interfaces kubelab's components make on ``target`` (flannel.<flannel_vni>, cni0)."""
    return catalog.devices(catalog.settings_of(target))


def leftovers_fact(target=None) -> tuple:
    """The fact (and its arguments) telling what of kubelab is on ``target`` (default: the
    current host)."""
    return KubelabLeftovers, {
        "units": units(),
        "paths": paths(),
        "shared": SHARED_DIRS,
        "mount_roots": MOUNT_ROOTS,
        "links": links(target),
        "chain_prefixes": CHAIN_PREFIXES,
    }


def leftovers(target=None) -> dict:
    cls, arguments = leftovers_fact(target)
    return engine.fact(cls, target, **arguments)


def holds_kubelab(target) -> bool:
    """Whether anything of kubelab's is on ``target`` (a service, a path, a mount, an
    interface, an iptables chain)."""
    found = leftovers(target)
    kinds = ("active", "enabled", "paths", "mountpoints", "mounts", "links", "chains")
    return any(found[kind] for kind in kinds)


def _problem(what: str) -> str:
    return f"kubelab: {host.name}: {what}"


# 1. Services -------------------------------------------------------------------------------


def pods_stopped_command() -> str:
    """Shell: every pod's containers ended (systemd stops the kubelet's slice), then
    containerd's tasks deleted, so their shims end and unmount the root filesystems."""
    ctr = bounds.ctr("k8s.io")
    return (
        f"systemctl stop {PODS_SLICE} 2>/dev/null; "
        f'for id in $({ctr} tasks ls -q 2>/dev/null); do {ctr} tasks delete -f "$id" '
        ">/dev/null 2>&1; done; true"
    )


@operation()
def services_stopped(found: dict):
    """kubelab's services stopped and disabled, the pods ended before containerd stops."""
    active, enabled = set(found["active"]), set(found["enabled"])
    commands = []
    for name in SERVICES:
        unit = f"{name}.service"
        if name == "containerd" and ({PODS_SLICE, unit} & active):
            commands.append(pods_stopped_command())
        if unit in active:
            commands.append(f"systemctl stop {unit}")
        if unit in enabled:
            commands.append(f"systemctl disable {unit}")
    if not commands:
        host.noop("no kubelab service is running or enabled")
    yield from commands


# 2. Mounts ---------------------------------------------------------------------------------


def unmount_command() -> str:
    """Shell: every mount under MOUNT_ROOTS unmounted, deepest first (lazily when busy or
    when umount does not return within UMOUNT_TIMEOUT s); one line naming those that stay."""
    pattern = "|".join(root.replace(".", "\\.") for root in MOUNT_ROOTS)
    listed = f"findmnt -rn -o TARGET | grep -E '^({pattern})'"
    bounded = f"timeout -k 2 {UMOUNT_TIMEOUT} umount"
    problem = _problem(f"still mounted after umount (each at most {UMOUNT_TIMEOUT} s): ")
    return (
        f"{listed} | sort -r | while read -r m; do m=$(printf '%b' \"$m\"); "
        f'{bounded} "$m" 2>/dev/null || {bounded} -l "$m"; done; '
        f'left=$({listed} | tr "\\n" " "); [ -z "$left" ] || ' + or_fail(problem, '"$left"')
    )


@operation()
def pod_mounts_unmounted(found: dict):
    """The pods' mounts gone (volumes, root filesystems, network namespaces)."""
    running = {"kubelet.service", "containerd.service", PODS_SLICE} & set(found["active"])
    if not found["mounts"] and not running:
        host.noop("nothing of the pods is mounted")
        return
    yield unmount_command()


# 3. Files ----------------------------------------------------------------------------------


def removable_dirs(found: dict, removed: set[str]) -> list[str]:
    """The shared directories that hold nothing once ``removed`` (paths) are gone, deepest
    first."""
    gone = set(removed)
    empty = []
    for directory in sorted(found["entries"], key=lambda d: -d.count("/")):
        entries = found["entries"][directory]
        if all(posixpath.join(directory, entry) in gone for entry in entries):
            empty.append(directory)
            gone.add(directory)
    return [directory for directory in SHARED_DIRS if directory in empty]


@operation()
def files_removed(found: dict):
    """kubelab's files gone; its shared directories too when nothing else is in them."""
    present, emptied = found["paths"], found["mountpoints"]
    # a pod's network namespace: the file its namespace was mounted on (unmounted by now, or
    # gone with its sandbox) goes too
    netns = [path for path in emptied if path.startswith(NETNS_PREFIX)]
    emptied = [path for path in emptied if path not in netns]
    commands = [f"rm -rf --one-file-system {shlex.quote(path)}" for path in present]
    commands += [f"rm -f {shlex.quote(path)}" for path in netns]
    commands += [
        f"[ ! -e {shlex.quote(path)} ] || "
        f"find {shlex.quote(path)} -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {{}} +"
        for path in emptied
    ]
    commands += [f"rmdir {shlex.quote(d)}" for d in removable_dirs(found, set(present))]
    if any(path.startswith(f"{UNIT_DIR}/") for path in present):
        commands.append("systemctl daemon-reload")
    if not commands:
        host.noop("no file of kubelab's is left")
    yield from commands


# 4. Network --------------------------------------------------------------------------------


def link_deleted_command(link: str) -> str:
    return f"ip link delete {link} 2>/dev/null || ! ip link show {link} >/dev/null 2>&1"


def chains_removed_command(command: str, table: str) -> str:
    """Shell: ``table`` of ``command`` (iptables, ip6tables) without the KUBE-* and FLANNEL-*
    chains and every rule in or jumping to them, restored in one go; one line if any stays."""
    names = "|".join(prefix.rstrip("-") for prefix in CHAIN_PREFIXES)
    ours = f"^(:|-A )({names})-| -[jg] ({names})-"
    left = f"{command} -w 5 -t {table} -S | grep -E '^-N ({names})-'"
    problem = _problem(f"{command} table {table} still holds chains: ")
    return (
        f"{command}-save -t {table} | grep -vE '{ours}' | {command}-restore -w 5; "
        f'left=$({left} | tr "\\n" " "); [ -z "$left" ] || ' + or_fail(problem, '"$left"')
    )


@operation()
def network_cleaned(found: dict):
    """flannel's and the CNI bridge's interfaces deleted, kube-proxy's, the kubelet's and
    flannel's iptables chains gone."""
    commands = [link_deleted_command(link) for link in found["links"]]
    tables = dict.fromkeys((command, table) for command, table, _ in found["chains"])
    commands += [chains_removed_command(command, table) for command, table in tables]
    if not commands:
        host.noop("no interface or iptables chain of kubelab's is left")
    yield from commands


def clean_host(applies: bool, only_if=None):
    """The four steps, on this host when ``applies``, else ``nothing`` (see the module);
    ``only_if``: a callable asked before each step runs (pyinfra's ``_if``)."""
    found = leftovers() if applies else KubelabLeftovers.empty()
    gate = {"_if": only_if} if only_if is not None else {}
    label = "Stop and disable kubelab's services (the pods first, then containerd)"
    bounds.waits_on(
        step(applies, services_stopped, name=label, found=found, **gate),
        label,
        f"kubelab's services to stop ({STOP_BOUND})",
    )
    step(
        applies,
        pod_mounts_unmounted,
        name="Unmount the pods' volumes, root filesystems and network namespaces",
        found=found,
        **gate,
    )
    step(
        applies,
        files_removed,
        name="Remove kubelab's units, binaries, configuration, keys and state",
        found=found,
        **gate,
    )
    step(
        applies,
        network_cleaned,
        name=f"Delete {' and '.join(links())}, and the KUBE-* and FLANNEL-* iptables chains",
        found=found,
        **gate,
    )
    step(
        applies and cluster_mark.mark_of() is not None,
        cluster_mark.mark_removed,
        name=f"Remove the cluster mark {cluster_mark.MARK} (last: a reset stopped half-way "
        "can run again)",
        **gate,
    )
