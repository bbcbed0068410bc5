"""modern: etcd's members, one per master, named after its short name.

Which masters hold etcd's data decides how each member starts (read before the run, with the
masters' first facts, and only when there are several masters: a one-master run reads nothing
more than it did):

- none (a first deploy): every master's file lists every master, ``new``, and every member
  starts in the same operation (a member of a new cluster is ready only with a quorum);
- all of them: each file the same, left as it is while it differs only in what etcd reads at a
  member's first start (``ETCD_INITIAL_CLUSTER*``: etcd ignores them once it holds data);
- some of them (growing): the others join one at a time, in the inventory's order, each turn
  the same ``common.step`` operations on every master (``nothing`` on all but the joining one):
  ``member add`` against the running members (not when it is one already: a resumed run), its
  file listing them and itself, ``existing``, its start, then a bounded wait until it answers
  and its raft index is close to the leader's.

A member deployed before several masters were advertises the peer URL
``http://localhost:<peer port>``: ``member update`` gives it its address-based one just before
etcd restarts on the new file (one member needs no peer for that).
"""

import shlex
from io import StringIO
from itertools import combinations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.files import Directory
from pyinfra.operations import files

from .. import engine
from ..engine import bounds, clients, shell
from ..engine.common import render, step
from ..settings import topology
from ..settings.defaults import fail

CONFIG = "/etc/default/etcd"
DATA = "/var/lib/etcd/default"  # ETCD_DATA_DIR
MEMBER_DIR = f"{DATA}/member"  # what a member that ever started holds
NEW, EXISTING = "new", "existing"
CATCH_UP_SECONDS = 300  # a joining member's bound to answer and catch up with the leader
CATCH_UP_PAUSE = 2
MEMBER_ADD_SECONDS = 60  # a joining member's bound for etcd to accept its ``member add``
MAX_LAG = 100  # raft entries a joined member may be behind the leader's index
# awk over ``etcdctl endpoint status -w fields`` (one block per endpoint: its header's
# MemberID, the Leader's ID, its RaftIndex, then its Endpoint): whether the member at ``me``
# is at most ``max`` entries behind the leader's raft index; else one line saying why.
LAG_AWK = (
    '/^"MemberID" :/ {id=$3} /^"Leader" :/ {leader=$3} /^"RaftIndex" :/ {idx=$3} '
    '/^"Endpoint" :/ {ep=$3; gsub(/"/, "", ep); at[id]=idx; if (ep == me) mine=idx} '
    'END {if (mine == "" || !(leader in at)) {print "no raft index of this member or of the '
    'leader"; exit 1} if (at[leader] - mine > max) {print "raft index " at[leader] - mine '
    '" behind the leader"; exit 1}}'
)


def several() -> bool:
    return len(topology.masters()) > 1


def data_facts(target) -> list:
    """What the masters' first facts add (several masters only): whether it holds data."""
    if several() and topology.is_master(target):
        return [(Directory, {"path": MEMBER_DIR})]
    return []


def holds_data(target) -> bool:
    return bool(engine.fact(Directory, target, path=MEMBER_DIR))


def joining() -> list:
    """The masters that join a running etcd in this run, in the inventory's order: those
    without data while another holds some. The first master must hold data then (it keeps
    the cluster's identity: certificates, the service-account issuer)."""
    if not several():
        return []
    return engine.per_run("etcd joining", _joining)


def _joining() -> list:
    masters = topology.masters()
    holding = [target for target in masters if holds_data(target)]
    if not holding:
        return []
    first = masters[0]
    if first not in holding:
        fail(
            topology.MASTERS_GROUP,
            first,
            f"the first master holds no etcd data while {holding[0].name} does: new masters go "
            "after the cluster's masters in the inventory (the first one stays first)",
        )
    return [target for target in masters if target not in holding]


