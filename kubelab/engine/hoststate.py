"""What kubelab manages on a host, read in one command per host and run.

While pyinfra prepares a run, every component names what it manages on the host: the files it
writes (``manage``), its directories, users and services. The first time a run asks about any
of them (once operations execute), one ``ManagedState`` fact reads all of them: each file's
sha256, mode, owner and mtime, each service's state and last start. kubelab then writes only
what differs (``placement``, and pyinfra operations' ``_if``) and decides restarts from the
same state: a service restarts when one of its files changed in this run, or when one was
written after the service last started (a run that stopped half-way).

What is named after the state was read (pyinfra asking an operation for its changes while it
prepares, without ``-y``) is read by the next question, in one more command.
"""

import hashlib

from pyinfra import host

from . import once
from .facts import ManagedState


def _host_state() -> dict:
    """This host's registry of what it manages, and the state read so far."""
    return once.run_cache("hoststate").setdefault(
        host.name,
        {
            "wanted": {"paths": {}, "digests": {}, "units": {}, "users": {}},
            "read": None,
            "facts": {},
        },
    )


def manage(path: str, digest: bool = True):
    """The file (or directory) at ``path`` is kubelab's; ``digest``: its sha256 matters."""
    wanted = _host_state()["wanted"]
    wanted["paths"][path] = None
    if digest:
        wanted["digests"][path] = None


def manage_unit(unit: str):
    """The systemd unit ``unit`` is kubelab's: its state is read with the rest."""
    _host_state()["wanted"]["units"][unit] = None


def manage_user(user: str):
    _host_state()["wanted"]["users"][user] = None


def _pending(entry) -> dict | None:
    """What was named and not read yet (None: nothing), kind -> tuple of names."""
    wanted, read = entry["wanted"], entry["read"]
    if read is None:
        return {kind: tuple(items) for kind, items in wanted.items()}
    pending = {
        kind: tuple(item for item in items if item not in read["asked"][kind])
        for kind, items in wanted.items()
    }
    return pending if any(pending.values()) else None


def _record(entry, asked: dict, state: dict):
    read = entry["read"]
    if read is None:
        read = entry["read"] = {**state, "asked": {kind: set() for kind in entry["wanted"]}}
    else:
        for kind in ("paths", "units", "users"):
            read[kind].update(state[kind])
    for kind, items in asked.items():
        read["asked"][kind].update(items)


def current() -> dict:
    """The state of everything named so far, read once (and once more for what is new)."""
    entry = _host_state()
    asked = _pending(entry)
    if asked is not None:
        _record(entry, asked, host.get_fact(ManagedState, **asked))
    return entry["read"]


def will_ask(cls, **kwargs):
    """An operation will ask for the fact ``cls`` with ``kwargs`` (through ``once.fact``)
    when it runs: ``read_ahead`` reads it with the rest."""
    _host_state()["facts"][(cls, tuple(sorted(kwargs.items())))] = (cls, kwargs)


def read_ahead():
    """Read the state of everything named so far now, with the facts operations will ask
    for (``will_ask``), in one command. At the end of a host's preparation: the host works
    out its answers while pyinfra prepares the other hosts, instead of the first operation
    waiting on them."""
    entry = _host_state()
    asked = _pending(entry)
    facts = list(entry["facts"].values())
    once.prefetch(host, [*facts, *([(ManagedState, asked)] if asked else [])])
    if asked is not None:
        _record(entry, asked, once.fact(ManagedState, **asked))


def _found(path: str, digest: bool = False) -> dict | None:
    if path not in _host_state()["wanted"]["paths"] or digest:
        manage(path, digest)
    return current()["paths"].get(path)


def file(path: str) -> dict | None:
    """The regular file at ``path``: sha256, mode (octal digits), user, group, mtime."""
    found = _found(path, digest=True)
    return found if found and found["type"] == "f" else None


def directory(path: str) -> dict | None:
    """The directory at ``path``: mode, user, group."""
    found = _found(path)
    return found if found and found["type"] == "d" else None


def exists(path: str) -> bool:
    """Whether anything is at ``path``."""
    return _found(path) is not None


def stat(path: str) -> dict | None:
    """What is at ``path`` (file or directory; its sha256 only if asked for elsewhere)."""
    return _found(path)


def unit(name: str) -> dict:
    """``running``, ``enabled``, ``since`` (its last start, microseconds; None if inactive)."""
    manage_unit(name)
    return current()["units"].get(name, {"running": False, "enabled": False, "since": None})


def user(name: str) -> dict | None:
    """``home`` and ``shell`` of the user ``name``; None when there is no such user."""
    manage_user(name)
    return current()["users"].get(name)


def now() -> int:
    """The host's time, in seconds since the epoch."""
    return current()["now"]


def sha256(content: bytes) -> str:
    """The sha256 of ``content``, as the host's state gives a file's."""
    return hashlib.sha256(content).hexdigest()


def _owner_or_mode_differ(found: dict | None, user, group, mode) -> bool:
    if not found:
        return True
    wanted = {"user": user, "group": group, "mode": None if mode is None else int(mode)}
    return any(value is not None and found[key] != value for key, value in wanted.items())


def differs(path: str, content: bytes, user=None, group=None, mode=None) -> bool:
    """Whether the file at ``path`` lacks ``content``, or (those given) its owner and mode."""
    found = file(path)
    if not found or found["sha256"] != sha256(content):
        return True
    return _owner_or_mode_differ(found, user, group, mode)


def attributes_differ(path: str, user=None, group=None, mode=None) -> bool:
    """Whether nothing is at ``path``, or (those given) its owner or mode differ."""
    return _owner_or_mode_differ(stat(path), user, group, mode)


def directory_differs(path: str, user=None, group=None, mode=None) -> bool:
    """Whether ``path`` is no directory, or (those given) its owner or mode differ."""
    return _owner_or_mode_differ(directory(path), user, group, mode)


def unread(unit_name: str, paths) -> list[str]:
    """Those of ``paths`` written after the active ``unit_name`` last started."""
    since = unit(unit_name)["since"]
    if since is None:
        return []
    return [path for path in paths if (_found(path) or {}).get("mtime", 0) > since]
