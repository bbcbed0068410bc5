#!/usr/bin/env python3
"""make bench: the deploy's speed on the lab, for 3, 6 and 12 machines and for three masters with
two minions (``ha``: tests/lab/inventory_ha.py, 5 machines), against pyinfra's floor.

For each size, on fresh machines (the upstream programs are built and cached before the first
size, outside the figures): lab up, a cold deploy, then ROUNDS no-change re-runs each followed
by the floor (a pyinfra deploy that reads one fact per host and does nothing else,
files/floor.py), their medians taken, and one more re-run with -vv to count the remote commands
per host. Absolute times on a shared box are noisy; the ratios taken within one run are what the
goals are about:

- re-run / floor, at each size (goal: at most 2);
- re-run at 12 / re-run at 3 (goal: at most 1.2), cold deploy at 12 / at 3 (goal: at most 1.5);
- remote commands per host on the re-run (goal: at most 25).

With the cold deploy go how busy this machine's CPUs were during it (/proc/stat) and the CPU
time it took: the machines' (their cgroups) and pyinfra's. The lab's machines run on the same
cores as pyinfra, so that time divided by the cores is the least the deploy can take here,
however well it overlaps its work: the "CPU bound" beside the cold deploy.

Not a test: it prints the table and the goals met or missed.
"""

import argparse
import compileall
import os
import re
import resource
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402
from cgroups import cpu_seconds, lab_cgroup_names  # noqa: E402

FLOOR = Path(__file__).resolve().parent / "files" / "floor.py"
COMMAND = re.compile(r"^\[(?P<host>[^\]]+)\][^\n]*?>>> ", re.M)  # pyinfra -vv: one per command
STYLE = re.compile(r"\x1b\[[0-9;]*m")
ROUNDS = 5  # re-run and floor, interleaved: their medians go in the table


HA = "ha"  # the size naming the three-master topology


def inventory_of(size) -> str:
    if size == HA:
        return "tests/lab/inventory_ha.py"
    if size == 3:
        return "inventory.py"
    return pipeline.derived_inventory("inventory.py", pipeline.LOGS / f"bench-{size}.py", size - 3)


def label_of(size) -> str:
    return "3 masters + 2 minions" if size == HA else str(size)


def commands_per_host(inventory: str, log_name: str) -> Counter:
    output, _ = pipeline.run(
        f"deploy ({log_name})",
        [*pipeline.deploy_command(inventory), "-vv"],
        pipeline.LOGS / f"{log_name}.log",
    )
    if pipeline.changed_operations(output):
        raise pipeline.StepFailed(f"the counted re-run changed something ({log_name}.log)")
    return Counter(match["host"] for match in COMMAND.finditer(STYLE.sub("", output)))


def floor(inventory: str, log_name: str) -> float:
    command = [*pipeline.PYINFRA, inventory, str(FLOOR), "-y"]
    return pipeline.run(f"floor ({log_name})", command, pipeline.LOGS / f"{log_name}.log")[1]


def box_cpu() -> tuple[int, int]:
    """(busy, all) CPU time of this machine so far, in jiffies (/proc/stat's first line)."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split()[1:9]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def work_cpu() -> float:
    """CPU seconds used so far by the lab's machines and by this process's children (pyinfra)."""
    machines = sum(cpu_seconds(name) or 0 for name in lab_cgroup_names())
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return machines + children.ru_utime + children.ru_stime


def measure(size) -> dict:
    inventory = inventory_of(size)
    label = f"bench-{size}"
    pipeline.lab_down()
    figures = {"lab up": pipeline.lab_up(inventory)}
    before, work_before = box_cpu(), work_cpu()
    _, figures["cold deploy"] = pipeline.deploy(inventory, f"{label}-deploy")
    busy, total = (after - start for after, start in zip(box_cpu(), before, strict=True))
    figures["box busy"] = busy / total  # the lab's machines and pyinfra, on the same cores
    figures["cold cpu"] = work_cpu() - work_before
    figures["cpu bound"] = figures["cold cpu"] / os.cpu_count()
    reruns, floors = [], []
    for attempt in range(ROUNDS):
        changes, seconds = pipeline.deploy(inventory, f"{label}-rerun-{attempt}")
        if changes:
            raise pipeline.StepFailed(f"the re-run changed {dict(changes)}")
        reruns.append(seconds)
        floors.append(floor(inventory, f"{label}-floor-{attempt}"))
    figures["re-run"], figures["floor"] = statistics.median(reruns), statistics.median(floors)
    figures["samples"] = (reruns, floors)
    counts = commands_per_host(inventory, f"{label}-rerun-vv")
    figures["commands/host"] = max(counts.values())
    figures["commands"] = counts
    return figures


def report(rows: dict) -> list[str]:
    lines = [
        "| machines | lab up | cold deploy | CPU busy in it | its CPU time | CPU bound "
        "| no-change re-run | floor | re-run / floor | commands per host (max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, f in rows.items():
        lines.append(
            f"| {label_of(size)} | {f['lab up']:.1f} s | {f['cold deploy']:.1f} s "
            f"| {f['box busy']:.0%} | {f['cold cpu']:.0f} s | {f['cpu bound']:.1f} s "
            f"| {f['re-run']:.1f} s | {f['floor']:.1f} s | {f['re-run'] / f['floor']:.2f} "
            f"| {f['commands/host']} |"
        )
    goals = [
        (f"re-run / floor at {label_of(s)}", f["re-run"] / f["floor"], 2.0) for s, f in rows.items()
    ]
    goals += [
        (f"commands per host at {label_of(s)}", f["commands/host"], 25) for s, f in rows.items()
    ]
    counts = [size for size in rows if size != HA]
    small, large = (min(counts), max(counts)) if counts else (None, None)
    if large != small:
        for step, goal in (("re-run", 1.2), ("cold deploy", 1.5)):
            ratio = rows[large][step] / rows[small][step]
            goals.append((f"{step} at {large} / at {small}", ratio, goal))
    lines.append("")
    for name, value, goal in goals:
        verdict = "met" if value <= goal else "MISSED"
        lines.append(f"{name}: {value:.2f} (goal <= {goal:g}) {verdict}")
    if large != small:
        floors = rows[large]["floor"] / rows[small]["floor"]
        bound = rows[large]["cpu bound"] / rows[small]["cold deploy"]
        lines.append(f"for comparison, pyinfra's floor at {large} / at {small}: {floors:.2f}")
        lines.append(
            f"for comparison, the CPU bound at {large} / the cold deploy at {small}: {bound:.2f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "-s",
        "--sizes",
        default=f"3,6,12,{HA}",
        help=f"machine counts or {HA} (default 3,6,12,{HA})",
    )
    sizes = [size if size == HA else int(size) for size in parser.parse_args().sizes.split(",")]
    if not pipeline.require_root("make bench"):
        return 1
    pipeline.lab_up("inventory.py")  # builds what the cache lacks, outside the figures
    # kubelab's modules byte-compiled, as an installed package's are (pyinfra's are): where
    # PYTHONDONTWRITEBYTECODE is set, every run would compile them afresh.
    compileall.compile_dir(pipeline.REPO / "kubelab", quiet=1)
    rows = {size: measure(size) for size in sizes}
    pipeline.lab_down()
    for size, figures in rows.items():
        reruns, floors = (", ".join(f"{s:.1f}" for s in samples) for samples in figures["samples"])
        print(f"at {size}: re-runs {reruns} s, floors {floors} s")
        print(f"commands per host on the re-run at {size}: {dict(figures['commands'])}")
    print("\n" + "\n".join(report(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
