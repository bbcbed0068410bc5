"""The upgrade scenario on the lab (e2e.py runs it last in day two; it also runs alone).

upgrade_cluster: the cluster reset (deploys/reset.py; the local PKI stays), built at an older
Kubernetes release (``cluster.py --data kube_version=<old>``), nginx served behind its cluster
IP (the final test), then deploys/upgrade.py to the pinned release while a loop on the master
keeps asking nginx's cluster IP (requests sent and failed are reported); then every Node runs
the pinned kubelet, the apiserver answers at the pinned release, the etcd snapshot is on this
machine, the final test passes, and a second upgrade and a cluster.py re-run change nothing.

The lab's mirror must serve the older release: bring the lab up with
``LAB_EXTRA_KUBE_VERSIONS=v1.34.x`` (tests/lab/builds.py builds the newest v1.34 patch the Go
module proxy lists, tests/lab/mirror.py serves it pinned as ``kubelet@<release>``):

    LAB_EXTRA_KUBE_VERSIONS=v1.34.x .venv/bin/python tests/lab/lab.py up -i inventory.py
    .venv/bin/python tests/lab/upgrade_scenario.py -i inventory.py
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import builds
import kube
import lab_images
import mirror
import pipeline
from daytwo import CLUSTER_NAME, run_pyinfra, while_nginx_serves
from mirror import PINS, kubelab_defaults
from util import MIRROR, LabError

REPO = Path(__file__).resolve().parents[2]
# The release e2e.py upgrades from: the previous minor's newest patch the Go module proxy serves
# here (v1.34.13 and later: 403; its version list stops at v1.34.4, so `.x` would pick that).
OLDER_RELEASE = "v1.34.12"


# The older release's build when it is not cached (a cold machine: about 8 minutes on both
# cores), in the background from e2e.py's start: the longest the step before the upgrade waits.
OLDER_BUILD_WAIT = 1800
OLDER_BUILD_LOG = pipeline.LOGS / "older-release-build.log"
BUILD_FLAG = "--build-older-release"


class OlderRelease:
    """The Kubernetes build of the release the upgrade starts from, which only the upgrade
    scenario needs, near the end of e2e.py. ``start`` (at the e2e's start): when it is not
    cached, build it in the background, a process of its own at nice 19 (its log in
    OLDER_BUILD_LOG), so that the lab's first steps run beside it; ``served`` (the step before
    the upgrade): wait for it, OLDER_BUILD_WAIT s at most, then rebuild the lab's mirror with
    it. Cached, or LAB_EXTRA_KUBE_VERSIONS set by hand: the mirror serves it from the first
    lab up, as it always did."""

    def __init__(self, release: str = OLDER_RELEASE):
        self.release = release
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> str:
        if os.environ.get(builds.EXTRA_KUBE_ENV):
            return f"{builds.EXTRA_KUBE_ENV} set: lab up builds and serves what it names"
        if builds.is_cached(builds.kubernetes(self.release)):
            os.environ[builds.EXTRA_KUBE_ENV] = self.release
            return f"{self.release} cached: the lab's mirror serves it from the first lab up"
        # what lab up builds first, so that this build never holds the build lock while they
        # wait for it (cached after prebuild: no time)
        mirror.ensure_builds()
        lab_images.ensure_images()
        OLDER_BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
        with open(OLDER_BUILD_LOG, "w") as log:
            self.process = subprocess.Popen(
                ["nice", "-n", "19", sys.executable, __file__, BUILD_FLAG, self.release],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started = time.monotonic()
        return (
            f"building {self.release} in the background (pid {self.process.pid}, nice 19, "
            f"log {OLDER_BUILD_LOG})"
        )

    def served(self, timeout: float = OLDER_BUILD_WAIT) -> str:
        """Once the build is done, the lab's mirror rebuilt to serve it too (the pinned
        release's files unchanged: no deploy sees a difference); what it took."""
        if self.process is None:
            return f"{self.release} served since lab up"
        waiting = time.monotonic()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise pipeline.StepFailed(
                f"the background build of {self.release} did not finish within {timeout:g} s "
                f"of waiting; its log: {OLDER_BUILD_LOG}"
            ) from None
        waited = time.monotonic() - waiting
        if code != 0:
            raise pipeline.StepFailed(
                f"the background build of {self.release} failed (exit {code}):\n"
                + pipeline.tail_of(OLDER_BUILD_LOG)
            )
        os.environ[builds.EXTRA_KUBE_ENV] = self.release
        mirror.build(MIRROR)
        return (
            f"built in the background in {time.monotonic() - self.started - waited:.0f} s "
            f"before this step, {waited:.0f} s waited here; the lab's mirror serves it"
        )

    def stop(self) -> None:
        """End the background build if it still runs (its process group: go and compilers)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def build_older_release(release: str) -> int:
    """OlderRelease's background process: the build of ``release`` (cached afterwards)."""
    try:
        print(builds.ensure_built(builds.kubernetes(release)), flush=True)
    except LabError as error:
        print(f"the build of {release} failed: {error}", file=sys.stderr)
        return 1
    return 0


