"""Installed binaries on the lab (for e2e.py): each installed file is checked by its own digest.

corrupted_binaries_restored: on a minion, kube-proxy (a binary of its own) is replaced by a copy
with one byte more (it runs: replaced, not written in place) and containerd's ``ctr`` (a member
of containerd's release archive) gets a byte appended; a re-run of cluster.py installs both
again from their verified downloads (each file's sha256 as before the damage), on that minion
only, kube-proxy and containerd run, and the next re-run changes nothing. Returns what it saw or
raises StepFailed.
"""

import pipeline
from faults import FQDN, ssh

MINION = "kubeminion1"
DAMAGED = {
    "/usr/local/bin/kube-proxy": "cp -p {path} {path}.damaged && printf x >> {path}.damaged "
    "&& mv -f {path}.damaged {path}",
    "/usr/local/bin/ctr": "printf x >> {path}",
}
SERVICES = ("kube-proxy", "containerd")


def digests(host: str, paths) -> dict[str, str]:
    """sha256 of each of ``paths`` on ``host``."""
    lines = ssh(host, "sha256sum " + " ".join(paths)).splitlines()
    return {fields[1]: fields[0] for fields in (line.split() for line in lines) if fields}


def corrupted_binaries_restored(inventory: str) -> str:
    installed = digests(MINION, DAMAGED)
    for path, damage in DAMAGED.items():
        ssh(MINION, damage.format(path=path))
    damaged = digests(MINION, DAMAGED)
    same = [path for path in DAMAGED if damaged[path] == installed[path]]
    if same:
        raise pipeline.StepFailed(f"{MINION}: damaging {same} left their sha256 unchanged")
    changes, seconds = pipeline.deploy(inventory, "installs-damaged")
    if set(changes) != {MINION + FQDN}:
        raise pipeline.StepFailed(f"expected changes on {MINION} only, got {dict(changes)}")
    restored = digests(MINION, DAMAGED)
    wrong = [path for path in DAMAGED if restored[path] != installed[path]]
    if wrong:
        raise pipeline.StepFailed(
            f"{MINION}: {wrong} not installed again: sha256 {[restored[p] for p in wrong]}, "
            f"installed before {[installed[p] for p in wrong]}"
        )
    states = ssh(MINION, "systemctl is-active " + " ".join(SERVICES), check=False).split()
    if states != ["active"] * len(SERVICES):
        raise pipeline.StepFailed(f"{MINION}: {SERVICES} are {states} after the re-run")
    again, _ = pipeline.deploy(inventory, "installs-again")
    if again:
        raise pipeline.StepFailed(f"the re-run after the repair changed {dict(again)}")
    return (
        f"{', '.join(DAMAGED)} installed again on {MINION} in {seconds:.1f} s (sha256 as "
        f"installed), {', '.join(SERVICES)} active, the next re-run changes nothing"
    )
