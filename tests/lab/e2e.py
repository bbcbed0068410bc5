#!/usr/bin/env python3
"""The lab end to end (make test), on the real cluster: lab up, deploy, specs, the reference
setup's final test, a subset of Kubernetes' conformance suite (conformance_subset), a re-run
that changes nothing and restarts no pod, the fault scenarios, a fourth minion joining and
taking pods (a machine outside the cluster boots with it), the switch to `secure`, day two
(that minion powered off and removed while nginx serves, the cluster reset and rebuilt beside
the machine outside it, which keeps its files, then built at the previous minor release and
upgraded to the pinned one while nginx serves), the cluster grown to three masters and a
master powered off, etcd's leader killed, a re-run with a master down (ha_scenario), lab
down. Prints each check and a closing 'N passed, N failed'. Every step has a deadline
(pipeline.DEADLINES)."""

import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import addons  # noqa: E402
import cgroups  # noqa: E402
import conformance  # noqa: E402
import conformance_subset  # noqa: E402
import daytwo  # noqa: E402
import deadminion  # noqa: E402
import etcd_access  # noqa: E402
import faults  # noqa: E402
import ha_scenario  # noqa: E402
import identity  # noqa: E402
import installs  # noqa: E402
import kube  # noqa: E402
import pipeline  # noqa: E402
import untouched  # noqa: E402
import upgrade_scenario  # noqa: E402

# The lab's inventory with the open setup pinned (whatever the profile's default), so that
# the switch to `secure` at the end switches something, and the images of the conformance
# subset in every host's image_archives (written by prepare_inventory, once they are built).
INVENTORY = str(pipeline.LOGS / "inventory-open.py")
results: list[tuple[str, bool, str]] = []
# The upgrade scenario's older release, built in the background from the start when it is not
# cached (prebuild leaves it out), waited for just before the upgrade.
OLDER = upgrade_scenario.OlderRelease()


def check(name: str, ok: bool, detail: str = ""):
    results.append((name, ok, detail))
    line = f"e2e {'PASS' if ok else 'FAIL'}: {name}" + (f" ({detail})" if detail else "")
    print(line, flush=True)
    if not ok:
        raise pipeline.StepFailed(name)


def lab_bridge_is_up() -> bool:
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return "br-lab" in links


def lab_is_clean() -> bool:
    return not lab_bridge_is_up() and not cgroups.leftover_lab_cgroups()


def prepare_inventory() -> dict:
    """The conformance suite's tools and the subset's images built (cached), then INVENTORY
    written."""
    tools, archives, _ = conformance.prepare(conformance_subset.IMAGES)
    data = {"secure": False, "image_archives": conformance.with_suite_images(archives)}
    pipeline.derived_inventory("inventory.py", Path(INVENTORY), data=data)
    return tools


def conformance_part(tools: dict):
    passed, failed, problems = conformance_subset.run(tools)
    print(f"conformance subset: {passed} passed, {failed} failed", flush=True)
    for problem in problems:
        print(f"  {problem}", flush=True)
    check(
        "the conformance subset passes (every [sig-network] test, one of each other SIG)",
        not failed,
        f"{passed} passed, {failed} failed; reports in {conformance.OUT}",
    )


def first_cluster(tools: dict):
    pipeline.lab_down()
    seconds = pipeline.lab_up(INVENTORY)
    check("lab up (3 machines)", True, f"{seconds:.1f} s")
    changes, seconds = pipeline.deploy(INVENTORY, "e2e-first")
    total = sum(changes.values())
    check("first deploy succeeds", total > 0, f"{seconds:.1f} s, {total} changes")
    seconds = pipeline.smoke(INVENTORY, "e2e-smoke")
    check(
        "the final test passes: minions Ready, token, nginx x3 on both minions, cluster IP from "
        "every host, pod IPs across minions, a deleted pod replaced",
        True,
        f"{seconds:.1f} s",
    )
    seconds = pipeline.specs(INVENTORY)
    check("specs pass on every host", True, f"{seconds:.1f} s")
    conformance_part(tools)
    check("kubectl top nodes and pods answer (metrics-server)", True, addons.top_answers(INVENTORY))
    check(
        "a Secret read raw from etcd is encrypted", True, addons.secret_encrypted_in_etcd(INVENTORY)
    )
    before = kube.nginx_pods()
    changes, seconds = pipeline.deploy(INVENTORY, "e2e-second")
    check("second deploy changes nothing", not changes, f"{seconds:.1f} s, changes {dict(changes)}")
    kept, states = kube.pods_kept(before, kube.nginx_pods())
    check("the pods still run, none restarted", kept, states)


