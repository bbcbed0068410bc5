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
import os
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import mirror
from base_image import BASE, build_base
from cgroups import lab_cgroup_names, memory_use
from host import (
    check_host,
    check_state_filesystem,
    ensure_key,
    install_host_packages,
    load_modules,
    raise_inotify_instances,
    restore_inotify_instances,
    unload_modules,
)
from machines import (
    check_running_machines,
    remove_created_dirs,
    start_machine,
    stop_machines,
    supervise,
    wait_booted,
)
from network import BRIDGE, bridge_address, bridge_down, bridge_up
from nodes import Node, gateway, is_running, lab_network, load_inventory, machine_records
from services import MIRROR_PORT, SERVICES, services_down, services_up
from ssh import ssh_output, write_ssh_config
from util import (
    KEY,
    LAB_DIR,
    MACHINES,
    MIRROR,
    REPO,
    RUN,
    SSH_CONFIG,
    T0,
    LabError,
    log,
    phase,
    recorded_pid,
    remove_tree,
    rmdir,
)

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
    with phase("kernel modules and limits"):
        load_modules()
        raise_inotify_instances(len({n.short for n in nodes} | set(running)))
    with phase("base image and package repository"):
        build_base(any_running=bool(running))
    with phase("upstream programs (Go module builds, cached)"):
        mirror.ensure_builds()
    with phase("network"):
        ensure_key()
        bridge_up(net, any_running=bool(running))
    with phase("artifact mirror and image archives"):
        files = mirror.build(MIRROR)
        log(f"{len(files)} files in {MIRROR} (see MIRROR.txt there)")
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
        restore_inotify_instances()
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
        LAB_DIR / "acng",  # the apt cache of earlier lab versions
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
    for name in SERVICES:
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
            memory = memory_use(node.short)
            if memory:
                mib = {k: v // 2**20 for k, v in memory.items()}
                state += f", memory {mib['rss']} MiB resident, {mib['charged']} MiB charged"
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
