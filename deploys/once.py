"""Facts read once per host and run.

pyinfra 3 keeps no fact cache: every ``host.get_fact`` is one remote command. What cannot
change while kubelab runs (the OS, the cgroup version, the package sources), and what is read
before any operation runs (flannel's config in etcd, whether the master holds a CA), is read
here once per host and run, whichever host's deploy asks for it.
"""

import weakref

from pyinfra import host, state

_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # State -> its cache


def run_cache(name: str) -> dict:
    """This run's cache called ``name`` (a dict kubelab's modules fill as they like)."""
    caches = _RUNS.setdefault(state._get_module(), {})  # the State, not pyinfra's proxy
    return caches.setdefault(name, {})


def fact(cls, target=None, **kwargs):
    """``target``'s (default: the current host's) fact ``cls`` with ``kwargs``, read once."""
    target = host if target is None else target
    cache = run_cache("facts")
    key = (target.name, cls, tuple(sorted(kwargs.items())))
    if key not in cache:
        cache[key] = target.get_fact(cls, **kwargs)
    return cache[key]