def faults_on_the_cluster():
    for name, fault in (
        ("a minion stopped during the deploy", faults.minion_stopped_during_deploy),
        ("the deploy killed midway, then re-run", faults.deploy_killed_midway),
        (
            "etcd restarting while the flannel config is written",
            faults.etcd_restarting_while_config_written,
        ),
        ("a config file edited by hand", faults.hand_edited_config),
        ("a package source that never answers", faults.package_source_stalls),
    ):
        started = time.monotonic()
        outcome = fault(INVENTORY)
        check(name, True, f"{outcome}; {time.monotonic() - started:.0f} s")
    pipeline.specs(INVENTORY)
    check("specs pass after the faults", True)
    seconds = pipeline.smoke(INVENTORY, "e2e-smoke-after-faults")
    check("the final test passes after the faults", True, f"{seconds:.1f} s")


def fourth_minion_joins() -> str:
    bigger = pipeline.derived_inventory(INVENTORY, pipeline.LOGS / "inventory-4.py", 1)
    pipeline.lab_up(untouched.with_other(bigger))  # and a machine outside the cluster
    changes, seconds = pipeline.deploy(bigger, "e2e-join")
    joined = [host for host in changes if host.startswith("kubeminion3")]
    check("a fourth host joins on re-run", bool(joined), f"{seconds:.1f} s")
    pipeline.smoke(bigger, "e2e-smoke-join")
    check("the final test passes with three minions", True)
    pipeline.specs(bigger)
    check("specs pass with the new minion (its Node Ready at the pinned version)", True)
    pod = kube.scale_until_on("kubeminion3.traininglab.com", 6)
    check("the new minion takes pods", True, f"{pod} runs there")
    changes, _ = pipeline.deploy(bigger, "e2e-join-again")
    check("re-run after the join changes nothing", not changes, f"changes {dict(changes)}")
    return bigger


def switch_to_secure(inventory: str):
    secure = pipeline.derived_inventory(
        inventory, pipeline.LOGS / "inventory-secure.py", data={"secure": True}
    )
    before = kube.nginx_pods()
    changes, seconds = pipeline.deploy(secure, "e2e-secure")
    check("the running cluster switches to secure", sum(changes.values()) > 0, f"{seconds:.1f} s")
    pipeline.specs(secure)
    check("specs pass with etcd over TLS (anonymous client refused, cluster cert served)", True)
    kept, states = kube.pods_kept(before, kube.nginx_pods())
    check("the pods kept running through the switch", kept, states)
    pipeline.smoke(secure, "e2e-smoke-secure")
    check("the final test passes on the secure cluster", True)
    changes, _ = pipeline.deploy(secure, "e2e-secure-again")
    check("secure re-run changes nothing", not changes, f"changes {dict(changes)}")
    check(
        "a minion's flanneld key: flannel's config, no /registry/",
        True,
        etcd_access.flanneld_kept_to_its_prefix(secure),
    )
    check(
        "etcd refuses a minion's kubelet and kube-proxy keys",
        True,
        etcd_access.cluster_ca_certificates_refused(secure),
    )
    return secure


def day_two(inventory: str):
    check("a powered-off minion removed", True, deadminion.remove_dead_minion(inventory))
    smaller = untouched.with_other(daytwo.inventory_without_last_minion(inventory))
    refused = identity.reset_refuses_a_host_not_marked_as_this_clusters(smaller)
    check("a reset refuses a host not marked as this cluster's", True, refused)
    untouched.plant_sentinel()
    check("the cluster reset and rebuilt", True, daytwo.reset_and_rebuild(smaller))
    check("a host outside masters/minions left alone", True, untouched.left_alone())
    check(
        f"the upgrade's older release {OLDER.release} built (in the background since the start) "
        "and served by the lab's mirror",
        True,
        OLDER.served(),
    )
    check(
        "the cluster upgraded while nginx serves", True, upgrade_scenario.upgrade_cluster(smaller)
    )
    return smaller


def scenario():
    tools = prepare_inventory()
    print(f"e2e: the upgrade's older release: {OLDER.start()}", flush=True)
    first_cluster(tools)
    check("damaged binaries installed again", True, installs.corrupted_binaries_restored(INVENTORY))
    rolled = addons.coredns_rolls_without_a_failed_lookup(INVENTORY)
    check("a changed DNS setting rolls CoreDNS with no failed lookup", True, rolled)
    faults_on_the_cluster()
    after_day_two = day_two(switch_to_secure(fourth_minion_joins()))
    ha_scenario.scenario(after_day_two, check)
    pipeline.lab_down()
    check("lab down leaves no bridge or cgroups", lab_is_clean())


def main() -> int:
    if not pipeline.require_root("lab end-to-end"):
        return 0
    try:
        scenario()
    except Exception as error:  # a step that failed, or a bug in the scenario: lab down
        if not isinstance(error, pipeline.StepFailed):
            traceback.print_exc()
        if not results or results[-1][1]:
            results.append((str(error), False, ""))
            print(
                f"e2e FAIL: {error!r}"
                if not isinstance(error, pipeline.StepFailed)
                else f"e2e FAIL: {error}"
            )
        if lab_bridge_is_up():
            print(kube.cluster_state())
        subprocess.run([*pipeline.LAB, "down"])
    finally:
        OLDER.stop()
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"e2e: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
