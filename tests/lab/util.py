"""Small helpers of the lab: paths, logging, commands, files, the processes it starts."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAB_DIR = Path(os.environ.get("LAB_DIR", "/var/lib/kubelab-lab"))
MACHINES = LAB_DIR / "machines"
RUN = LAB_DIR / "run"  # pid records, logs, modules the lab loaded: all dropped by `down`
MIRROR = LAB_DIR / "mirror"
KEY = LAB_DIR / "id_lab"
SSH_CONFIG = LAB_DIR / "ssh_config"


class LabError(Exception):
    pass


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


def output(*argv: str, **kwargs) -> str:
    return run(*argv, capture_output=True, **kwargs).stdout


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


def rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
