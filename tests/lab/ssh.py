"""Reaching the machines over SSH with the lab's key."""

import subprocess

from nodes import Node, machine_records
from util import KEY, SSH_CONFIG, write

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
