"""A lab machine outside the cluster (for e2e.py): a host of the inventory's group `others`,
which no deploy of kubelab's may touch (issue 17.1).

``with_other(inventory)`` is ``inventory`` plus that machine (``OTHER``, in group ``others``);
e2e.py boots it alongside the fourth minion and runs daytwo.reset_and_rebuild on it, which
runs deploys/reset.py, deploys/cluster.py (the rebuild and its re-run) and deploys/smoke.py.
``plant_sentinel`` writes /var/lib/etcd/keep-me there before; ``left_alone`` then checks that
the sentinel is still there, that no file of kubelab's prerequisites arrived (apt's bounds,
the sysctl file), and that each run's log says in one line that the host was left untouched.
"""

import shlex
from pathlib import Path

import pipeline
from faults import ssh

OTHER = "registry.traininglab.com"
SHORT = OTHER.split(".")[0]
OTHER_OCTET = 140  # on the lab's /24, far from the minions derived inventories add
SENTINEL = "/var/lib/etcd/keep-me"
SENTINEL_TEXT = "not kubelab's"
KUBELAB_FILES = ("/etc/apt/apt.conf.d/80kubelab", "/etc/sysctl.d/90-kubelab.conf")
LINE = f"kubelab: leaving 1 host outside masters/minions untouched: {OTHER}"
# The logs of daytwo.reset_and_rebuild's runs (pipeline.LOGS / f"{name}.log").
RUN_LOGS = ("daytwo-reset", "daytwo-reset-again", "daytwo-rebuild", "daytwo-smoke-rebuild")


def with_other(inventory: str) -> str:
    """``inventory`` with the group ``others`` holding OTHER, written beside it."""
    groups: dict = {}
    exec(compile(Path(inventory).read_text(), inventory, "exec"), {}, groups)
    address = groups["masters"][0][1]["ssh_hostname"].rsplit(".", 1)[0] + f".{OTHER_OCTET}"
    path = Path(inventory).with_name(f"{Path(inventory).stem}-others.py")
    path.write_text(
        f"masters = {groups['masters']!r}\n\nminions = {groups['minions']!r}\n\n"
        f"others = {[(OTHER, {'ssh_hostname': address})]!r}\n"
        "\nlab = [name for name, _ in masters + minions + others]\n"  # the lab's SSH settings
    )
    return str(path)


def plant_sentinel() -> None:
    """A file of someone else's in /var/lib/etcd on OTHER (a reset must leave it)."""
    ssh(SHORT, f"mkdir -p /var/lib/etcd && printf '%s' {shlex.quote(SENTINEL_TEXT)} > {SENTINEL}")


def left_alone() -> str:
    """OTHER still holds the sentinel and none of kubelab's files; each run said so."""
    found = ssh(SHORT, f"cat {SENTINEL} 2>/dev/null; true")
    if found != SENTINEL_TEXT:
        raise pipeline.StepFailed(f"{SHORT}: {SENTINEL} holds {found!r} after the reset")
    arrived = ssh(SHORT, f"for f in {' '.join(KUBELAB_FILES)}; do [ -e $f ] && echo $f; done; true")
    if arrived.split():
        raise pipeline.StepFailed(f"{SHORT} got kubelab's {', '.join(arrived.split())}")
    silent = [name for name in RUN_LOGS if LINE not in (pipeline.LOGS / f"{name}.log").read_text()]
    if silent:
        raise pipeline.StepFailed(f"no line {LINE!r} in the logs of {', '.join(silent)}")
    return (
        f"{SHORT} (group others) kept {SENTINEL} through reset.py, got neither "
        f"{' nor '.join(KUBELAB_FILES)} from cluster.py; each run said it left it untouched"
    )
