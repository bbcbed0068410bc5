#!/usr/bin/env python3
"""Kubernetes' own conformance suite on the lab's cluster (make conformance [FOCUS=regex]).

Builds e2e.test, ginkgo and the suite's images (cached), brings the lab up and deploys
deploys/cluster.py with the suite's images added to kubelab's ``image_archives`` (so no image
is ever pulled), then runs the [Conformance] tests with ginkgo from this box against the admin
kubeconfig: the parallel part, then the [Serial] part. JUnit reports, logs and a summary
(passed, failed, skipped per SIG, wall time) go to .lab/conformance/; the lab stays up.
FOCUS (a regex, ginkgo's --focus) picks a subset, still within [Conformance]. Every step has
a deadline. Not part of `make test`: the whole suite takes hours on this box.
"""

import argparse
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from contextlib import suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builds  # noqa: E402
import cgroups  # noqa: E402
import conformance_images  # noqa: E402
import mirror  # noqa: E402
import pipeline  # noqa: E402
from util import LabError  # noqa: E402

OUT = pipeline.REPO / ".lab" / "conformance"
INVENTORY = pipeline.LOGS / "inventory-conformance.py"
PROCS = int(os.environ.get("CONFORMANCE_PROCS", "4"))  # ginkgo's parallel processes
# ginkgo's own suite timeout per part; the process gets a few minutes more to write its reports.
PARTS = {
    "parallel": ("Conformance && !Serial", 4 * 3600),
    "serial": ("Conformance && Serial", 3 * 3600),
}
REPORT_GRACE = 600
NODES_READY_TIMEOUT = 600
MEMORY_SAMPLE_EVERY = 30  # seconds between samples of the machines' memory during the run
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.kubeconfig"  # on the master; server: its API URL

# ------------------------------------------------------------------------------ the summary

FAILED = {"failed", "timedout", "panicked", "interrupted", "aborted"}
# Which result of a test wins when it appears in more than one report (it is listed in both
# parts' reports, filtered out of one of them).
RANK = {"not run": 0, "skipped": 1, "passed": 2, "failed": 3}
SIG = re.compile(r"\[(sig-[\w-]+)\]")


def testcase_result(case: ET.Element) -> tuple[str, str]:
    """(passed | failed | skipped | not run, message) of one JUnit testcase written by ginkgo.
    Ginkgo reports a spec its filters left out as skipped with the bare message "skipped", one
    skipped while running as "skipped - <why>"."""
    status = case.get("status", "")
    skipped = case.find("skipped")
    if status in FAILED or case.find("failure") is not None or case.find("error") is not None:
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        text = (problem.get("type", status) if problem is not None else status) or "failed"
        return "failed", text
    if status in ("skipped", "pending") or skipped is not None:
        message = skipped.get("message", "") if skipped is not None else status
        if message in ("skipped", "pending", ""):
            return "not run", message
        return "skipped", message.removeprefix("skipped - ")
    return "passed", ""


def junit_results(paths: list[Path]) -> dict[str, dict]:
    """Test name -> {result, message, seconds, sig} for every [Conformance] test in the reports
    (suite setup nodes left out), the most telling result where a test is in several."""
    tests: dict[str, dict] = {}
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            name = case.get("name", "")
            if not name.startswith("[It] ") or "[Conformance]" not in name:
                continue
            name = name.removeprefix("[It] ")
            result, message = testcase_result(case)
            sig = SIG.search(name)
            entry = {
                "result": result,
                "message": message,
                "seconds": float(case.get("time", 0) or 0),
                "sig": sig[1] if sig else "other",
            }
            if name not in tests or RANK[result] > RANK[tests[name]["result"]]:
                tests[name] = entry
    return tests


