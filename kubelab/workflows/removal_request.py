"""Which minions a removal names (``remove_nodes``), checked before anything runs.

The setting is read from the master, where ``--data`` and group data agree (cluster-wide).
"""

from ..settings import topology
from ..settings.defaults import fail, setting
from ..settings.profiles import require_modern


def requested_names() -> list[str]:
    value = setting("remove_nodes", topology.master())
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        return [name.strip() for name in value if name.strip()]
    return [value]  # validation names it


def removed_hosts() -> list:
    """The minions ``remove_nodes`` names (validated: each names exactly one)."""
    hosts = []
    for name in requested_names():
        for target in topology.minions():
            if name in (target.name, topology.short_name(target)) and target not in hosts:
                hosts.append(target)
    return hosts


def check_request():
    """``remove_nodes`` names minions of this modern cluster and leaves one, unless told."""
    master = topology.master()
    value = setting("remove_nodes", master)
    require_modern(
        "remove_nodes",
        master,
        "removing nodes",
        ": drain and delete the node with kubectl, then stop its services by hand",
    )
    names = requested_names()
    if not names:
        fail(
            "remove_nodes",
            master,
            f"{'unset' if value is None else repr(value)}: name the minions to remove, "
            "remove_nodes=NAME[,NAME] (inventory names or short names)",
        )
    minions = topology.minions()
    listing = ", ".join(target.name for target in minions)
    for name in names:
        if not isinstance(name, str):
            fail("remove_nodes", master, f"{value!r} is not a name or a list of names")
        if name in (master.name, topology.short_name(master)):
            fail(
                "remove_nodes",
                master,
                f"{name!r} is the master: only minions can be removed (deploys/reset.py "
                "removes the whole cluster)",
            )
        if any(name in (t.name, topology.short_name(t)) for t in topology.masters()):
            fail(
                "remove_nodes",
                master,
                f"{name!r} is a master: removing a master (an etcd member) is not supported, "
                "only minions can be removed",
            )
        if not any(name in (t.name, topology.short_name(t)) for t in minions):
            fail(
                "remove_nodes",
                master,
                f"{name!r} is not a minion of the inventory (its minions: {listing})",
            )
    if len(removed_hosts()) == len(minions) and not setting("remove_last_minion", master):
        fail(
            "remove_nodes",
            master,
            f"{', '.join(t.name for t in removed_hosts())} would remove every minion of the "
            "cluster, leaving no node for "
            "its pods: set remove_last_minion=True to do it anyway",
        )
