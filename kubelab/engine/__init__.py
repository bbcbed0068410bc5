"""The re-run engine: what runs once, each host's state, files in place, facts.

The rest of kubelab uses it through the names of ``api``, re-exported here.
"""

from . import api
from .api import (
    Step,
    add_step,
    attributes_differ,
    changes,
    current_state,
    deploy_file_is_no_module,
    differs,
    exists,
    fact,
    file_state,
    host_now,
    manage,
    manage_unit,
    path_state,
    per_run,
    prefetch,
    run_cache,
    sha256,
    unit_state,
    will_ask,
    written_after_start,
)

VERBS = api.VERBS  # place, put, service, install: looked up when first used
__getattr__ = api.__getattr__

__all__ = [
    "Step",
    "add_step",
    "attributes_differ",
    "changes",
    "current_state",
    "deploy_file_is_no_module",
    "differs",
    "exists",
    "fact",
    "file_state",
    "host_now",
    "manage",
    "manage_unit",
    "path_state",
    "per_run",
    "prefetch",
    "run_cache",
    "sha256",
    "unit_state",
    "will_ask",
    "written_after_start",
]