def summarize(tests: dict[str, dict], wall: dict[str, float], memory: dict | None = None) -> dict:
    per_sig: dict[str, Counter] = defaultdict(Counter)
    for test in tests.values():
        per_sig[test["sig"]][test["result"]] += 1
    totals = Counter(test["result"] for test in tests.values())
    return {
        "total": len(tests),
        "totals": {result: totals[result] for result in RANK},
        "per_sig": {sig: {r: c[r] for r in RANK} for sig, c in sorted(per_sig.items())},
        "failed": sorted(n for n, t in tests.items() if t["result"] == "failed"),
        "skipped": {n: t["message"] for n, t in sorted(tests.items()) if t["result"] == "skipped"},
        "wall_seconds": wall,
        "memory_peak_bytes": memory or {},
    }


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def summary_text(summary: dict, release: str = "") -> str:
    t = summary["totals"]
    walls = ", ".join(f"{part} {duration(s)}" for part, s in summary["wall_seconds"].items())
    lines = [
        f"conformance {release}: {t['passed']} passed, {t['failed']} failed, "
        f"{t['skipped']} skipped, {t['not run']} not run, of {summary['total']}"
        + (f"; wall time {walls}" if walls else ""),
        "",
        f"{'SIG':<22}{'passed':>8}{'failed':>8}{'skipped':>9}{'not run':>9}",
    ]
    for sig, counts in summary["per_sig"].items():
        lines.append(
            f"{sig:<22}{counts['passed']:>8}{counts['failed']:>8}{counts['skipped']:>9}"
            f"{counts['not run']:>9}"
        )
    if summary["memory_peak_bytes"]:
        lines += ["", "memory of the machines, peak while the suite ran (MB):"]
        for machine, peak in summary["memory_peak_bytes"].items():
            mb = {kind: round(value / 2**20) for kind, value in peak.items()}
            lines.append(
                f"  {machine}: {mb.get('rss', '?')} resident, {mb.get('charged', '?')} charged"
            )
    if summary["failed"]:
        lines += ["", "failed:"] + [f"  {name}" for name in summary["failed"]]
    if summary["skipped"]:
        lines += ["", "skipped while running:"]
        lines += [f"  {name}: {why}" for name, why in summary["skipped"].items()]
    return "\n".join(lines) + "\n"


def write_summary(report_dir: Path, wall: dict, release: str, memory: dict | None = None) -> str:
    tests = junit_results(sorted(report_dir.glob("junit_*.xml")))
    summary = summarize(tests, wall, memory)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = summary_text(summary, release)
    (report_dir / "summary.txt").write_text(text)
    return text


# ---------------------------------------------------------------------------------- the run


def lab_image_archives() -> dict:
    """The ``image_archives`` group_data/all.py gives every lab host (the add-ons' images)."""
    return dict(runpy.run_path(str(pipeline.REPO / "group_data" / "all.py"))["image_archives"])


def with_suite_images(archives: dict[str, Path]) -> dict[str, str]:
    """The lab's ``image_archives`` and the suite's (paths here, uploaded by kubelab)."""
    return {**lab_image_archives(), **{ref: str(path) for ref, path in archives.items()}}


def conformance_inventory(archives: dict[str, Path]) -> str:
    """inventory.py with the suite's images in every host's ``image_archives``."""
    data = {"image_archives": with_suite_images(archives)}
    return pipeline.derived_inventory("inventory.py", INVENTORY, data=data)


