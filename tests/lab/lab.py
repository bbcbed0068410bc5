#!/usr/bin/env python3
"""kubelab's local lab: one systemd-nspawn machine per inventory host, on this Linux box.

    lab.py up [-i INVENTORY]   start the inventory's machines (adds missing ones; idempotent)
    lab.py down                stop every lab machine and undo everything `up` set up
    lab.py status
    lab.py ssh HOST [CMD...]
    lab.py purge               down, then drop the base image, apt cache, mirror and SSH key

Run as root on Debian 12; PID 1 need not be systemd. State lives in $LAB_DIR (default
/var/lib/kubelab-lab). README.md beside this file says what is real and what is a stand-in.
"""

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAB_DIR = Path(os.environ.get("LAB_DIR", "/var/lib/kubelab-lab"))
BASE = LAB_DIR / "images" / "base"
BASE_HASH = LAB_DIR / "images" / "base.sha256"
MACHINES = LAB_DIR / "machines"
RUN = LAB_DIR / "run"  # pid records, logs, modules the lab loaded: all dropped by `down`
ACNG = LAB_DIR / "acng"
MIRROR = LAB_DIR / "mirror"
KEY = LAB_DIR / "id_lab"
SSH_CONFIG = LAB_DIR / "ssh_config"
CGROUP = Path("/sys/fs/cgroup")
NSPAWN_RUNTIME = Path("/run/systemd/nspawn")  # nspawn's locks and mount propagation dirs

BRIDGE = "br-lab"
ACNG_PORT = 3142
MIRROR_PORT = 8080
BOOT_TIMEOUT = float(os.environ.get("LAB_BOOT_TIMEOUT", "180"))
STOP_TIMEOUT = 60

