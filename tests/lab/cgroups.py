"""The cgroups the lab creates: nested under the ones it was started in, removed by `down`.

Each node's supervisor makes ``<its own cgroup>/lab/<node>`` in every hierarchy it belongs to
(on this kind of host: each v1 controller, name=systemd and the unified one) and moves itself
there before it starts nspawn. The node's cgroup namespace is rooted there, so its systemd,
containerd and kubelet see a tree of their own, and nothing the lab does leaves the cgroups it
found. ``machines/<node>/cgroups.json`` records the directories, for `down` to empty and remove.
"""

import os
import signal
from contextlib import suppress
from pathlib import Path

from util import MACHINES, read_json, rmdir, wait_until, write_json

RECORD = "cgroups.json"


def cgroup_mounts() -> list[tuple[str, set[str]]]:
    """(mount point, controllers) of every cgroup hierarchy; cgroup2 has the empty set."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        local, _, remote = line.partition(" - ")
        fstype, _, options = remote.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            controllers = set(options.split(",")) if fstype == "cgroup" else set()
            mounts.append((local.split()[4], controllers))
    return mounts


def own_hierarchies() -> list[Path]:
    """This process's cgroup directory in every hierarchy it belongs to."""
    mounts = cgroup_mounts()
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        wanted = set(names.split(",")) if names else set()
        for point, controllers in mounts:
            if (wanted and wanted <= controllers) or (not wanted and not controllers):
                found.append(Path(point) / path.lstrip("/"))
                break
    return found


def make_cgroup(path: Path) -> None:
    if path.is_dir():
        return
    path.mkdir()
    for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset takes no task until these are set
        parent_value = path.parent / name
        if parent_value.exists():
            (path / name).write_text(parent_value.read_text())


def enter_cgroups(short: str) -> None:
    """Move this process (a node's supervisor) into lab/<short> of each of its hierarchies."""
    dirs = [parent / "lab" / short for parent in own_hierarchies()]
    write_json(MACHINES / short / RECORD, [str(d) for d in dirs])
    for own in dirs:
        make_cgroup(own.parent)
        make_cgroup(own)
        (own / "cgroup.procs").write_text(f"{os.getpid()}\n")


def node_cgroups(short: str) -> list[Path]:
    return [Path(d) for d in read_json(MACHINES / short / RECORD) or []]


def cgroup_pids(short: str) -> set[int]:
    pids = set()
    for own in node_cgroups(short):
        for dirpath, _, _ in os.walk(own):
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
    for own in node_cgroups(short):
        for dirpath, _, _ in sorted(os.walk(own), key=lambda w: len(w[0]), reverse=True):
            # an emptied cgroup can stay busy for a moment after its last process exits
            wait_until(lambda d=dirpath: rmdir(Path(d)), 5, 0.1)
        rmdir(own.parent)  # lab/, once the last node is gone
    (MACHINES / short / RECORD).unlink(missing_ok=True)


def lab_cgroup_names() -> set[str]:
    return {record.parent.name for record in MACHINES.glob(f"*/{RECORD}")}


def leftover_lab_cgroups() -> list[Path]:
    """lab/ directories still present under this process's own cgroups (for the e2e check)."""
    return [parent / "lab" for parent in own_hierarchies() if (parent / "lab").exists()]


def cpu_seconds(short: str) -> float | None:
    """The CPU time a machine's processes have used so far, as its v1 cpuacct cgroup counts it
    (every process, however short-lived)."""
    for own in node_cgroups(short):
        usage = own / "cpuacct.usage"
        if usage.exists():
            return int(usage.read_text()) / 1e9
    return None


def memory_use(short: str) -> dict[str, int] | None:
    """A machine's memory as its v1 memory cgroup counts it (bytes): everything charged to it
    (page cache included), and the resident memory of its processes."""
    for own in node_cgroups(short):
        stat = own / "memory.stat"
        if stat.exists():
            values = dict(line.split() for line in stat.read_text().splitlines())
            usage = int((own / "memory.usage_in_bytes").read_text())
            return {"charged": usage, "rss": int(values["total_rss"])}
    return None
