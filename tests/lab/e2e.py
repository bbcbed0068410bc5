#!/usr/bin/env python3
"""The lab end to end (make test): lab up, deploy, specs, a re-run that must change nothing,
one more minion joining, lab down. Prints each check and a closing 'N passed, N failed'."""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults  # noqa: E402
import pipeline  # noqa: E402

INVENTORY = "inventory.py"
results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = ""):
    results.append((name, ok, detail))
    print(f"e2e {'PASS' if ok else 'FAIL'}: {name}" + (f" ({detail})" if detail else ""))
    if not ok:
        raise pipeline.StepFailed(name)


def lab_is_clean() -> bool:
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return "br-lab" not in links and not any(Path("/sys/fs/cgroup").glob("*/lab"))


def scenario():
    pipeline.lab_down()
    seconds = pipeline.lab_up(INVENTORY)
    check("lab up (3 machines)", True, f"{seconds:.1f} s")

    changes, seconds = pipeline.deploy(INVENTORY, "e2e-first")
    check(
        "first deploy succeeds",
        sum(changes.values()) > 0,
        f"{seconds:.1f} s, {sum(changes.values())} changes",
    )

    seconds = pipeline.specs(INVENTORY)
    check("specs pass on every host", True, f"{seconds:.1f} s")

    changes, seconds = pipeline.deploy(INVENTORY, "e2e-second")
    check("second deploy changes nothing", not changes, f"{seconds:.1f} s, changes {dict(changes)}")

    for name, fault in (
        ("a minion stopped during the deploy", faults.minion_stopped_during_deploy),
        ("the deploy killed midway, then re-run", faults.deploy_killed_midway),
        (
            "etcd restarting while the flannel config is written",
            faults.etcd_restarting_while_config_written,
        ),
        ("a config file edited by hand", faults.hand_edited_config),
    ):
        started = time.monotonic()
        outcome = fault(INVENTORY)
        check(name, True, f"{outcome}; {time.monotonic() - started:.0f} s")
    pipeline.specs(INVENTORY)
    check("specs pass after the faults", True)

    bigger = pipeline.derived_inventory(INVENTORY, pipeline.LOGS / "inventory-4.py", 1)
    pipeline.lab_up(bigger)
    changes, seconds = pipeline.deploy(bigger, "e2e-join")
    joined = [host for host in changes if host.startswith("kubeminion3")]
    check("a fourth host joins on re-run", bool(joined), f"{seconds:.1f} s")
    pipeline.specs(bigger)
    check("specs pass with the new minion", True)
    changes, _ = pipeline.deploy(bigger, "e2e-join-again")
    check("re-run after the join changes nothing", not changes, f"changes {dict(changes)}")

    secure = pipeline.derived_inventory(
        bigger, pipeline.LOGS / "inventory-secure.py", data={"secure": True}
    )
    changes, seconds = pipeline.deploy(secure, "e2e-secure")
    check("the running cluster switches to secure", sum(changes.values()) > 0, f"{seconds:.1f} s")
    pipeline.specs(secure)
    check("specs pass with etcd over TLS (anonymous client refused, cluster cert served)", True)
    changes, _ = pipeline.deploy(secure, "e2e-secure-again")
    check("secure re-run changes nothing", not changes, f"changes {dict(changes)}")

    pipeline.lab_down()
    check("lab down leaves no bridge or cgroups", lab_is_clean())


def main() -> int:
    if not pipeline.require_root("lab end-to-end"):
        return 0
    try:
        scenario()
    except pipeline.StepFailed as error:
        if not results or results[-1][1]:
            results.append((str(error), False, ""))
            print(f"e2e FAIL: {error}")
        subprocess.run([*pipeline.LAB, "down"])
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"e2e: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
