"""What the lab needs of this Linux box: root, no forwarding, packages, kernel modules."""

import os
from pathlib import Path

from util import KEY, LAB_DIR, RUN, LabError, log, output, run, write

HOST_PACKAGES = [
    "systemd-container",
    "mmdebstrap",
    "apt-utils",  # apt-ftparchive: the index of the lab's package repository
    "openssh-client",
    "iproute2",
    "kmod",
    # building runc and flanneld (cgo): a C toolchain and libseccomp, linked statically
    "gcc",
    "libc6-dev",
    "libseccomp-dev",
    "pkg-config",
]
# The machines share this box's root user, and with it its limit of inotify instances (128 by
# default): a dozen machines' kubelets (cAdvisor, certificate watchers), kube-proxies, containerd
# and systemd exhaust it, and kubelet and kube-proxy then exit ("too many open files").
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_INSTANCES_PER_MACHINE = 64
MODULES = {
    "br_netfilter": lambda: Path("/proc/sys/net/bridge").is_dir(),
    "overlay": lambda: "\toverlay\n" in Path("/proc/filesystems").read_text(),
}


# ------------------------------------------------------------------------------------ host set-up


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates a bridge, mounts and machines)")
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "0":
        raise LabError(
            "this host forwards IPv4 (net.ipv4.ip_forward=1): lab traffic could leave the "
            "machine through it; the lab only runs on a host that does not forward"
        )


def install_host_packages() -> None:
    query = ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *HOST_PACKAGES]
    status = run(*query, check=False, capture_output=True).stdout.splitlines()
    installed = {line.split()[0] for line in status if line.endswith(" installed")}
    missing = [p for p in HOST_PACKAGES if p not in installed]
    if not missing:
        return
    log(f"installing host packages: {' '.join(missing)}")
    # Keep package scripts (apt-cacher-ng's init) from starting services on *:3142.
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        write(policy, "#!/bin/sh\nexit 101\n", 0o755)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run("apt-get", "update", "-q", env=env)
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, env=env)
    finally:
        if made_policy:
            policy.unlink()


def load_modules() -> None:
    record = RUN / "modules-loaded"
    for name, present in MODULES.items():
        if Path("/sys/module", name).exists() or present():
            continue
        if run("modprobe", name, check=False).returncode != 0:
            raise LabError(f"kernel module {name} is needed by the nodes and cannot be loaded")
        log(f"loaded kernel module {name}")
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a") as f:
            f.write(f"{name}\n")


def unload_modules() -> None:
    record = RUN / "modules-loaded"
    if not record.exists():
        return
    for name in reversed(record.read_text().split()):
        refcnt = Path("/sys/module", name, "refcnt")
        unused = refcnt.exists() and refcnt.read_text().strip() == "0"
        if unused and run("modprobe", "-r", name, check=False).returncode == 0:
            log(f"unloaded kernel module {name}")
            continue
        log(f"kernel module {name} is in use; left loaded")
    record.unlink()


def raise_inotify_instances(machines: int) -> None:
    """At least INOTIFY_INSTANCES_PER_MACHINE per machine besides the box's own; the box's
    value is kept in RUN and put back by ``restore_inotify_instances`` (lab down)."""
    current = int(INOTIFY_INSTANCES.read_text())
    wanted = 128 + INOTIFY_INSTANCES_PER_MACHINE * machines
    if current >= wanted:
        return
    record = RUN / "inotify-instances"
    if not record.exists():
        write(record, f"{current}\n")
    INOTIFY_INSTANCES.write_text(f"{wanted}\n")
    log(f"fs.inotify.max_user_instances: {current} -> {wanted} for {machines} machines")


def restore_inotify_instances() -> None:
    record = RUN / "inotify-instances"
    if record.exists():
        original = record.read_text().strip()
        INOTIFY_INSTANCES.write_text(f"{original}\n")
        log(f"fs.inotify.max_user_instances: back to {original}")
        record.unlink()


def check_state_filesystem() -> None:
    # containerd's overlayfs snapshotter and the nodes' overlay upper dirs cannot live on overlayfs.
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    fstype = output("stat", "-f", "-c", "%T", str(LAB_DIR)).strip()
    if fstype == "overlayfs":
        raise LabError(f"{LAB_DIR} is on overlayfs; set LAB_DIR to a directory on ext4/xfs/tmpfs")


def ensure_key() -> None:
    if not KEY.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubelab-lab", "-f", str(KEY))
