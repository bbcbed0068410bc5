"""The lab's services on the bridge address: the Debian package repository and the artifact
mirror, both plain HTTP file servers of this box's Python."""

import sys

from base_image import PACKAGES_REPO
from util import (
    MIRROR,
    RUN,
    LabError,
    end_recorded,
    log,
    port_open,
    recorded_pid,
    spawn,
    tail,
    wait_until,
)

PACKAGES_PORT = 3142
MIRROR_PORT = 8080
SERVICES = {"packages": (PACKAGES_PORT, PACKAGES_REPO), "mirror": (MIRROR_PORT, MIRROR)}


def start_service(name: str, argv: list[str], address: str, port: int) -> None:
    record = RUN / f"{name}.json"
    if recorded_pid(record):
        return
    end_recorded(record, name)  # a leftover with another address or command line
    pid = spawn(record, argv, RUN / f"{name}.log")
    listening = wait_until(lambda: port_open(address, port), 15)
    if not listening or not recorded_pid(record):  # or another process holds the port
        logfile = tail(RUN / f"{name}.log")
        raise LabError(f"{name} did not listen on {address}:{port}; its log:\n{logfile}")
    log(f"{name} on {address}:{port} (pid {pid})")


def services_up(address: str) -> None:
    for name, (port, directory) in SERVICES.items():
        directory.mkdir(parents=True, exist_ok=True)
        server = [sys.executable, "-m", "http.server", str(port), "--bind", address]
        start_service(name, [*server, "--directory", str(directory)], address, port)


def services_down() -> None:
    for name in (*SERVICES, "apt-cacher-ng"):  # the package cache of earlier lab versions
        end_recorded(RUN / f"{name}.json", name)
