"""Facts read once per host and run.

pyinfra 3 keeps no fact cache: every ``host.get_fact`` is one remote command. What cannot
change while kubelab runs (the OS, the cgroup version, the package sources), and what is read
before any operation runs (flannel's config in etcd, whether the master holds a CA), is read
here once per host and run, whichever host's deploy asks for it.

pyinfra's CLI prepares every host at once, each in a greenlet: a host that asks for what
another host's preparation is reading waits for that read instead of reading it again.
"""

import weakref
from contextlib import contextmanager

from gevent.event import AsyncResult
from gevent.lock import Semaphore
from pyinfra import host
from pyinfra.context import ctx_state

from .facts import Several

_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # State -> its cache


def current_state():
    """The State of this run itself, not pyinfra's context proxy (which a callback evaluated at
    execution may no longer resolve to the same run)."""
    return ctx_state.get()


def run_cache(name: str, current=None) -> dict:
    """The cache called ``name`` of this run (or of the State ``current``): a dict kubelab's
    modules fill as they like."""
    caches = _RUNS.setdefault(current or current_state(), {})
    return caches.setdefault(name, {})


def per_run(key, compute):
    """``compute()``'s result (or exception), computed once per run whoever asks."""
    results = run_cache("per_run")
    if key not in results:
        result = results[key] = AsyncResult()
        try:
            result.set(compute())
        except Exception as error:
            result.set_exception(error)
    return results[key].get()


def _key(target, cls, kwargs: dict):
    return (target.name, cls, tuple(sorted(kwargs.items())))


def prefetch(target, facts):
    """Read ``facts`` ((fact class, kwargs) pairs) of ``target`` in one command, for ``fact``
    to answer from: a remote command costs a round trip, and a host's preparation waits on
    each one it asks for."""
    results = run_cache("per_run")
    wanted = [(cls, kwargs) for cls, kwargs in facts if _key(target, cls, kwargs) not in results]
    if not wanted:
        return
    pending = {_key(target, cls, kwargs): AsyncResult() for cls, kwargs in wanted}
    results.update(pending)
    try:
        parts = tuple((cls, tuple(sorted(kwargs.items()))) for cls, kwargs in wanted)
        values = target.get_fact(Several, facts=parts)
    except Exception as error:
        for result in pending.values():
            result.set_exception(error)
        raise
    for result, value in zip(pending.values(), values, strict=True):
        result.set(value)


def fact(cls, target=None, **kwargs):
    """``target``'s (default: the current host's) fact ``cls`` with ``kwargs``, read once."""
    target = host if target is None else target
    return per_run(_key(target, cls, kwargs), lambda: target.get_fact(cls, **kwargs))


@contextmanager
def one_host_at_a_time():
    """Prepare one host at a time. pyinfra's CLI prepares every host in a greenlet, and
    preparing is CPU work that waits on nothing: hosts prepared side by side finish together,
    so their read-aheads (``hoststate.read_ahead``) all start at the end and every machine
    answers at once. One at a time, with the pauses ``placement`` makes, a host's read-ahead
    is answered while the next hosts are prepared. Not without ``-y``: pyinfra then asks each
    operation for its changes while it prepares it, and those waits must overlap."""
    if current_state().should_check_for_changes():
        yield
        return
    lock = run_cache("preparing").setdefault("lock", Semaphore())
    with lock:
        yield