def members_before(target) -> list:
    """The members running when ``target`` joins: the masters holding data and the masters
    joining before it, in the inventory's order."""
    joiners = joining()
    earlier = joiners[: joiners.index(target)] if target in joiners else joiners
    return [m for m in topology.masters() if m not in joiners or m in earlier]


def initial_cluster(members) -> str:
    return ",".join(f"{topology.short_name(m)}={topology.etcd_peer_url(m)}" for m in members)


def config_text(template_data: dict, members, state: str) -> str:
    return render(
        CONFIG,
        **template_data,
        initial_cluster=initial_cluster(members),
        initial_cluster_state=state,
    )


def steady_text(template_data: dict) -> str:
    """This master's file when it holds data or all start together: every master, ``new``."""
    return config_text(template_data, topology.masters(), NEW)


def accepted_texts(template_data: dict) -> list[str]:
    """The files a member holding data may keep as they are: any list of members with it in
    it, ``new`` or ``existing`` (what a first deploy or a join wrote; etcd reads neither once
    it holds data). With one master, or without data (a first start reads them): the steady
    file alone."""
    masters = topology.masters()
    if not several() or not holds_data(host):
        return []
    others = [m for m in masters if m != host]
    texts = []
    for count in range(len(others) + 1):
        for chosen in combinations(others, count):
            members = [m for m in masters if m == host or m in chosen]
            texts += [config_text(template_data, members, state) for state in (NEW, EXISTING)]
    return texts


def place_config(template_data: dict):
    """This master's file (not on a joining master: its turn writes it), kept as it is while
    it differs from the steady one only in ``ETCD_INITIAL_CLUSTER*``."""
    text = steady_text(template_data)
    engine.manage(CONFIG)

    accepted = []  # rendered once, when first asked (at execution)

    def differs():
        if not engine.differs(CONFIG, text.encode()):
            return False
        if not accepted:
            accepted.extend(accepted_texts(template_data) or [text])
        return all(engine.differs(CONFIG, other.encode()) for other in accepted)

    return engine.add_step(
        f"Configure {CONFIG}",
        CONFIG,
        differs,
        lambda: files.put._inner(src=StringIO(text), dest=CONFIG),
    )


# The peer URL of a member deployed before several masters were ---------------------------


def outdated_member(name: str, url: str) -> str:
    """Shell: awk over ``etcdctl member list`` printing the ID of the member ``name`` when its
    peer URLs are not ``url``."""
    return f"awk -F', ' -v n={name} -v u={url} '$3 == n && $4 != u {{print $1}}'"


def peer_url_update_command() -> str:
    """Shell: this member's peer URL in etcd's membership made its address-based one, when
    etcd answers on this master and holds another; nothing when etcd does not answer (it is
    not running: a first start)."""
    name, url = topology.short_name(), topology.etcd_peer_url()
    e = clients.etcdctl_line(3, topology.etcd_member_url(), clients.etcdctl_options())
    problem = f"kubelab: {host.name}: etcd member {name}: setting its peer URL to {url}: "
    select = outdated_member(name, url)
    return (
        f'e() {{ {e} "$@"; }}; if list=$(e member list 2>/dev/null); then '
        f"id=$(printf '%s\\n' \"$list\" | {select}); "
        f'[ -z "$id" ] || out=$(e member update "$id" --peer-urls={url} 2>&1) || '
        f"{shell.or_fail(problem, shell.last_line('out'))}; fi"
    )


def before_restart() -> list[str]:
    """What runs just before etcd restarts on this master: the peer URL's update, when etcd
    runs now (a stopped etcd starts: a first deploy, nothing to update)."""
    return [peer_url_update_command()] if engine.unit_state("etcd.service")["running"] else []


# Joining a running etcd, one master at a time --------------------------------------------