def pinned_kube_version() -> str:
    return kubelab_defaults(REPO)["kube_version"]


def served_older_release() -> str:
    """The older Kubernetes release the lab's mirror serves besides the pinned one."""
    pins = json.loads((MIRROR / PINS).read_text()) if (MIRROR / PINS).exists() else {}
    pinned = pinned_kube_version()
    older = sorted(
        {key.split("@", 1)[1] for key in pins if key.startswith("kubelet@")} - {pinned},
        key=lambda v: tuple(int(p) for p in re.findall(r"\d+", v)),
    )
    if not older:
        raise pipeline.StepFailed(
            "the lab's mirror serves no Kubernetes release besides the pinned one: bring the lab "
            "up with LAB_EXTRA_KUBE_VERSIONS=v1.34.x"
        )
    return older[-1]


def running_versions() -> tuple[str, dict[str, str]]:
    """The apiserver's gitVersion and every Node's kubelet version, as kubectl reports them."""
    api = json.loads(kube.kubectl("get --raw /version"))["gitVersion"]
    listing = kube.kubectl(
        "get nodes -o jsonpath='{range .items[*]}{.metadata.name} "
        '{.status.nodeInfo.kubeletVersion}{"\\n"}{end}\''
    )
    nodes = dict(line.split() for line in listing.splitlines() if line.strip())
    return api, nodes


def snapshots() -> set[Path]:
    backups = Path("~/.kubelab/kubelab/backups").expanduser()
    return set(backups.glob("etcd-*.db")) if backups.is_dir() else set()


def upgrade_cluster(inventory: str) -> str:
    """Build at the older release, upgrade to the pinned one under a request loop."""
    old, new = served_older_release(), pinned_kube_version()
    # cluster.py checks no version skew: a cluster already at the pinned release is reset
    # first (the local PKI stays), then built at the older one.
    run_pyinfra(inventory, "deploys/reset.py", "upgrade-reset", f"reset_cluster={CLUSTER_NAME}")
    changes, built = pipeline.deploy(inventory, "upgrade-build-old", f"kube_version={old}")
    pipeline.smoke(inventory, "upgrade-smoke-before", f"kube_version={old}")
    api, nodes = running_versions()
    if api != old or set(nodes.values()) != {old}:
        raise pipeline.StepFailed(f"the cluster built at {old} runs {api}, Nodes {nodes}")
    before = snapshots()
    ok, failed, seconds, looked_up = while_nginx_serves(
        "the upgrade", lambda: run_pyinfra(inventory, "deploys/upgrade.py", "upgrade")
    )
    total = ok + failed
    api, nodes = running_versions()
    if api != new or set(nodes.values()) != {new}:
        raise pipeline.StepFailed(f"after the upgrade the apiserver runs {api}, Nodes {nodes}")
    cordoned = kube.kubectl("get nodes -o jsonpath={.items[*].spec.unschedulable}").split()
    if "true" in cordoned:
        raise pipeline.StepFailed(f"a Node stayed cordoned after the upgrade: {cordoned}")
    saved = snapshots() - before
    if len(saved) != 1:
        raise pipeline.StepFailed(f"the upgrade saved {len(saved)} etcd snapshots here, not 1")
    # each drain moved the nginx pods to the other minion, and nothing moves them back: new
    # pods, spread again, for the final test's spread check
    kube.kubectl(f"{kube.SMOKE} delete pods -l app=nginx --wait=false")
    pipeline.smoke(inventory, "upgrade-smoke-after")
    again = run_pyinfra(inventory, "deploys/upgrade.py", "upgrade-again")
    if again:
        raise pipeline.StepFailed(f"a second upgrade changed {again}")
    rerun, _ = pipeline.deploy(inventory, "upgrade-cluster-rerun")
    if rerun:
        raise pipeline.StepFailed(f"cluster.py after the upgrade changed {dict(rerun)}")
    return (
        f"built at {old} in {built:.0f} s ({sum(changes.values())} changes), upgraded to {new} in "
        f"{seconds:.0f} s; nginx's cluster IP answered {ok} of {total} requests meanwhile "
        f"({failed} failed); {looked_up}; every Node at {new}, none cordoned, the snapshot "
        f"{saved.pop().name} kept; the final test passes; a second upgrade and cluster.py "
        "changed nothing"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventory.py")
    parser.add_argument(BUILD_FLAG, metavar="RELEASE", help="only build RELEASE (cached)")
    args = parser.parse_args()
    if args.build_older_release:
        return build_older_release(args.build_older_release)
    try:
        print(upgrade_cluster(args.inventory))
    except pipeline.StepFailed as error:
        print(f"upgrade scenario failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
