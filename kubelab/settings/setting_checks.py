"""Checks on the settings themselves: names (a typo of a kubelab setting), types and ranges, and
the cluster-wide settings every host must share with the master.

The rules come from each setting's declaration (setting_spec.py): its type (``value_type``),
range (``limits``) and scope; the first problem stops the run with one line (``fail``).
"""

import difflib
from functools import cache

from .defaults import DEFAULTS, SETTINGS, fail, setting
from .setting_spec import CLUSTER

# Data keys of pyinfra's connectors; never taken for a misspelt kubelab setting.
PYINFRA_PREFIXES = (
    "ssh_",
    "docker_",
    "podman_",
    "winrm_",
    "fake_",
    "chroot_",
    "local_",
    "vagrant_",
    "terraform_",
)


@cache
def pyinfra_data_keys() -> frozenset:
    """Data keys pyinfra itself reads: its connectors' settings and operation arguments."""
    from pyinfra.api.arguments import all_global_arguments
    from pyinfra.api.connectors import get_all_connectors

    keys = {name for name, _ in all_global_arguments()}
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}))
    return frozenset(keys)


def check_setting_names(target):
    """A data key one typo away from a kubelab setting is almost certainly that setting."""
    for key in target.data.dict():
        if not isinstance(key, str) or key in DEFAULTS or key.startswith("_"):
            continue
        if key in pyinfra_data_keys() or key.startswith(PYINFRA_PREFIXES):
            continue
        close = difflib.get_close_matches(key.lower(), DEFAULTS, n=1, cutoff=0.85)
        if close:
            fail(key, target, f"unknown setting, did you mean {close[0]!r}?")


def check_types(target):
    for item in SETTINGS:
        name, expected = item.name, item.value_type
        value = setting(name, target)
        if expected is None or (item.optional and value is None):
            continue
        if expected is bool and not isinstance(value, bool):
            if isinstance(value, str):
                fail(
                    name,
                    target,
                    f"{value!r} is a string, not True or False (write True or False without "
                    "quotes)",
                )
            fail(name, target, f"{value!r} is not True or False")
        if expected is int:
            check_whole_number(item, value, target)
        if expected is str and not isinstance(value, str):
            fail(name, target, f"{value!r} is not a string")
        if expected is dict and not isinstance(value, dict):
            fail(name, target, f"{value!r} is not a mapping (a dict)")


def check_whole_number(item, value, target):
    name = item.name
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        fail(
            name,
            target,
            f"{value!r} is a string, not a whole number (write {value.strip()} without quotes)",
        )
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, target, f"{value!r} is not a whole number")
    low, high = item.limits or (value, value)
    if not low <= value <= high:
        fail(name, target, f"{value} is out of range {low}-{high}")


def cluster_wide() -> list[str]:
    """The settings every host reads, so every host must hold the master's value."""
    return [item.name for item in SETTINGS if item.scope == CLUSTER]


def check_cluster_wide(target, master):
    """Settings every host reads must be the master's: one cluster, one network."""
    if target is master:
        return
    for name in cluster_wide():
        mine, masters = setting(name, target), setting(name, master)
        if mine != masters:
            fail(
                name,
                target,
                f"{mine!r} differs from {masters!r} on the master {master.name}: "
                "a cluster-wide setting must be the same on every host",
            )
