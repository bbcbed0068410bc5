"""Facts read once per host and run.

pyinfra 3 keeps no fact cache: every ``host.get_fact`` is one remote command. What cannot
change while kubelab runs (the OS, the cgroup version, the package sources), and what is read
before any operation runs (flannel's config in etcd, whether the master holds a CA), is read
here once per host and run, whichever host's deploy asks for it.

pyinfra prepares one host after another, so each fact read while it prepares is one round trip
after the other, as many as there are hosts. ``prefetch`` reads such facts of every host at
once, before the first host's preparation asks for them.
"""

import weakref

import gevent
from pyinfra import host, state
from pyinfra.context import ctx_host

_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # State -> its cache


def run_cache(name: str) -> dict:
    """This run's cache called ``name`` (a dict kubelab's modules fill as they like)."""
    caches = _RUNS.setdefault(state._get_module(), {})  # the State, not pyinfra's proxy
    return caches.setdefault(name, {})


def fact(cls, target=None, **kwargs):
    """``target``'s (default: the current host's) fact ``cls`` with ``kwargs``, read once."""
    target = host if target is None else target
    cache = run_cache("facts")
    key = _key(target, cls, kwargs)
    if key not in cache:
        cache[key] = target.get_fact(cls, **kwargs)
    return cache[key]


def _key(target, cls, kwargs: dict) -> tuple:
    return (target.name, cls, tuple(sorted(kwargs.items())))


def prefetch(requests):
    """Read the facts ``requests`` names (``(target, cls, kwargs)`` each) that are not read yet,
    every host's in parallel; a failure counts for its host as it would in the host's turn."""
    current = state._get_module()
    if not hasattr(current, "active_hosts"):  # a State not initialised: no run to read ahead of
        return
    cache = run_cache("facts")

    def read(target, cls, kwargs, key):
        with ctx_host.use(target):
            cache[key] = target.get_fact(cls, **kwargs)

    readers = []
    for target, cls, kwargs in requests:
        key = _key(target, cls, kwargs)
        if key not in cache and target in current.active_hosts:
            readers.append(current.pool.spawn(read, target, cls, kwargs, key))
    gevent.joinall(readers, raise_error=True)
