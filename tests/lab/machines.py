"""Booting, supervising and powering off the systemd-nspawn machines."""

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from base_image import BASE, NODE_INIT_PATH
from cgroups import cgroup_pids, enter_cgroups, kill_cgroup, remove_cgroups
from network import BRIDGE
from nodes import Node, gateway, is_running, machine_records
from services import PACKAGES_PORT
from ssh import ssh_argv, ssh_output
from util import (
    HERE,
    KEY,
    MACHINES,
    RUN,
    LabError,
    log,
    mounts_under,
    recorded_pid,
    remove_tree,
    rmdir,
    run,
    spawn,
    tail,
    wait_until,
    write,
    write_json,
)

NSPAWN_RUNTIME = Path("/run/systemd/nspawn")  # nspawn's locks and mount propagation dirs
BOOT_TIMEOUT = float(os.environ.get("LAB_BOOT_TIMEOUT", "180"))
STOP_TIMEOUT = 60


OWN_AFTER_FIRST_BOOT = ("etc/hosts",)


def node_files(node: Node, net: ipaddress.IPv4Network) -> dict[str, str]:
    gw = gateway(net)
    return {
        "etc/hostname": f"{node.short}\n",
        "etc/hosts": f"127.0.0.1\tlocalhost\n{node.address}\t{node.name} {node.short}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        # No IPv6 router on the bridge: without IPv6AcceptRA=no, networkd waits some 15 s
        # after boot for one before host0 is configured, and so does network-online.target.
        "etc/systemd/network/10-host0.network": "[Match]\nName=host0\n\n[Network]\n"
        f"Address={node.address}/{net.prefixlen}\nGateway={gw}\nIPv6AcceptRA=no\n",
        # The lab's own package repository is the only source (no NAT, no routing outside).
        "etc/apt/sources.list": f"deb [trusted=yes] http://{gw}:{PACKAGES_PORT}/ ./\n",
        "etc/apt/apt.conf.d/01lab-timeouts": 'Acquire::http::Timeout "30";\n'
        'Acquire::Retries "3";\nAcquire::Retries::Delay "false";\n',
    }


def prepare_root(node: Node, net: ipaddress.IPv4Network) -> Path:
    root = node.dir / "root"
    for sub in ("upper", "work", "root", "var-lib-containerd", "var-lib-docker", "var-lib-kubelet"):
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(root):
        layers = f"lowerdir={BASE},upperdir={node.dir / 'upper'},workdir={node.dir / 'work'}"
        run("mount", "-t", "overlay", "overlay", "-o", layers, str(root))
    for rel, content in node_files(node, net).items():
        # /etc/hosts is the machine's own once it booted (kubelab adds the cluster's names,
        # and a machine powered off and on keeps them, as a real one does)
        if rel in OWN_AFTER_FIRST_BOOT and (node.dir / "upper" / rel).exists():
            continue
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
        f"--bind={node.dir / 'var-lib-kubelet'}:/var/lib/kubelet",
        # the kubelet's OOM watcher reads the kernel log; reading it takes CAP_SYSLOG
        "--bind-ro=/dev/kmsg",
        # beyond nspawn's default set: the kubelet and runc lower oom_score_adj (SYS_RESOURCE),
        # containers may lock memory (IPC_LOCK)
        "--capability=CAP_SYSLOG,CAP_SYS_RESOURCE,CAP_IPC_LOCK",
        "--kill-signal=SIGRTMIN+3",  # systemd's "shut down cleanly"
        f"/{NODE_INIT_PATH}",
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
    argv = [sys.executable, str(HERE / "lab.py"), "_supervise", node.short, "--"]
    argv += nspawn_command(node, root)
    env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="0")
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
    """Power every machine off at once: `systemctl poweroff` inside (a clean shutdown in a few
    seconds), else SIGTERM to its supervisor (nspawn then signals the machine's systemd, which
    was seen to take a minute with the kubelet's pods), else its processes are killed."""
    asked = {short for short in names if is_running(short) and ask_poweroff(short)}
    for short in names:
        pid = recorded_pid(MACHINES / short / "supervisor.json")
        if pid and short not in asked:
            os.kill(pid, signal.SIGTERM)
        else:  # supervisor gone, node left behind: end the nspawn in the node's cgroup
            for stray in cgroup_pids(short):
                if process_name(stray) == "systemd-nspawn":
                    os.kill(stray, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT  # one for all: they shut down side by side
    for short in names:
        left = max(0.0, deadline - time.monotonic())
        if not wait_until(lambda s=short: not cgroup_pids(s), left, 0.3):
            log(f"{short} did not power off in {STOP_TIMEOUT} s; killing its processes")
            wait_until(lambda s=short: not kill_cgroup(s), 10, 0.3)
        remove_machine(short)
        log(f"{short} stopped")


def ask_poweroff(short: str) -> bool:
    try:
        done = subprocess.run(
            ssh_argv(short, "systemctl poweroff --no-block"), capture_output=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


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
