"""Which cluster a host belongs to (modern profile, where reset and removal exist).

deploys/cluster.py marks each cluster host with its cluster's identity: ``MARK`` (root only)
holds the ``cluster_name`` and the sha256 of the cluster CA's certificate. It is written once,
when the host has none, and never changed: a host marked as another cluster's stops cluster.py.
deploys/reset.py and deploys/remove_node.py act only on hosts marked as this cluster's: a host
marked otherwise, or holding kubelab's files without a mark (another tool's, or a cluster from
before the mark: cluster.py marks it), stops them before any host is touched, in one line naming
the host and both identities. The teardown removes the mark last, so that a reset stopped
half-way can run again.

The mark is read with each host's first facts (``roles.first_facts``; reset and removal read it
with the OS): it costs no command of its own.
"""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import FileContents

from .. import engine
from ..settings.defaults import SettingError
from . import secret_files

MARK = "/etc/kubelab-cluster"
FACT = (FileContents, {"path": MARK})


def content(identity: tuple[str, str | None]) -> bytes:
    name, fingerprint = identity
    return (
        "# kubelab: this host belongs to the cluster below; deploys/reset.py and "
        "deploys/remove_node.py act only on hosts marked as theirs\n"
        f"cluster_name={name}\nca_sha256={fingerprint}\n"
    ).encode()


def mark_of(target=None) -> tuple[str, str | None] | None:
    """(cluster_name, CA sha256) ``target``'s mark names; None when it has none."""
    lines = engine.fact(FileContents, target, path=MARK)
    if lines is None:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return values.get("cluster_name", "?"), values.get("ca_sha256")


def describe(identity: tuple[str, str | None]) -> str:
    name, fingerprint = identity
    return f"{name!r} (CA sha256 {fingerprint or 'unknown: no CA in pki_dir'})"


def refuse_others(targets, identity, action: str, holds_kubelab=None):
    """Stop, before any host is touched, at the first of ``targets`` marked as another
    cluster's than ``identity`` or, when ``holds_kubelab(target)`` says it holds kubelab's
    files, not marked at all. ``action``: what the run does not do then."""
    for target in targets:
        mark = mark_of(target)
        if mark is None:
            if holds_kubelab is None or not holds_kubelab(target):
                continue
            problem = (
                f"holds kubelab's files but no cluster mark ({MARK}), so it may belong to "
                f"another cluster, not to this cluster {describe(identity)}"
            )
            hint = "; if it is this cluster's, run deploys/cluster.py once to mark it"
        elif mark != identity:
            problem = (
                f"is marked as cluster {describe(mark)} ({MARK}), not as this cluster "
                f"{describe(identity)}"
            )
            hint = "; check the inventory, cluster_name and pki_dir"
        else:
            continue
        text = f"kubelab: {target.name} {problem}: nothing {action}{hint}"
        raise SettingError(text.replace("\n", "\\n"))


def deploy_mark(identity):
    """This host marked as the cluster ``identity``'s, unless it already has a mark."""
    engine.manage(MARK)
    if mark_of() is not None:
        return
    data = content(identity)
    engine.add_step(
        f"Mark {host.name} as cluster {identity[0]}'s ({MARK})",
        MARK,
        lambda: True,
        lambda: secret_files.put_secret._inner(
            dest=MARK, content=data, user="root", group="root", mode=600
        ),
    )


@operation()
def mark_removed():
    """The cluster mark gone (the host belongs to no cluster any more)."""
    yield f"rm -f {MARK}"
