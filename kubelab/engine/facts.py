"""Facts kubelab reads from hosts besides pyinfra's own, by what they are about:

- ``host_facts``: one host's cgroup version, containerd's images, package sources, an installed
  archive's marker, what kubelab left on it; ``Several`` facts in one command;
- ``managed_state``: the state of every file, unit and user kubelab manages on a host, in one
  command (``hoststate``), its files' digests kept on the host (``digest_cache``);
- ``cluster_facts``: read on the master: etcd's keys and access control, the Nodes, the
  versions running.
"""

from .cluster_facts import EtcdAuth, EtcdPrefix, EtcdValue, KubeNodes, KubeVersions
from .digest_cache import DIGEST_CACHE, RACY_SECONDS, kept_digest_command, kept_digests_command
from .host_facts import (
    ArchiveMarker,
    CgroupVersion,
    ContainerdImages,
    KubelabLeftovers,
    PackageSources,
    Several,
)
from .managed_state import ManagedState

__all__ = [
    "DIGEST_CACHE",
    "RACY_SECONDS",
    "ArchiveMarker",
    "CgroupVersion",
    "ContainerdImages",
    "EtcdAuth",
    "EtcdPrefix",
    "EtcdValue",
    "KubeNodes",
    "KubeVersions",
    "KubelabLeftovers",
    "ManagedState",
    "PackageSources",
    "Several",
    "kept_digest_command",
    "kept_digests_command",
]
