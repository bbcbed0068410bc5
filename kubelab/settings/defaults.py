"""Every kubelab setting, its default and its value on a host: the one place defaults live.

Each setting is declared once (cluster_settings.py, run_settings.py: default, meaning, type,
range, scope, profiles). Any of them can be overridden like any pyinfra data: in the inventory,
in group_data/, or with ``--data name=value`` on the command line. ``DEFAULTS`` is what each
``@deploy`` passes to pyinfra as ``data_defaults``; validation reads its rules from ``SETTINGS``,
and the README's settings table is generated from it.
"""

from pyinfra.api.exceptions import PyinfraError
from pyinfra_cli.exceptions import CliError

from .cluster_settings import CLUSTER_SETTINGS
from .run_settings import RUN_SETTINGS

SETTINGS = [*CLUSTER_SETTINGS, *RUN_SETTINGS]
BY_NAME = {item.name: item for item in SETTINGS}
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}


def setting(name: str, target=None):
    """A setting's value for ``target`` (default: the current host), falling back to its default."""
    from pyinfra import host

    return (host if target is None else target).data.get(name, DEFAULTS[name])


def secure_for(value, profile: str) -> bool:
    """Whether ``secure`` is on, given its value and the cluster's profile: True or False as
    set, unset (None) on for modern and off for el7 (the reference setup)."""
    return profile == "modern" if value is None else bool(value)


class SettingError(PyinfraError, CliError):
    """A setting or the inventory is wrong; raised before any operation changes a host.

    Also a CliError of pyinfra's CLI, which prints it as its one line (``--> pyinfra error:
    kubelab: setting ...``) rather than as a pyinfra error with the file and line of the
    ``raise``."""


def setting_error(name: str, target, problem: str) -> SettingError:
    where = f"on {target.name}" if target is not None else "in the inventory"
    return SettingError(f"kubelab: setting '{name}' {where}: {problem}")


def fail(name: str, target, problem: str):
    """Stop with one line; a value holding a line break cannot split it."""
    raise setting_error(name, target, problem.replace("\r", "\\r").replace("\n", "\\n"))


def settings_table() -> str:
    """The README's table of settings (tests check the README holds exactly this)."""
    rows = [
        "| setting | profiles | scope | type | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for item in SETTINGS:
        default = "unset" if item.optional else f"`{item.default!r}`"
        cells = (item.profiles, item.scope, item.type_text(), default, item.doc)
        rows.append(f"| `{item.name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)