def member_add_command(members) -> str:
    """Shell, on the joining master: ``member add`` against the running members, unless its
    peer URL is a member's already (a run that stopped after adding it)."""
    name, url = topology.short_name(), topology.etcd_peer_url()
    endpoints = ",".join(topology.etcd_member_url(m) for m in members)
    e = clients.etcdctl_line(3, endpoints, clients.etcdctl_options())
    where = f"kubelab: {host.name}: etcd member {name}: "
    listing = f"{where}listing the members at {endpoints}: "
    unlisted = shell.or_fail(listing, shell.last_line("list"))
    # etcd refuses to add a member ("unhealthy cluster") until the one added before has been
    # connected for a few seconds (its strict reconfiguration check): tried again, bounded; a
    # try whose answer was lost but which added it counts (its peer URL is listed then).
    listed = f'e member list 2>/dev/null | grep -qF ", {url},"'
    add = f"{{ {listed} || e member add {name} --peer-urls={url}; }}"
    adding = shell.until_deadline(
        add, MEMBER_ADD_SECONDS, CATCH_UP_PAUSE, f"{where}adding it at {endpoints}: "
    )
    return (
        f'e() {{ {e} "$@"; }}; list=$(e member list 2>&1) || {unlisted}; '
        f'case "$list" in *", {url},"*) ;; *) {adding};; esac'
    )


def caught_up_command(members) -> str:
    """Shell, on the joined master: until its endpoint is healthy and its raft index is within
    MAX_LAG of the leader's (every member asked), at most CATCH_UP_SECONDS."""
    name, own = topology.short_name(), topology.etcd_member_url()
    everyone = ",".join(topology.etcd_member_url(m) for m in [*members, host])
    options = clients.etcdctl_options()
    health = f"{clients.etcdctl_line(3, own, options)} endpoint health"
    status = f"{clients.etcdctl_line(3, everyone, options)} endpoint status -w fields"
    lag = f"awk -v me={own} -v max={MAX_LAG} {shlex.quote(LAG_AWK)}"
    check = f"{health} && {{ {status} 2>/dev/null | {lag}; }}"
    problem = (
        f"kubelab: {host.name}: etcd member {name} did not answer at {own} with its raft index "
        f"within {MAX_LAG} of the leader's in {CATCH_UP_SECONDS} s: "
    )
    return shell.until_deadline(check, CATCH_UP_SECONDS, CATCH_UP_PAUSE, problem)


@operation()
def member_joined(add_command: str, text: str):
    """The joining member added (``add_command``), its file (the running members and itself,
    ``existing``) in place, etcd started and enabled."""
    yield add_command
    yield from files.put._inner(src=StringIO(text), dest=CONFIG)
    yield "systemctl daemon-reload"
    yield "systemctl start etcd.service"
    yield "systemctl enable etcd.service"


@operation()
def member_caught_up(command: str):
    yield command


def no_master_failed(current) -> bool:
    failed = current.failed_hosts or ()
    return not any(target in failed for target in topology.masters())


def member_turn(template_data: dict, index: int, target, count: int):
    """One joining master's turn: the same steps on every master."""
    current = engine.current_state()
    mine = host == target
    members = members_before(target) if mine else []
    text = config_text(template_data, [*members, host], EXISTING) if mine else ""
    turn = f"etcd member {topology.short_name(target)} joins ({index + 1}/{count}): "
    gate = lambda: no_master_failed(current)  # noqa: E731 (asked at execution)
    add = member_add_command(members) if mine else ""
    label = f"{turn}member add, configure, start"
    bounds.waits_on(
        step(mine, member_joined, name=label, add_command=add, text=text, _if=gate),
        label,
        "etcd's running members (member add) and its start (systemd's start timeout, 90 s)",
    )
    wait = caught_up_command(members) if mine else ""
    label = f"{turn}wait until it answers and caught up with the leader"
    bounds.waits_on(
        step(mine, member_caught_up, name=label, command=wait, _if=gate),
        label,
        f"its endpoint's health and raft index (at most {CATCH_UP_SECONDS} s)",
    )


def join_turns(template_data: dict):
    joiners = joining()
    for index, target in enumerate(joiners):
        member_turn(template_data, index, target, len(joiners))
