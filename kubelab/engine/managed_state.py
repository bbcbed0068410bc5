"""The ``ManagedState`` fact: in one command, the state of what kubelab manages on a host
(files, units, users; see ``hoststate``)."""

import re
import shlex
from datetime import datetime, timezone

from pyinfra.api import FactBase

from .digest_cache import DIGEST_CACHE, digests_script

SHOW = "systemctl show -p ActiveState -p SubState -p UnitFileState -p ActiveEnterTimestamp"
# systemctl show's blocks, one per unit in the order named, each line as ``U <unit> <line>``.
BLOCKS_AWK = (
    'BEGIN { split(units, unit, " "); i = 1 } /^$/ { i++; next } { print "U " unit[i] " " $0 }'
)


def units_script(units) -> str:
    """Shell: ``U <unit> <property>=<value>`` lines for each unit, from one ``systemctl show``
    with microsecond UTC timestamps (systemd 248+). An older systemd shows each unit on its
    own, and ``date`` turns its last start into ``Since=<microseconds>``."""
    quoted_units = " ".join(shlex.quote(unit) for unit in units)
    names = shlex.quote(" ".join(units))
    fallback = (
        f"for unit in {quoted_units}; do "
        f'props=$({SHOW} "$unit" 2>/dev/null); '
        'printf "%s\\n" "$props" | sed "s|^|U $unit |"; '
        "since=$(printf '%s\\n' \"$props\" | sed -n 's/^ActiveEnterTimestamp=//p'); "
        '[ -z "$since" ] || echo "U $unit Since=$(date -d "$since" +%s%6N)"; done'
    )
    return (
        f"if props=$({SHOW} --timestamp=us+utc {quoted_units} 2>/dev/null); then "
        f"printf '%s\\n' \"$props\" | awk -v units={names} "
        f"{shlex.quote(BLOCKS_AWK)}; else {fallback}; fi"
    )


def utc_microseconds(timestamp: str) -> int | None:
    """``Mon 2026-12-07 01:02:03.123456 UTC`` (systemd's ``us+utc``) in microseconds."""
    match = re.fullmatch(r"\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{6}) UTC", timestamp)
    if not match:
        return None
    seconds = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    return int(seconds.timestamp()) * 1_000_000 + int(match[2])


class ManagedState(FactBase):
    """
    In one command, the state of what kubelab manages on a host: of each of ``paths`` that
    exists, its type (``f`` file, ``d`` directory), mode (octal digits, as pyinfra's ``File``),
    user, group and mtime (microseconds since the epoch), and for those in ``digests`` its
    sha256 (read again only when the file changed: DIGEST_CACHE); for each of ``units``, whether
    it is running and enabled (as pyinfra's ``SystemdStatus`` and ``SystemdEnabled`` tell) and
    when it last became active (microseconds, ``None`` when it is not active); each of
    ``users`` that exists, with its home and shell; the host's time (seconds).
    """

    RUNNING = ("running", "waiting", "exited", "listening", "mounted")  # SystemdStatus' values
    ENABLED = ("enabled", "static")  # SystemdEnabled's

    @staticmethod
    def default():
        return {"paths": {}, "units": {}, "users": {}, "now": None}

    def command(self, paths=(), digests=(), units=(), users=(), cache=DIGEST_CACHE):
        def words(items):
            return " ".join(shlex.quote(item) for item in items)

        script = []
        if paths:
            script.append(
                f"find -H {words(paths)} -maxdepth 0 -printf 'F %y %m %u %g %T@ %p\\n' 2>/dev/null"
            )
        if digests:
            script.append(digests_script(words(digests), cache))
        if units:
            script.append(units_script(units))
        if users:
            script.append(f"getent passwd {words(users)} | sed 's/^/P /'")
        script.append('echo "N $(date +%s)"')
        return "; ".join(script)

    def process(self, output):
        state = self.default()
        units = state["units"]
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "F":
                type_, mode, user, group, mtime, path = rest.split(" ", 5)
                seconds, _, fraction = mtime.partition(".")
                state["paths"][path] = {
                    "type": type_,
                    "mode": int(mode),
                    "user": user,
                    "group": group,
                    "mtime": int(seconds) * 1_000_000 + int((fraction + "000000")[:6]),
                    "sha256": None,
                }
            elif kind == "D":
                digest, _, path = rest.partition("  ")
                if path in state["paths"]:
                    state["paths"][path]["sha256"] = digest
            elif kind == "U":
                unit, _, prop = rest.partition(" ")
                key, _, value = prop.partition("=")
                units.setdefault(unit, {"running": False, "enabled": False, "since": None})
                if key == "SubState":
                    units[unit]["running"] = value in self.RUNNING
                elif key == "UnitFileState":
                    units[unit]["enabled"] = value in self.ENABLED
                elif key == "ActiveState":
                    units[unit]["active"] = value in ("active", "reloading")
                elif key == "ActiveEnterTimestamp" and utc_microseconds(value):
                    units[unit]["since"] = utc_microseconds(value)
                elif key == "Since" and value.isdigit():
                    units[unit]["since"] = int(value)
            elif kind == "P":
                fields = rest.split(":")
                if len(fields) == 7:
                    state["users"][fields[0]] = {"home": fields[5], "shell": fields[6]}
            elif kind == "N" and rest.strip().isdigit():
                state["now"] = int(rest)
        for unit in units.values():
            if not unit.pop("active", False):
                unit["since"] = None
        return state