def fetch_kubeconfig(path: Path) -> Path:
    command = [*pipeline.LAB, "ssh", "kubemaster", f"cat {ADMIN_KUBECONFIG}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or "server:" not in result.stdout:
        raise pipeline.StepFailed(f"could not read {ADMIN_KUBECONFIG} on kubemaster")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(result.stdout)
    return path


def wait_nodes_ready(kubectl: list[str], timeout: float = NODES_READY_TIMEOUT) -> str:
    """Until every node is Ready (the suite refuses to start otherwise); their names."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            [*kubectl, "get", "nodes", "-o", "json"], capture_output=True, text=True, timeout=60
        )
        states = {}
        if result.returncode == 0:
            for node in json.loads(result.stdout or "{}").get("items", []):
                ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
                states[node["metadata"]["name"]] = bool(ready) and ready[0]["status"] == "True"
        if states and all(states.values()):
            return ", ".join(sorted(states))
        if time.monotonic() > deadline:
            detail = states or (result.stderr.strip() or "no nodes")
            raise pipeline.StepFailed(f"nodes not all Ready within {timeout:g} s: {detail}")
        time.sleep(5)


def ginkgo_command(tools: dict[str, Path], part: str, focus: str, settings: dict) -> list[str]:
    labels, timeout = PARTS[part]
    command = [str(tools["ginkgo"]), f"--timeout={timeout}s", f"--label-filter={labels}"]
    command += ["--no-color", "--poll-progress-after=30m", "--poll-progress-interval=5m"]
    if part == "parallel":
        command.append(f"--procs={PROCS}")
    if focus:
        command.append(f"--focus={focus}")
    return command + [
        str(tools["e2e.test"]),
        "--",
        "--provider=skeleton",
        f"--kubeconfig={settings['kubeconfig']}",
        f"--kubectl-path={tools['kubectl']}",
        f"--dns-domain={settings['dns_domain']}",
        f"--report-dir={OUT}",
        f"--report-prefix={part}_",
        f"--kube-test-repo-list={settings['repo_list']}",
    ]


def sample_memory(peaks: dict) -> None:
    """Raise ``peaks`` (machine -> {charged, rss} in bytes) to what the lab's machines use now,
    as their memory cgroups count it."""
    for machine in sorted(cgroups.lab_cgroup_names()):
        use = cgroups.memory_use(machine) or {}
        peak = peaks.setdefault(machine, {})
        for kind, value in use.items():
            peak[kind] = max(peak.get(kind, 0), value)


def run_part(command: list[str], part: str, deadline: float, repo_list: Path, peaks: dict):
    """Run one part of the suite (its output to OUT/<part>.log), sampling the machines' memory
    into ``peaks``; its wall time. Ginkgo's exit status is not checked: failures are in the
    reports. Past ``deadline`` the whole process group gets SIGTERM (ginkgo then writes its
    reports), SIGKILL a minute later."""
    started = time.monotonic()
    env = dict(os.environ, KUBE_TEST_REPO_LIST=str(repo_list))
    with open(OUT / f"{part}.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=OUT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        while process.poll() is None:
            left = deadline - (time.monotonic() - started)
            if left <= 0:
                stop(process, part, deadline)
                break
            sample_memory(peaks)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=min(MEMORY_SAMPLE_EVERY, left))
    return time.monotonic() - started


def stop(process: subprocess.Popen, part: str, deadline: float) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    print(f"conformance: the {part} part passed its deadline of {deadline:g} s")


def prepare(images=tuple(conformance_images.SUITE_IMAGES)) -> tuple[dict, dict, str]:
    """Builds and the suite's ``images`` (every one by default; cached), then the tools'
    paths, the archives, the release."""
    release = mirror.versions().kube_version
    tools = {
        "e2e.test": builds.ensure_built(builds.kubernetes_e2e(release)) / "e2e.test",
        "ginkgo": builds.ensure_built(builds.ginkgo(release)) / "ginkgo",
        "kubectl": builds.ensure_built(builds.kubernetes(release)) / "kubectl",
    }
    return tools, conformance_images.ensure_images(images), release


def suite_settings() -> dict:
    """What the suite is given: the admin kubeconfig (fetched from the master), the cluster
    domain and the file mapping the images' registries to the lab's names."""
    OUT.mkdir(parents=True, exist_ok=True)
    repo_list = OUT / "repo-list.yaml"
    repo_list.write_text(conformance_images.repo_list())
    return {
        "kubeconfig": fetch_kubeconfig(OUT / "admin.kubeconfig"),
        "dns_domain": mirror.versions().cluster_domain,
        "repo_list": repo_list,
    }


def run_suite(tools: dict[str, Path], focus: str, parts=tuple(PARTS)) -> tuple[dict, dict]:
    """``parts`` of the suite, each within its deadline, on the deployed lab cluster, its old
    reports removed first; the wall time of each part, and the machines' peak memory."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("junit_*.xml"):
        old.unlink()
    settings = suite_settings()
    kubectl = [str(tools["kubectl"]), f"--kubeconfig={settings['kubeconfig']}"]
    print(f"conformance: nodes Ready: {wait_nodes_ready(kubectl)}", flush=True)
    wall, peaks = {}, {}
    for part in parts:
        command = ginkgo_command(tools, part, focus, settings)
        print(f"conformance: {part} part, log in {OUT / f'{part}.log'}", flush=True)
        deadline = PARTS[part][1] + REPORT_GRACE
        wall[part] = run_part(command, part, deadline, settings["repo_list"], peaks)
    return wall, peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--focus", default="", help="a regex on test names (ginkgo --focus)")
    args = parser.parse_args()
    if not pipeline.require_root("make conformance"):
        return 1
    started = time.monotonic()
    try:
        tools, archives, release = prepare()
        inventory = conformance_inventory(archives)
        print(f"conformance: lab up ({pipeline.lab_up(inventory):.0f} s)", flush=True)
        changes, seconds = pipeline.deploy(inventory, "conformance-deploy")
        print(f"conformance: deploy ({seconds:.0f} s, {sum(changes.values())} changes)")
        wall, peaks = run_suite(tools, args.focus)
        wall["total"] = time.monotonic() - started
        print(write_summary(OUT, wall, release, peaks), end="")
        print(f"conformance: reports and summary in {OUT}; the lab stays up")
    except (pipeline.StepFailed, LabError) as error:
        print(f"conformance: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
