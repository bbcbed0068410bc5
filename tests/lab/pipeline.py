"""The steps the lab runs kubelab through: lab up, deploy, specs, timed; shared by
e2e.py (make test), demo.py (make demo) and bench.py (make bench)."""

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB = [sys.executable, str(REPO / "tests/lab/lab.py")]
PYINFRA = [sys.executable, "-m", "pyinfra"]
PYTHON_PYTEST = [sys.executable, "-m", "pytest"]
LOGS = REPO / ".lab" / "logs"
GATEWAY = "192.168.122.1"  # the lab bridge's address for inventory.py's hosts
RESULT = re.compile(r"^\s+\[(?P<host>[^\]]+)\]\s+(?P<result>Success|No changes|Error)", re.M)
OPERATION = re.compile(r"^--> Starting operation: (?P<name>.*?)\s*$", re.M)


HOST_OWN_DATA = ("ssh_hostname", "kube_address", "node_name")  # never copied to a new host
# Every host of a lab inventory is in the group lab (group_data/lab.py: its SSH settings).
LAB_GROUP = "\nlab = [name for name, _ in masters + minions]\n"


class StepFailed(Exception):
    pass


# Every step has a deadline, so a hang fails the step (and CI) instead of waiting for CI's limit.
DEADLINES = {"lab up": 3600, "lab down": 300, "specs": 300, "smoke": 900}
DEPLOY_DEADLINE = 900


def run(
    name: str, command: list[str], log: Path | None = None, deadline: float | None = None
) -> tuple[str, float]:
    """Run ``command``; its output goes to ``log`` (and the screen when no log is given)."""
    started = time.monotonic()
    deadline = deadline or DEADLINES.get(name.split(" (")[0], DEPLOY_DEADLINE)
    try:
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(
                command, cwd=REPO, capture_output=True, text=True, timeout=deadline
            )
            log.write_text(result.stdout + result.stderr)
            output = result.stdout + result.stderr
        else:
            result = subprocess.run(command, cwd=REPO, text=True, timeout=deadline)
            output = ""
    except subprocess.TimeoutExpired as expired:
        if log:
            log.write_text(text_of(expired.stdout) + text_of(expired.stderr))
        where = f"; output so far in {log}" if log else ""
        message = f"{name} did not finish within its deadline of {deadline:g} s{where}"
        raise StepFailed(message) from None
    seconds = time.monotonic() - started
    if result.returncode != 0:
        where = f"; output in {log}" if log else ""
        raise StepFailed(f"{name} failed (exit {result.returncode}{where})")
    return output, seconds


def text_of(output) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def lab_up(inventory: str) -> float:
    return run("lab up", [*LAB, "up", "-i", inventory])[1]


def lab_down() -> float:
    return run("lab down", [*LAB, "down"])[1]


def deploy_command(inventory: str, *data: str) -> list[str]:
    return [*PYINFRA, inventory, "deploys/cluster.py", "-y", *(f"--data={d}" for d in data)]


def deploy(inventory: str, log_name: str, *data: str) -> tuple[Counter, float]:
    """pyinfra deploys/cluster.py; returns the count of changed operations per host."""
    output, seconds = run(
        f"deploy ({log_name})", deploy_command(inventory, *data), LOGS / f"{log_name}.log"
    )
    return Counter(host for host, _ in changed_operations(output)), seconds


def results(output: str) -> list[tuple[str, str, str]]:
    """(host, operation, Success / No changes / Error) for each host of each operation run."""
    found, operation = [], None
    for line in output.splitlines():
        if started := OPERATION.match(line):
            operation = started["name"]
        elif result := RESULT.match(line):
            found.append((result["host"], operation, result["result"]))
    return found


def changed_operations(output: str) -> list[tuple[str, str]]:
    """(host, operation) for every operation that changed something."""
    return [(host, op) for host, op, result in results(output) if result == "Success"]


def smoke(inventory: str, log_name: str, *data: str) -> float:
    """The reference setup's final test (deploys/smoke.py) on the lab's cluster."""
    command = [*PYINFRA, inventory, "deploys/smoke.py", "-y", *(f"--data={d}" for d in data)]
    return run(f"smoke ({log_name})", command, LOGS / f"{log_name}.log")[1]


def specs(inventory: str, log_name: str = "specs") -> float:
    command = [
        *PYTHON_PYTEST,
        "tests/specs",
        "--inventory",
        inventory,
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    try:
        return run("specs", command, LOGS / f"{log_name}.log")[1]
    except StepFailed:
        print(tail_of(LOGS / f"{log_name}.log"), file=sys.stderr)
        raise


def tail_of(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def derived_inventory(base: str, path: Path, extra_minions: int = 0, data=None) -> str:
    """``base`` with ``extra_minions`` more minions (next free addresses) and ``data`` added to
    every host: nodes joining the cluster, or a setting for every host."""
    groups: dict = {}
    exec(compile(Path(base).read_text(), base, "exec"), {}, groups)
    masters, minions = list(groups["masters"]), list(groups["minions"])
    domain = minions[0][0].split(".", 1)[1]
    for _ in range(extra_minions):
        last = max(
            (host_data["ssh_hostname"] for _, host_data in masters + minions),
            key=lambda address: tuple(int(part) for part in address.split(".")),
        )
        prefix, octet = last.rsplit(".", 1)
        name = f"kubeminion{len(minions) + 1}.{domain}"
        # the data the minions share (a setting pinned for every host), an address of its own
        shared = {k: v for k, v in minions[-1][1].items() if k not in HOST_OWN_DATA}
        minions.append((name, {**shared, "ssh_hostname": f"{prefix}.{int(octet) + 1}"}))
    if data:
        masters, minions = ([(n, {**d, **data}) for n, d in hosts] for hosts in (masters, minions))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"masters = {masters!r}\n\nminions = {minions!r}\n{LAB_GROUP}")
    return str(path)


def require_root(purpose: str) -> bool:
    """Whether the lab can run; under CI it must."""
    if os.geteuid() == 0:
        return True
    if os.environ.get("CI") == "true":
        raise StepFailed(f"{purpose} needs root (systemd-nspawn machines), and CI=true")
    print(
        f"{purpose} skipped: the local lab needs root (systemd-nspawn machines); "
        "run as root, or with CI=true to make it mandatory"
    )
    return False
