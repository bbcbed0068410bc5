"""modern with ``secure``: who may do what in etcd, by the common name of a client certificate.

etcd's CA already keeps every certificate of the cluster CA out. Among etcd's own clients,
etcd's auth (v3 API) keeps flanneld to flannel's prefix: with auth enabled and client
certificates required, etcd takes a certificate's common name as the user (etcd 3.6,
server/auth/store.go ``AuthInfoFromTLS``). So one minion's flanneld key reads and writes
flannel's config and leases (``<flannel_etcd_prefix>/``: its reads, its lease transactions and
its watches stay there; granting a lease needs no key permission) and nothing else: no
``/registry/``, no Secret.

Users, none with a password: ``root`` (etcd enables auth only once it exists with the root
role), ``apiserver`` (the apiserver's certificate) and ``etcd`` (etcd's serving certificate,
kubelab's own etcdctl on the master: snapshots, flannel's config, node removal) with the root
role; ``flanneld`` with the role ``flanneld``, read and write on flannel's prefix.

el7's etcd 3.3 and flanneld 0.7.1 speak the v2 API, whose auth knows no certificates: there
etcd's own CA is the whole protection, and flanneld's key still reads all of etcd v2.
"""

import shlex

from pyinfra import host
from pyinfra.api import operation

from .. import engine
from ..engine import bounds, clients, shell
from ..engine.facts import EtcdAuth
from ..pki import etcd_tls
from ..settings import topology
from ..settings.defaults import setting
from ..settings.profiles import profile

ROOT = "root"
FLANNELD = "flanneld"
# user -> its roles (etcd's CN of: etcd's serving certificate, the apiserver's, flanneld's)
USERS = {ROOT: [ROOT], "apiserver": [ROOT], "etcd": [ROOT], FLANNELD: [FLANNELD]}
READWRITE = 2  # etcd's authpb.Permission_Type
ATTEMPTS = 10
PAUSE = 2  # seconds between two attempts


def applies() -> bool:
    return profile() == "modern" and etcd_tls.enabled()


def flannel_prefix() -> str:
    """The keys flanneld may use: flannel's prefix and everything below it, no sibling."""
    return setting("flannel_etcd_prefix").rstrip("/") + "/"


def prefix_end(prefix: str) -> str:
    """The end of etcd's range of keys starting with ``prefix`` (etcdctl's ``--prefix``)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def state_fact() -> tuple:
    return EtcdAuth, {
        "endpoint": topology.etcd_url(),
        "options": clients.etcdctl_options(),
        "users": tuple(USERS),
        "roles": (FLANNELD,),
    }


def wanted_perm() -> tuple:
    prefix = flannel_prefix()
    return (READWRITE, prefix, prefix_end(prefix))


def in_place(found) -> bool:
    """Whether etcd's auth, as read before this run, is what kubelab sets up."""
    if not found or not found["enabled"]:
        return False
    users = found["users"]
    if any(set(roles) - set(users.get(user) or ()) for user, roles in USERS.items()):
        return False
    return wanted_perm() in (found["perms"].get(FLANNELD) or [])


def setup_command() -> str:
    """Users, the flanneld role and auth on, each step idempotent (what exists stays), the
    whole retried while etcd (re)starts: ATTEMPTS tries, each etcdctl call bounded by its own
    timeouts; then one line naming the endpoint and etcdctl's last error."""
    steps = []
    for user, roles in USERS.items():
        steps.append(f"{{ e user get {user} >/dev/null 2>&1 || e user add {user} --no-password; }}")
        steps += [f"e user grant-role {user} {role}" for role in roles if role == ROOT]
    prefix = shlex.quote(flannel_prefix())
    steps += [
        f"{{ e role get {FLANNELD} >/dev/null 2>&1 || e role add {FLANNELD}; }}",
        f"e role grant-permission {FLANNELD} --prefix=true readwrite {prefix}",
        f"e user grant-role {FLANNELD} {FLANNELD}",
        "e auth enable",
    ]
    endpoint = topology.etcd_url()
    problem = (
        f"kubelab: {host.name}: setting up etcd's auth (flanneld kept to {flannel_prefix()}): "
        f"etcd at {endpoint} did not accept it in {ATTEMPTS} attempts (each call at most "
        f"{bounds.ETCD_DIAL_TIMEOUT} s to connect, {bounds.ETCD_COMMAND_TIMEOUT} s to answer): "
    )
    setup = shell.attempts(f"{{ {' && '.join(steps)}; }}", ATTEMPTS, PAUSE, problem)
    return f'e() {{ {clients.etcdctl()} "$@"; }}; {setup}'


@operation()
def auth_enabled():
    """etcd's users, flanneld's role and auth, set up when what was read before differs."""
    fact, kwargs = state_fact()
    if in_place(engine.fact(fact, topology.master(), **kwargs)):
        host.noop("etcd's auth keeps flanneld to flannel's prefix")
        return
    yield setup_command()


def deploy_etcd_auth():
    """After etcd runs with its certificates: flanneld's identity kept to flannel's prefix."""
    if not applies() or host != topology.master():  # cluster-level: the first master's
        return
    fact, kwargs = state_fact()
    engine.will_ask(fact, **kwargs)  # read with the rest of this host's state
    auth_enabled(name=f"etcd's auth: flanneld reads and writes {flannel_prefix()} only")
