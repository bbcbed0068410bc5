"""The cgroups the lab creates: nested under the ones it was started in, removed by `down`."""

import os
import signal
from contextlib import suppress
from pathlib import Path

from util import rmdir, wait_until

CGROUP = Path("/sys/fs/cgroup")


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


def lab_cgroup_names() -> set[str]:
    return {d.name for root in cgroup_hierarchies() for d in (root / "lab").glob("*/")}
