"""The lab's services on the bridge address: the package cache and the artifact mirror."""

import sys

from base_image import DEBIAN, DEBIAN_SECURITY
from util import (
    HERE,
    LAB_DIR,
    MIRROR,
    REPO,
    RUN,
    LabError,
    end_recorded,
    log,
    port_open,
    recorded_pid,
    spawn,
    tail,
    wait_until,
    write,
)

ACNG = LAB_DIR / "acng"
ACNG_PORT = 3142
MIRROR_PORT = 8080


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
