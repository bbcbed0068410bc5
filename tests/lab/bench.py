#!/usr/bin/env python3
"""make bench: how long the lab and the deploy take, for 3 and for 6 machines.

For each size: lab up cold (base image and package cache rebuilt: `lab.py purge` first) and
warm (cached), a cold deploy onto fresh machines, a no-change re-run, the specs. Not a test:
it prints the figures.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402


def inventory_of(size: int) -> str:
    if size == 3:
        return "inventory.py"
    return pipeline.derived_inventory("inventory.py", pipeline.LOGS / f"bench-{size}.py", size - 3)


def measure(size: int, cold: bool) -> dict:
    inventory = inventory_of(size)
    pipeline.lab_down()
    if cold:
        pipeline.run("lab purge", [*pipeline.LAB, "purge"])
    label = f"bench-{size}-{'cold' if cold else 'warm'}-lab"
    figures = {"lab up": pipeline.lab_up(inventory)}
    changes, figures["cold deploy"] = pipeline.deploy(inventory, f"{label}-deploy")
    changes, figures["no-change re-run"] = pipeline.deploy(inventory, f"{label}-rerun")
    if changes:
        raise pipeline.StepFailed(f"the re-run changed {dict(changes)}")
    figures["specs"] = pipeline.specs(inventory)
    return figures


def main() -> int:
    if not pipeline.require_root("make bench"):
        return 1
    rows = {}
    for size in (3, 6):
        for cold in (True, False):
            rows[(size, "cold" if cold else "warm")] = measure(size, cold)
    pipeline.lab_down()
    steps = ["lab up", "cold deploy", "no-change re-run", "specs"]
    print("\n| machines | lab | " + " | ".join(steps) + " |")
    print("|---" * (len(steps) + 2) + "|")
    for (size, lab), figures in rows.items():
        print(f"| {size} | {lab} | " + " | ".join(f"{figures[s]:.1f} s" for s in steps) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
