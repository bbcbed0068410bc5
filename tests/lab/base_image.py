"""The Debian base image every lab machine boots from (an overlay each), and the Debian
package repository the machines install from.

The machines reach no package archive: the packages a deploy installs on Debian 12, with
their dependencies, are downloaded once (with the base image, by the same mmdebstrap run, so
they fit exactly what the image holds) into a flat repository on this box, which the lab
serves on the bridge. A fetch from it never waits on anything outside this machine.
"""

import hashlib
import json
from pathlib import Path

from util import HERE, LAB_DIR, log, output, remove_tree, run, write

BASE = LAB_DIR / "images" / "base"
BASE_HASH = LAB_DIR / "images" / "base.sha256"
PACKAGES_REPO = LAB_DIR / "images" / "packages"
SUITE = "bookworm"
DEBIAN = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "iputils-ping",
    "procps",
    "ca-certificates",
    "less",
    "kmod",
    "firewalld",
    "netbase",  # /etc/protocols: without it firewalld exits at start ("INVALID_PROTOCOL: esp")
]
# What kubelab installs with apt on a Debian 12 host (tests/unit/test_lab_packages.py checks it).
DEPLOY_PACKAGES = [
    "chrony",
    "curl",
    "ca-certificates",
    "tar",
    "iptables",
    "conntrack",
    "socat",
    "haproxy",
]
BASE_FILES = {
    # `down` powers machines off: a service slow to stop (the kubelet's pods, etcd) may not
    # hold that up for systemd's default 90 s
    "etc/systemd/system.conf.d/10-lab.conf": "[Manager]\nDefaultTimeoutStopSec=15s\n",
    # ... nor root's user manager from an SSH login, whose stop was seen to hang in these
    # machines until its own 120 s ran out (user@.service sets it, past the default above)
    "etc/systemd/system/user@.service.d/10-lab.conf": "[Service]\nTimeoutStopSec=5s\n",
    "etc/machine-id": "",  # each node gets its own at first boot of its overlay
    "etc/resolv.conf": "# lab: no DNS; names come from /etc/hosts\n",
    "etc/apt/apt.conf.d/02lab-nolang": 'Acquire::Languages "none";\n',
    "etc/ssh/sshd_config.d/10-lab.conf": "PermitRootLogin prohibit-password\n"
    "PasswordAuthentication no\n",
    # nspawn drops CAP_SYS_TIME, so chrony.service would be skipped (ConditionCapability) while
    # `systemctl start` returns 0: run chronyd without clock control (-x) instead.
    "etc/systemd/system/chrony.service.d/10-lab-container.conf": "[Unit]\nConditionCapability=\n"
    "[Service]\nExecStart=\nExecStart=!/usr/sbin/chronyd $DAEMON_OPTS -x\n",
}
# PID 1 of every machine: readies cgroups and tunables for the kubelet, then execs systemd.
NODE_INIT = HERE / "files" / "lab-init"
NODE_INIT_PATH = "usr/local/sbin/lab-init"
BASE_LINKS = {
    f"etc/systemd/system/{wants}/{unit}": f"/lib/systemd/system/{unit}"
    for wants, unit in [
        ("multi-user.target.wants", "systemd-networkd.service"),
        ("sockets.target.wants", "systemd-networkd.socket"),
        ("network-online.target.wants", "systemd-networkd-wait-online.service"),
    ]
}


# ------------------------------------------------------------------------------------- base image


def base_recipe_hash() -> str:
    init = NODE_INIT.read_text()
    recipe = [SUITE, DEBIAN, DEBIAN_SECURITY, BASE_PACKAGES, BASE_FILES, BASE_LINKS, init]
    recipe.append(DEPLOY_PACKAGES)
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def build_base(any_running: bool) -> None:
    wanted = base_recipe_hash()
    current = BASE_HASH.read_text().strip() if BASE_HASH.exists() else None
    if current == wanted and BASE.is_dir() and (PACKAGES_REPO / "Packages").exists():
        log(f"base image cached at {BASE}")
        return
    if any_running and BASE.is_dir():
        log("base image is out of date, but machines use it: `down` then `up` rebuilds it")
        return
    log(f"building the base image ({SUITE} minbase) with mmdebstrap")
    tmp, pool = BASE.with_name("base.tmp"), PACKAGES_REPO.with_name("packages.tmp")
    for stale in (tmp, pool):
        if stale.exists():
            remove_tree(stale)
    pool.mkdir(parents=True)
    download = (
        f"apt-get install --download-only --no-install-recommends -y {' '.join(DEPLOY_PACKAGES)}"
    )
    run(
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        f'--customize-hook=chroot "$1" {download}',
        f'--customize-hook=cp "$1"/var/cache/apt/archives/*.deb {pool}/',
        SUITE,
        str(tmp),
        f"deb {DEBIAN} {SUITE} main",
        f"deb {DEBIAN} {SUITE}-updates main",
        f"deb {DEBIAN_SECURITY} {SUITE}-security main",
    )
    customize_base(tmp)
    index_packages(pool)
    BASE_HASH.unlink(missing_ok=True)
    for done, final in ((tmp, BASE), (pool, PACKAGES_REPO)):
        if final.exists():
            remove_tree(final)
        done.rename(final)
    write(BASE_HASH, wanted + "\n")
    log(f"base image: {output('du', '-sh', str(BASE)).split()[0]}")


def index_packages(pool: Path) -> None:
    """A flat repository (``deb [trusted=yes] URL ./``): the .debs, Packages, Release."""
    packages = output("apt-ftparchive", "packages", ".", cwd=pool)
    write(pool / "Packages", packages)
    write(pool / "Release", output("apt-ftparchive", "release", ".", cwd=pool))
    log(f"package repository: {len(list(pool.glob('*.deb')))} packages in {pool}")


def customize_base(root: Path) -> None:
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()  # every node gets its own
    for rel, content in BASE_FILES.items():
        write(root / rel, content)
    write(root / NODE_INIT_PATH, NODE_INIT.read_text(), 0o755)
    for rel, target in BASE_LINKS.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
