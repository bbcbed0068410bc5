#!/usr/bin/env python3
"""The first deploy of a fresh lab, N times in a row (default 10): does any stall?

Each round takes the lab down, brings fresh machines up (no apt lists, nothing installed) and
runs the first deploy under its deadline. A stall now ends in apt's own timeout, and
`APT::Update::Error-Mode any` makes that a failed deploy: a round fails when the deploy fails,
misses its deadline, or its log holds an apt fetch error. Each round's time is printed, so a
slow round shows too. Not part of `make test` (a round takes minutes): `make fresh-deploys`.
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402

APT_FAILURE = re.compile(r"E: (Failed to fetch|Could not connect|Unable to connect).*")


def round_of(number: int, inventory: str) -> tuple[bool, float, str]:
    pipeline.lab_down()
    pipeline.lab_up(inventory)
    started = time.monotonic()
    try:
        changes, _ = pipeline.deploy(inventory, f"fresh-deploy-{number}")
    except pipeline.StepFailed as error:
        return False, time.monotonic() - started, str(error)
    log = (pipeline.LOGS / f"fresh-deploy-{number}.log").read_text()
    apt_errors = APT_FAILURE.findall(log)
    detail = f"{sum(changes.values())} changes" + (f"; apt said {apt_errors}" if apt_errors else "")
    return not apt_errors, time.monotonic() - started, detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--rounds", type=int, default=10)
    parser.add_argument("-i", "--inventory", default="inventory.py")
    arguments = parser.parse_args()
    if not pipeline.require_root("fresh deploys"):
        return 1
    failed = 0
    for number in range(1, arguments.rounds + 1):
        ok, seconds, detail = round_of(number, arguments.inventory)
        failed += not ok
        print(
            f"round {number}: {'ok' if ok else 'FAILED'} in {seconds:.1f} s ({detail})", flush=True
        )
    pipeline.lab_down()
    rounds = arguments.rounds
    print(f"fresh first deploys: {rounds - failed} of {rounds} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
