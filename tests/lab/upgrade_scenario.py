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
import re
import sys
from pathlib import Path

import kube
import pipeline
from daytwo import CLUSTER_NAME, run_pyinfra, while_nginx_serves
from mirror import PINS, kubelab_defaults
from util import MIRROR

REPO = Path(__file__).resolve().parents[2]
# The release e2e.py upgrades from: the previous minor's newest patch the Go module proxy serves
# here (v1.34.13 and later: 403; its version list stops at v1.34.4, so `.x` would pick that).
OLDER_RELEASE = "v1.34.12"


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
    args = parser.parse_args()
    try:
        print(upgrade_cluster(args.inventory))
    except pipeline.StepFailed as error:
        print(f"upgrade scenario failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
