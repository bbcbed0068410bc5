"""Facts read once per host and run.

pyinfra 3 keeps no fact cache: every ``host.get_fact`` is one remote command. What cannot
change while kubelab runs (the OS, the cgroup version, the package sources), and what is read
before any operation runs (flannel's config in etcd, whether the master holds a CA), is read
here once per host and run, whichever host's deploy asks for it.

pyinfra's CLI prepares every host at once, each in a greenlet: a host that asks for what
another host's preparation is reading waits for that read instead of reading it again.
"""

import weakref

from gevent.event import AsyncResult
from pyinfra import host, state

_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # State -> its cache


def current_state():
    """The State of this run itself, not pyinfra's context proxy (which a callback evaluated at
    execution may no longer resolve to the same run)."""
    return state._get_module()


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


def fact(cls, target=None, **kwargs):
    """``target``'s (default: the current host's) fact ``cls`` with ``kwargs``, read once."""
    target = host if target is None else target
    key = (target.name, cls, tuple(sorted(kwargs.items())))
    return per_run(key, lambda: target.get_fact(cls, **kwargs))