HOST_PACKAGES = [
    "systemd-container",
    "mmdebstrap",
    "apt-cacher-ng",
    "openssh-client",
    "iproute2",
    "kmod",
    "containernetworking-plugins",  # the real CNI plugins in the mirror
]
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
# Written into the base image after mmdebstrap; part of the image's hash.
BASE_FILES = {
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
BASE_LINKS = {
    f"etc/systemd/system/{wants}/{unit}": f"/lib/systemd/system/{unit}"
    for wants, unit in [
        ("multi-user.target.wants", "systemd-networkd.service"),
        ("sockets.target.wants", "systemd-networkd.socket"),
        ("network-online.target.wants", "systemd-networkd-wait-online.service"),
    ]
}
# Host kernel modules the nodes need, each with a test that also sees a built-in one.
MODULES = {
    "br_netfilter": lambda: Path("/proc/sys/net/bridge").is_dir(),
    "overlay": lambda: "\toverlay\n" in Path("/proc/filesystems").read_text(),
}


class LabError(Exception):
    pass


@dataclass
class Node:
    name: str  # inventory name, the FQDN
    short: str  # hostname and machine name
    address: str

    @property
    def dir(self) -> Path:
        return MACHINES / self.short


# ---------------------------------------------------------------------------------- small helpers

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[lab {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@contextmanager
def phase(name: str):
    start = time.monotonic()
    log(f"{name} ...")
    yield
    log(f"{name}: done in {time.monotonic() - start:.1f} s")


def run(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, **kwargs)


def output(*argv: str) -> str:
    return run(*argv, capture_output=True).stdout


def write(path: Path, content: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(content)
    path.chmod(mode)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_json(path: Path, value) -> None:
    write(path, json.dumps(value, indent=1) + "\n")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(path) or point.startswith(f"{path}/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    if mounts_under(path):
        raise LabError(f"{path} still has mounts: {', '.join(mounts_under(path))}")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


# -------------------------------------------------------------- processes the lab starts and ends


def spawn(record: Path, argv: list[str], logfile: Path, env: dict | None = None) -> int:
    """Start ``argv`` in its own session and record its PID and command line."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    write_json(record, {"pid": proc.pid, "argv": argv})
    return proc.pid


def recorded_pid(record: Path) -> int | None:
    """The recorded PID if that process still runs the recorded command (no PID reuse)."""
    rec = read_json(record)
    if not rec:
        return None
    try:
        cmdline = Path(f"/proc/{rec['pid']}/cmdline").read_bytes()
    except OSError:
        return None
    return rec["pid"] if cmdline.split(b"\0")[:-1] == [a.encode() for a in rec["argv"]] else None


def wait_until(condition, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def end_recorded(record: Path, what: str, timeout: float = 10) -> None:
    pid = recorded_pid(record)
    if pid:
        os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: recorded_pid(record) is None, timeout):
            log(f"{what} (pid {pid}) ignored SIGTERM; sending SIGKILL")
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: recorded_pid(record) is None, 5)
        log(f"stopped {what} (pid {pid})")
    record.unlink(missing_ok=True)


def port_open(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
        return True
    except OSError:
        return False


# -------------------------------------------------------------------------------------- inventory


def load_inventory(path: Path) -> list[Node]:
    """Every host of every top-level group list of a pyinfra inventory file."""
    if not path.is_file():
        raise LabError(f"inventory {path} not found")
    namespace = {"__file__": str(path), "__name__": "inventory"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    hosts: dict[str, dict] = {}
    for key, value in namespace.items():
        if key.startswith("_") or not isinstance(value, list) or not value:
            continue
        if not all(isinstance(h, str) or is_host_tuple(h) for h in value):
            continue
        for host in value:
            name, data = (host, {}) if isinstance(host, str) else host
            hosts.setdefault(name, {}).update(data)
    if not hosts:
        raise LabError(f"inventory {path} defines no hosts (lists of (name, data) tuples)")
    return [make_node(name, data) for name, data in hosts.items()]


def is_host_tuple(item) -> bool:
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], dict)
    )


def make_node(name: str, data: dict) -> Node:
    address = data.get("kube_address") or data.get("ssh_hostname")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise LabError(
            f"host {name}: the lab needs an IPv4 ssh_hostname or kube_address, got {address!r}"
        ) from None
    return Node(name=name, short=name.split(".")[0], address=address)


def lab_network(nodes: list[Node]) -> ipaddress.IPv4Network:
    """The one /24 holding every node; its .1 is the bridge (the nodes' gateway)."""
    networks = {ipaddress.ip_network(f"{n.address}/24", strict=False) for n in nodes}
    if len(networks) != 1:
        listing = ", ".join(f"{n.short}={n.address}" for n in nodes)
        raise LabError(f"the lab's hosts must share one /24 network: {listing}")
    net = networks.pop()
    for field, what in (("short", "short name"), ("address", "address")):
        values = [getattr(n, field) for n in nodes]
        twice = {v for v in values if values.count(v) > 1}
        if twice:
            raise LabError(f"two inventory hosts have the same {what}: {', '.join(sorted(twice))}")
    for node in nodes:
        if ipaddress.IPv4Address(node.address) in (net[0], net[1], net[-1]):
            raise LabError(
                f"host {node.name}: {node.address} is reserved in the lab ({net[1]} is the bridge)"
            )
    return net


def gateway(net: ipaddress.IPv4Network) -> str:
    return str(net[1])


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


def check_state_filesystem() -> None:
    # containerd's overlayfs snapshotter and the nodes' overlay upper dirs cannot live on overlayfs.
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    fstype = output("stat", "-f", "-c", "%T", str(LAB_DIR)).strip()
    if fstype == "overlayfs":
        raise LabError(f"{LAB_DIR} is on overlayfs; set LAB_DIR to a directory on ext4/xfs/tmpfs")


def ensure_key() -> None:
    if not KEY.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubelab-lab", "-f", str(KEY))


# ------------------------------------------------------------------------------------- base image


def base_recipe_hash() -> str:
    recipe = [SUITE, DEBIAN, DEBIAN_SECURITY, BASE_PACKAGES, BASE_FILES, BASE_LINKS]
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def build_base(any_running: bool) -> None:
    wanted = base_recipe_hash()
    current = BASE_HASH.read_text().strip() if BASE_HASH.exists() else None
    if current == wanted and BASE.is_dir():
        log(f"base image cached at {BASE}")
        return
    if any_running and BASE.is_dir():
        log("base image is out of date, but machines use it: `down` then `up` rebuilds it")
        return
    log(f"building the base image ({SUITE} minbase) with mmdebstrap")
    tmp = BASE.with_name("base.tmp")
    if tmp.exists():
        remove_tree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    run(
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        SUITE,
        str(tmp),
        f"deb {DEBIAN} {SUITE} main",
        f"deb {DEBIAN} {SUITE}-updates main",
        f"deb {DEBIAN_SECURITY} {SUITE}-security main",
    )
    customize_base(tmp)
    BASE_HASH.unlink(missing_ok=True)
    if BASE.exists():
        remove_tree(BASE)
    tmp.rename(BASE)
    write(BASE_HASH, wanted + "\n")
    log(f"base image: {output('du', '-sh', str(BASE)).split()[0]}")


def customize_base(root: Path) -> None:
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()  # every node gets its own
    for rel, content in BASE_FILES.items():
        write(root / rel, content)
    for rel, target in BASE_LINKS.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)


# ---------------------------------------------------------------------------------------- network


def bridge_address() -> str | None:
    if run("ip", "link", "show", BRIDGE, check=False, capture_output=True).returncode != 0:
        return None
    for info in json.loads(output("ip", "-j", "-4", "addr", "show", "dev", BRIDGE)):
        for addr in info.get("addr_info", []):
            return f"{addr['local']}/{addr['prefixlen']}"
    return ""


def check_subnet_is_free(net: ipaddress.IPv4Network) -> None:
    """Lab addresses must never be routed anywhere but the bridge."""
    for route in json.loads(output("ip", "-j", "-4", "route", "show", "table", "all")):
        dst = route.get("dst", "default")
        if route.get("dev") == BRIDGE or dst == "default" or route.get("type") == "local":
            continue
        if ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False).overlaps(net):
            raise LabError(f"{net} is already routed on this host ({dst} dev {route.get('dev')})")


def bridge_up(net: ipaddress.IPv4Network, any_running: bool) -> None:
    wanted = f"{gateway(net)}/{net.prefixlen}"
    current = bridge_address()
    if current == wanted:
        run("ip", "link", "set", BRIDGE, "up")
        return
    if current is not None and any_running:
        raise LabError(f"the running lab uses {current}; run `down` before using {net}")
    check_subnet_is_free(net)
    if current is None:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "flush", "dev", BRIDGE)
    run("ip", "addr", "add", wanted, "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    log(f"bridge {BRIDGE} {wanted}")


def bridge_down() -> None:
    if bridge_address() is None:
        return
    for link in json.loads(output("ip", "-j", "link", "show", "master", BRIDGE)):
        run("ip", "link", "del", link["ifname"], check=False)
    run("ip", "link", "del", BRIDGE)
    log(f"removed bridge {BRIDGE}")


# ------------------------------------------------------------------------- services on the bridge


def acng_config(address: str) -> str:
    # Our own minimal config: with Debian's stock one (empty backends_debian) requests for
    # deb.debian.org/debian got "503 Host not found".
    return f"""\
CacheDir: {ACNG}/cache
LogDir: {RUN}/acng
SupportDir: /usr/lib/apt-cacher-ng
PidFile: {RUN}/acng/pid
SocketPath: {RUN}/acng/socket
ForeGround: 1
BindAddress: {address}
Port: {ACNG_PORT}
ReportPage: acng-report.html
ExThreshold: 4
Remap-debrep: file:deb_mirror*.gz /debian ; {DEBIAN}/
Remap-secdeb: security.debian.org security.debian.org/debian-security \
deb.debian.org/debian-security /debian-security ; {DEBIAN_SECURITY}/
"""


def start_service(name: str, argv: list[str], address: str, port: int) -> None:
    record = RUN / f"{name}.json"
    if recorded_pid(record):
        return
    end_recorded(record, name)  # a leftover with another address or command line
    pid = spawn(record, argv, RUN / f"{name}.log")
    if not wait_until(lambda: port_open(address, port), 15):
        logfile = tail(RUN / f"{name}.log")
        raise LabError(f"{name} did not listen on {address}:{port}; its log:\n{logfile}")
    log(f"{name} on {address}:{port} (pid {pid})")


def services_up(address: str) -> None:
    for sub in ("cache", "conf"):
        (ACNG / sub).mkdir(parents=True, exist_ok=True)
    (RUN / "acng").mkdir(parents=True, exist_ok=True)
    conf = ACNG / "conf" / "acng.conf"
    if not conf.exists() or conf.read_text() != acng_config(address):
        write(conf, acng_config(address))
        end_recorded(RUN / "apt-cacher-ng.json", "apt-cacher-ng")
    start_service(
        "apt-cacher-ng", ["/usr/sbin/apt-cacher-ng", "-c", str(ACNG / "conf")], address, ACNG_PORT
    )
    server = [sys.executable, "-m", "http.server", str(MIRROR_PORT), "--bind", address]
    start_service("mirror", [*server, "--directory", str(MIRROR)], address, MIRROR_PORT)


def services_down() -> None:
    end_recorded(RUN / "mirror.json", "mirror")
    end_recorded(RUN / "apt-cacher-ng.json", "apt-cacher-ng")


def build_mirror() -> None:
    sys.path.insert(0, str(HERE))
    import mirror  # tests/lab/mirror.py

    files = mirror.build(MIRROR, REPO)
    log(f"{len(files)} artifacts in {MIRROR} (see MIRROR.txt there)")


# --------------------------------------------------------------------------------------- machines


def machine_records() -> list[Node]:
    records = [read_json(d / "node.json") for d in sorted(MACHINES.glob("*/"))]
    return [Node(**r) for r in records if r]


def is_running(short: str) -> bool:
    return recorded_pid(MACHINES / short / "supervisor.json") is not None


def node_files(node: Node, net: ipaddress.IPv4Network) -> dict[str, str]:
    gw = gateway(net)
    return {
        "etc/hostname": f"{node.short}\n",
        "etc/hosts": f"127.0.0.1\tlocalhost\n{node.address}\t{node.name} {node.short}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        "etc/systemd/network/10-host0.network": "[Match]\nName=host0\n\n[Network]\n"
        f"Address={node.address}/{net.prefixlen}\nGateway={gw}\n",
        # Nodes reach Debian's archive only through the cache on the bridge (no NAT, no routing).
        # No pipelining, a timeout and retries: with several nodes filling a cold cache at once,
        # apt's http method was seen waiting forever on a connection the cache had closed.
        "etc/apt/apt.conf.d/01lab-proxy": f'Acquire::http::Proxy "http://{gw}:{ACNG_PORT}";\n'
        'Acquire::http::Pipeline-Depth "0";\nAcquire::http::Timeout "30";\n'
        'Acquire::Retries "3";\n',
    }


def prepare_root(node: Node, net: ipaddress.IPv4Network) -> Path:
    root = node.dir / "root"
    for sub in ("upper", "work", "root", "var-lib-containerd", "var-lib-docker"):
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(root):
        layers = f"lowerdir={BASE},upperdir={node.dir / 'upper'},workdir={node.dir / 'work'}"
        run("mount", "-t", "overlay", "overlay", "-o", layers, str(root))
    for rel, content in node_files(node, net).items():
        write(root / rel, content)
    write(root / "root/.ssh/authorized_keys", KEY.with_suffix(".pub").read_text(), 0o600)
    (root / "root/.ssh").chmod(0o700)
    if not (root / "etc/machine-id").read_text().strip():
        write(root / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    if not (root / "etc/ssh/ssh_host_ed25519_key").exists():
        run("ssh-keygen", "-A", "-f", str(root), capture_output=True)
    return root


def nspawn_command(node: Node, root: Path) -> list[str]:
    # --register=no --keep-unit: the host has no systemd/machined/dbus to register with.
    # '@keyring bpf' and the bind mounts let containerd/runc run inside (overlayfs snapshots
    # cannot nest on the overlay root).
    return [
        "systemd-nspawn",
        "--boot",
        f"--directory={root}",
        f"--machine={node.short}",
        f"--network-bridge={BRIDGE}",
        "--register=no",
        "--keep-unit",
        "--console=read-only",  # the node's console (boot status lines) goes to nspawn.log
        "--setenv=SYSTEMD_COLORS=0",
        "--resolv-conf=off",
        "--link-journal=no",
        "--system-call-filter=@keyring bpf",
        f"--bind={node.dir / 'var-lib-containerd'}:/var/lib/containerd",
        f"--bind={node.dir / 'var-lib-docker'}:/var/lib/docker",
    ]


def check_running_machines(nodes: list[Node]) -> None:
    """An inventory host must not clash with a running machine of another inventory."""
    for machine in machine_records():
        for node in nodes:
            same_name = machine.short == node.short
            if same_name and machine.address != node.address:
                raise LabError(
                    f"{node.short} runs with address {machine.address}, the inventory says "
                    f"{node.address}: run `down` first"
                )
            if not same_name and machine.address == node.address:
                raise LabError(f"{node.short}: {node.address} is taken by {machine.short}")


def start_machine(node: Node, net: ipaddress.IPv4Network) -> bool:
    """Boot ``node``; False when it already runs."""
    if is_running(node.short):
        return False
    if cgroup_pids(node.short):
        raise LabError(f"{node.short} has leftover processes in its cgroup: run `down` first")
    node.dir.mkdir(parents=True, exist_ok=True)
    write_json(node.dir / "node.json", asdict(node))
    root = prepare_root(node, net)
    argv = [sys.executable, str(Path(__file__).resolve()), "_supervise", node.short, "--"]
    argv += nspawn_command(node, root)
    env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
    note_created_dirs(NSPAWN_RUNTIME)
    pid = spawn(node.dir / "supervisor.json", argv, node.dir / "nspawn.log", env)
    log(f"{node.short} ({node.address}) booting, supervisor pid {pid}")
    return True


def wait_booted(nodes: list[Node]) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    for node in nodes:
        state = wait_system_running(node, deadline)
        failed = ""
        if state == "degraded":
            failed = ssh_output(node, "systemctl --failed --plain --no-legend | cut -d' ' -f1")
            failed = f" (failed units: {' '.join(failed.split())})"
        log(f"{node.short}: {state}{failed}")


def wait_system_running(node: Node, deadline: float) -> str:
    state = "no ssh yet"
    while True:
        if not is_running(node.short):
            raise LabError(f"{node.short} stopped while booting; its log:\n{boot_log(node)}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(
                f"{node.short} did not finish booting in {BOOT_TIMEOUT:g} s (last state: "
                f"{state}); its log:\n{boot_log(node)}"
            )
        try:
            result = subprocess.run(
                ssh_argv(node.short, "systemctl is-system-running --wait"),
                capture_output=True,
                text=True,
                timeout=left,
            )
        except subprocess.TimeoutExpired:
            continue
        if result.returncode == 255:  # ssh itself failed: sshd not up yet
            state = result.stderr.strip() or state
        else:
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return state
            if state in ("maintenance", "stopping", "offline"):
                raise LabError(f"{node.short} is {state} after boot; its log:\n{boot_log(node)}")
        time.sleep(0.5)


def boot_log(node: Node) -> str:
    return tail(node.dir / "nspawn.log")


def stop_machines(names: list[str]) -> None:
    """Power every machine off at once (SIGTERM makes nspawn shut the node down cleanly)."""
    for short in names:
        pid = recorded_pid(MACHINES / short / "supervisor.json")
        if pid:
            os.kill(pid, signal.SIGTERM)
        else:  # supervisor gone, node left behind: end the nspawn in the node's cgroup
            for stray in cgroup_pids(short):
                if process_name(stray) == "systemd-nspawn":
                    os.kill(stray, signal.SIGTERM)
    for short in names:
        if not wait_until(lambda s=short: not cgroup_pids(s), STOP_TIMEOUT, 0.3):
            log(f"{short} did not power off in {STOP_TIMEOUT} s; killing its processes")
            wait_until(lambda s=short: not kill_cgroup(s), 10, 0.3)
        remove_machine(short)
        log(f"{short} stopped")


def remove_machine(short: str) -> None:
    machine = MACHINES / short
    for point in mounts_under(machine):
        run("umount", point)
    remove_cgroups(short)
    for leftover in NSPAWN_RUNTIME.glob(f"*/{short}"):
        shutil.rmtree(leftover, ignore_errors=True)
    if machine.exists():
        remove_tree(machine)


def note_created_dirs(path: Path) -> None:
    """Remember the topmost missing ancestor of a directory a tool will create for the lab."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    if missing:
        RUN.mkdir(parents=True, exist_ok=True)
        with open(RUN / "created-dirs", "a") as f:
            f.write(f"{missing[-1]}\n")


def remove_created_dirs() -> None:
    record = RUN / "created-dirs"
    if not record.exists():
        return
    for top in set(record.read_text().split()):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            rmdir(Path(dirpath))  # only empty ones: anything else there is not ours


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------- cgroups
# With --keep-unit every nspawn would create its payload/ cgroup beside the others: each
# supervisor first moves itself into lab/<node> of the hierarchies nspawn uses.


def cgroup_hierarchies() -> list[Path]:
    if (CGROUP / "cgroup.procs").exists():  # pure cgroup v2
        return [CGROUP]
    return [d for d in sorted(CGROUP.iterdir()) if (d / "cgroup.procs").exists()]


def enter_cgroups(short: str) -> None:
    for root in (CGROUP / "systemd", CGROUP / "unified", CGROUP):
        if (root / "cgroup.procs").exists():
            own = root / "lab" / short
            own.mkdir(parents=True, exist_ok=True)
            (own / "cgroup.procs").write_text(f"{os.getpid()}\n")


def cgroup_pids(short: str) -> set[int]:
    pids = set()
    for root in cgroup_hierarchies():
        for dirpath, _, _ in os.walk(root / "lab" / short):
            with suppress(OSError):
                pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def kill_cgroup(short: str) -> set[int]:
    pids = cgroup_pids(short)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def remove_cgroups(short: str) -> None:
    for root in cgroup_hierarchies():
        own = root / "lab" / short
        for dirpath, _, _ in sorted(os.walk(own), key=lambda w: len(w[0]), reverse=True):
            # an emptied cgroup can stay busy for a moment after its last process exits
            wait_until(lambda d=dirpath: rmdir(Path(d)), 5, 0.1)
        rmdir(root / "lab")


def rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def lab_cgroup_names() -> set[str]:
    return {d.name for root in cgroup_hierarchies() for d in (root / "lab").glob("*/")}


def supervise(short: str, argv: list[str]) -> int:
    """Run nspawn for one node; restart it when the node reboots itself (exit 133)."""
    enter_cgroups(short)
    stopping = False
    child = None

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        if child:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rc = 0
    while not stopping:
        child = subprocess.Popen(argv)
        if stopping:  # SIGTERM came while starting it
            child.send_signal(signal.SIGTERM)
        rc = child.wait()
        if rc != 133:
            break
        print(f"[lab] {short} rebooted itself; starting it again", flush=True)
    return rc


# -------------------------------------------------------------------------------------------- ssh


def write_ssh_config() -> None:
    lines = []
    for node in machine_records():
        lines += [f"Host {node.short} {node.name} {node.address}", f"  HostName {node.address}"]
    lines += [
        "Host *",
        "  User root",
        f"  IdentityFile {KEY}",
        "  IdentitiesOnly yes",
        "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
        "  LogLevel ERROR",
        "  ConnectTimeout 5",
    ]
    write(SSH_CONFIG, "\n".join(lines) + "\n")


def ssh_argv(host: str, *command: str) -> list[str]:
    return ["ssh", "-F", str(SSH_CONFIG), "-o", "BatchMode=yes", host, *command]


def ssh_output(node: Node, command: str) -> str:
    argv = ssh_argv(node.short, command)
    return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout


# --------------------------------------------------------------------------------------- commands


@contextmanager
def lab_lock():
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cmd_up(inventory: Path) -> None:
    nodes = load_inventory(inventory)
    net = lab_network(nodes)
    check_host()
    check_state_filesystem()
    check_running_machines(nodes)
    running = [n.short for n in machine_records() if is_running(n.short)]
    with phase("host packages"):
        install_host_packages()
    with phase("kernel modules"):
        load_modules()
    with phase("base image"):
        build_base(any_running=bool(running))
    with phase("network"):
        ensure_key()
        bridge_up(net, any_running=bool(running))
    with phase("artifact mirror"):
        build_mirror()
    with phase("services on the bridge"):
        services_up(gateway(net))
    with phase("machines"):
        started = [n.short for n in nodes if start_machine(n, net)]
        write_ssh_config()
        log(f"started: {' '.join(started) or 'none'}; already up: {' '.join(running) or 'none'}")
    with phase("boot (systemctl is-system-running --wait)"):
        wait_booted(nodes)
    print_access(nodes)


def print_access(nodes: list[Node]) -> None:
    script = Path(__file__).resolve()
    with suppress(ValueError):
        script = script.relative_to(Path.cwd())
    machines = f"{len(nodes)} machine{'s' if len(nodes) > 1 else ''}"
    print(f"\nlab up ({machines}, {time.monotonic() - T0:.1f} s). Reach a node with:")
    print(f"  python3 {script} ssh {nodes[0].short}")
    print(f"  ssh -F {SSH_CONFIG} {nodes[0].short}")
    print(f"Artifact mirror: http://{gateway(lab_network(nodes))}:{MIRROR_PORT}/  (MIRROR.txt)")
    if str(KEY) != "/var/lib/kubelab-lab/id_lab":  # the path group_data/all.py expects
        print(f"For pyinfra: export KUBELAB_SSH_KEY={KEY}")


def cmd_down() -> None:
    names = sorted(
        {n.short for n in machine_records()}
        | lab_cgroup_names()
        | {d.name for d in MACHINES.glob("*/")}
    )
    with phase("down"):
        stop_machines(names)
        bridge_down()
        services_down()
        unload_modules()
        remove_created_dirs()
        if RUN.exists():
            remove_tree(RUN)
        rmdir(MACHINES)
        if SSH_CONFIG.exists():
            write_ssh_config()


def cmd_purge() -> None:
    cmd_down()
    for path in (
        BASE.with_name("base.tmp"),
        LAB_DIR / "images",
        ACNG,
        MIRROR,
        MIRROR.with_name("mirror.new"),
        KEY,
        KEY.with_suffix(".pub"),
        SSH_CONFIG,
    ):
        if path.exists():
            remove_tree(path)
            log(f"removed {path}")
    (LAB_DIR / ".lock").unlink(missing_ok=True)  # still held; nothing else waits on it now
    rmdir(LAB_DIR)


def cmd_status() -> None:
    address = bridge_address()
    print(f"bridge {BRIDGE}: {address or ('no address' if address == '' else 'absent')}")
    for name in ("apt-cacher-ng", "mirror"):
        pid = recorded_pid(RUN / f"{name}.json")
        print(f"{name}: {f'running (pid {pid})' if pid else 'stopped'}")
    nodes = machine_records()
    if not nodes:
        print("machines: none")
    for node in nodes:
        pid = recorded_pid(node.dir / "supervisor.json")
        state = "stopped"
        if pid:
            system = ssh_output(node, "systemctl is-system-running").strip() or "no ssh"
            state = f"running (supervisor pid {pid}), system {system}"
        print(f"{node.short:<14} {node.address:<16} {state}")


def cmd_ssh(host: str, command: list[str]) -> None:
    nodes = machine_records()
    if not any(host in (n.short, n.name, n.address) for n in nodes):
        known = ", ".join(n.short for n in nodes) or "none (run `up`)"
        raise LabError(f"no lab machine {host}; the lab has: {known}")
    os.execvp("ssh", ["ssh", "-F", str(SSH_CONFIG), host, *command])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the inventory's machines (idempotent)")
    up.add_argument("-i", "--inventory", type=Path, default=REPO / "inventory.py")
    sub.add_parser("down", help="stop every lab machine and clean up")
    sub.add_parser("status", help="show the bridge, services and machines")
    ssh = sub.add_parser("ssh", help="ssh to a node (short name, FQDN or address)")
    ssh.add_argument("host")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("purge", help="down, then drop base image, caches, mirror and key")
    return parser.parse_args(argv)


def run_command(args: argparse.Namespace) -> None:
    if args.command == "ssh":
        cmd_ssh(args.host, args.cmd)
    elif args.command == "status":
        cmd_status()
    else:
        if os.geteuid() != 0:
            raise LabError("the lab needs root")
        with lab_lock():
            if args.command == "up":
                cmd_up(args.inventory)
            elif args.command == "down":
                cmd_down()
            else:
                cmd_purge()


def main(argv: list[str]) -> int:
    if argv[:1] == ["_supervise"]:  # internal: the per-node supervisor
        return supervise(argv[1], argv[3:])
    args = parse_args(argv)
    try:
        run_command(args)
    except (LabError, subprocess.CalledProcessError) as error:
        if isinstance(error, subprocess.CalledProcessError):
            error = f"command failed ({error.returncode}): {' '.join(map(str, error.cmd))}"
        print(f"lab: error: {error}", file=sys.stderr)
        if args.command == "up" and (bridge_address() is not None or machine_records()):
            print("lab: the lab may be partly up; `lab.py down` removes it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
