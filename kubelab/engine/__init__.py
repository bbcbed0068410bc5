"""The re-run engine: what runs once, each host's state, files in place, facts.

The rest of kubelab uses it through the names of ``api``, re-exported here.
"""

from . import api
from .api import *  # noqa: F403 (the interface is api's __all__)

VERBS = api.VERBS  # place, put, service, install: looked up when first used
__getattr__ = api.__getattr__
__all__ = api.__all__
