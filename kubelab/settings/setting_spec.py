"""What one setting is: its default, meaning, type, range, scope and profiles, in one declaration.

The declarations (cluster_settings.py, run_settings.py) are read by the deploys (defaults),
by validation (types, ranges, cluster-wide agreement, each value's form) and by ``make docs``
(the README's settings table).
"""

from typing import Any, NamedTuple

CLUSTER = "cluster-wide"  # read on every host: every host must hold the master's value
HOST = "per host"

PORT = (1, 65535)
DAY = (1, 86400)  # seconds: the longest any wait may be

KIND_NAMES = {bool: "bool", int: "int", str: "str", dict: "dict"}


class Setting(NamedTuple):
    name: str
    default: Any
    doc: str
    profiles: str = "both"  # "both", "el7" or "modern"
    # The type a value must have; None: the default's (a setting unset by default: unchecked).
    kind: type | None = None
    limits: tuple[int, int] | None = None  # a whole number's lowest and highest value
    scope: str = HOST
    # What a string holds, checked by value_checks: "release" (a release tag), "image" (an image
    # reference); None: checked there by name, if at all.
    form: str | None = None

    @property
    def optional(self) -> bool:
        """Unset (None) by default: a value is then checked only when set."""
        return self.default is None

    @property
    def value_type(self) -> type | None:
        if self.kind is not None:
            return self.kind
        return None if self.optional else type(self.default)

    def type_text(self) -> str:
        """The type column of the README's table: ``int 1-65535``, ``str``, ``any``..."""
        text = KIND_NAMES.get(self.value_type, "any")
        return f"{text} {self.limits[0]}-{self.limits[1]}" if self.limits else text
