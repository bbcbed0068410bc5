"""Facts kubelab reads from hosts besides pyinfra's own."""

import base64
import json
import re
import shlex
from datetime import datetime, timezone

from pyinfra.api import FactBase, StringCommand


def etcdctl_line(api: int, endpoint: str, options: str) -> str:
    """``clients.etcdctl_line``, imported when asked: clients reads the settings through
    modules that import this one."""
    from .clients import etcdctl_line as line

    return line(api, endpoint, options)


class EtcdValue(FactBase):
    """
    The value stored under ``key`` in etcd at ``endpoint``, read with the etcd ``api`` version
    (2 or 3) the reader of that key uses. ``{"value": <text>}``; ``{"value": None}`` when the
    key is absent (v3: etcdctl prints nothing; v2: its error 100, "Key not found") or no
    etcdctl is installed (nor etcd, then); ``{"error": <etcdctl's last line>}`` when etcd could
    not be read (not answering, refused, too slow): never taken as an absent key.
    ``tls_args`` are extra etcdctl arguments (its bounds, client certificates).
    """

    MARK = "@kubelab-etcd"

    @staticmethod
    def default():
        return {"error": "no answer from etcdctl"}

    def command(self, endpoint, key, api=3, tls_args=""):
        get = f"get {shlex.quote(key)}" + ("" if api == 2 else " --print-value-only")
        etcdctl = etcdctl_line(api, endpoint, tls_args)
        # the value goes out as it comes (fd 3), etcdctl's errors into $err
        return (
            f"if ! command -v etcdctl >/dev/null 2>&1; then echo '{self.MARK} absent'; exit 0; "
            f"fi; {{ err=$({etcdctl} {get} 2>&1 >&3 3>&-); status=$?; }} 3>&1; "
            f"if [ $status = 0 ]; then echo '{self.MARK} read'; "
            "elif printf '%s\\n' \"$err\" | grep -q '^Error: *100: Key not found'; then "
            f"echo '{self.MARK} absent'; else "
            f'echo "{self.MARK} error $(printf \'%s\\n\' "$err" | grep . | tail -n 1)"; fi'
        )

    def process(self, output):
        value, outcome = [], None
        for line in output:
            if line.startswith(f"{self.MARK} "):
                outcome = line[len(self.MARK) + 1 :].strip()
            else:
                value.append(line)
        if outcome == "absent":
            return {"value": None}
        if outcome == "read":
            return {"value": "\n".join(value).strip() or None}
        if outcome and outcome.startswith("error"):
            return {"error": outcome[len("error") :].strip() or "etcdctl failed"}
        return self.default()


class ArchiveMarker(FactBase):
    """
    What the marker of an installed archive says (see ``downloads.archive``): the archive's
    sha256 (``archive``) and the sha256 each member had as unpacked from it, by the path it was
    installed at (``members``); ``None`` without a marker. A marker of an earlier kubelab holds
    the archive's sha256 alone.
    """

    def command(self, path):
        return f"cat {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        lines = [line.split() for line in output if line.strip()]
        if not lines or not re.fullmatch(r"[0-9a-f]{64}", lines[0][0]):
            return None
        members = {fields[1]: fields[0] for fields in lines[1:] if len(fields) == 2}
        return {"archive": lines[0][0], "members": members}


class CgroupVersion(FactBase):
    """
    2 when /sys/fs/cgroup is the unified cgroup v2 hierarchy (the test the kubelet makes), 1 for
    a cgroup v1 or hybrid host.
    """

    def command(self):
        return "stat -fc %T /sys/fs/cgroup"

    def process(self, output):
        return 2 if "".join(output).strip() == "cgroup2fs" else 1


class ContainerdImages(FactBase):
    """The image references containerd holds in ``namespace`` (empty without ctr or containerd)."""

    requires_command = "ctr"

    @staticmethod
    def default():
        return []

    def command(self, namespace="k8s.io"):
        ctr = f"ctr -n {shlex.quote(namespace)} --connect-timeout 10s --timeout 60s"
        return f"{ctr} images ls -q 2>/dev/null || true"

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


class PackageSources(FactBase):
    """The URLs the host's apt or yum sources name (one-line and deb822 apt sources, yum
    repositories' baseurl, mirrorlist and metalink), in order, each once."""

    @staticmethod
    def default():
        return []

    def command(self):
        return (
            "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
            "/etc/apt/sources.list.d/*.sources /etc/yum.repos.d/*.repo 2>/dev/null || true"
        )

    def process(self, output):
        urls = []
        for line in output:
            if re.match(r"\s*(deb(-src)?\s|URIs:|(baseurl|mirrorlist|metalink)\s*=)", line):
                urls += [url for url in re.findall(r"\w[\w+.-]*://[^\s\]]+", line)]
        return list(dict.fromkeys(urls))


class Several(FactBase):
    """
    Several facts read in one command: ``facts`` is a tuple of (fact class, kwargs) pairs; the
    value is the list of their values, in that order. A part whose command fails or prints
    nothing, or whose ``requires_command`` is missing, has its fact's default value.
    """

    MARK = "@kubelab-fact"

    def command(self, facts):
        self.parts = [(cls(), dict(kwargs)) for cls, kwargs in facts]
        bits = []
        for index, (fact, kwargs) in enumerate(self.parts):
            command = fact.command(**kwargs)
            needs = fact.requires_command
            if callable(needs):
                needs = needs(**kwargs)
            guard = f"command -v {needs} >/dev/null 2>&1 &&" if needs else ""
            bits += [f"echo '{self.MARK} {index}'; {guard} (", command, ") 2>/dev/null;"]
        return StringCommand(*bits, f"echo '{self.MARK} end'")

    def process(self, output):
        sections, index = {}, None
        for line in output:
            if line.startswith(f"{self.MARK} "):
                word = line.split()[1]
                index = int(word) if word.isdigit() else None
                sections[index] = []
            elif index is not None:
                sections[index].append(line)
        return [
            fact.process(sections[index]) if sections.get(index) else fact.default()
            for index, (fact, _) in enumerate(self.parts)
        ]


# The sha256 of each file ManagedState digested, with the file's fingerprint then: device, inode,
# size, mtime and ctime (a write, chmod or replacement changes the ctime, which only the clock
# sets). A file whose fingerprint still matches is not read again: most of a no-change re-run's
# time was sha256sum reading the binaries (0.9-1.5 s of CPU per host). A file changed within
# RACY_SECONDS of the read is not kept: its ctime may not tell a second change in the same tick.
DIGEST_CACHE = "/var/lib/kubelab/sha256sums"
RACY_SECONDS = 2
FINGERPRINT = "%D:%i:%s:%T@:%C@"  # find -printf: device, inode, size, mtime, ctime
DIGESTS_AWK = r"""
BEGIN {
  while ((getline line < cache) > 0) {
    i = index(line, " "); entry = substr(line, i + 1)
    known[entry] = substr(line, 1, i - 1)
    others[substr(entry, index(entry, " ") + 1)] = line
  }
  close(cache)
}
NF {
  path = substr($0, index($0, " ") + 1); delete others[path]
  if ($0 in known) sha = known[$0]
  else {
    quoted = path; gsub(/'/, "'\''", quoted); sha = ""
    command = "sha256sum '" quoted "'"
    if ((command | getline out) > 0) sha = substr(out, 1, 64)
    close(command)
    if (sha == "") next
    dirty = 1
  }
  print "D " sha "  " path
  split($1, fingerprint, ":")
  if (fingerprint[5] + 0 < now - racy) keep[path] = sha " " $0
}
END {
  if (!dirty || !writable) exit
  for (path in others) print others[path] > (cache ".new")
  for (path in keep) print keep[path] > (cache ".new")
  close(cache ".new")
  system("mv -f '" cache ".new' '" cache "'")
}
"""


def cache_writable(cache: str) -> str:
    """Shell test: the folder of the digest cache ``cache`` is there and writable."""
    folder = shlex.quote(cache.rsplit("/", 1)[0])
    return f"[ -d {folder} ] && [ -w {folder} ]"


def digests_script(quoted_paths: str, cache: str) -> str:
    """Shell: ``D <sha256>  <path>`` for each file of ``quoted_paths`` (see DIGEST_CACHE)."""
    return (
        f"(umask 077; w=0; {cache_writable(cache)} && w=1; "
        f"find -H {quoted_paths} -maxdepth 0 -type f -printf '{FINGERPRINT} %p\\n' "
        f'2>/dev/null | awk -v cache={shlex.quote(cache)} -v now="$(date +%s)" '
        f"-v racy={RACY_SECONDS} -v writable=$w {shlex.quote(DIGESTS_AWK)})"
    )


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


def kept_digest_command(path: str, sha256: str, cache: str = DIGEST_CACHE) -> str:
    """Shell: ``sha256`` kept in DIGEST_CACHE for ``path`` with its fingerprint, right after
    the file was checked against that digest and renamed into place (a new inode no one else
    has open): the next read takes it as if it had digested the file itself, so the first
    re-run after an install does not read every binary again. No folder: nothing is kept."""
    line = f"{sha256} {FINGERPRINT} %p\\n"
    return (
        f"if {cache_writable(cache)}; then (umask 077; find -H {shlex.quote(path)} "
        f"-maxdepth 0 -type f -printf '{line}' >> {shlex.quote(cache)}); fi"
    )


def kept_digests_command(listing: str, cache: str = DIGEST_CACHE) -> str:
    """Shell: as ``kept_digest_command``, the digest of each file a ``sha256sum`` listing at
    ``listing`` names (lines whose path is absolute), checked and renamed into place just
    before."""
    line = f"$sum {FINGERPRINT} %p\\n"
    return (
        f"if {cache_writable(cache)}; then (umask 077; while read -r sum path; do "
        f'case "$path" in /*) find -H "$path" -maxdepth 0 -type f -printf "{line}";; esac; '
        f"done < {shlex.quote(listing)} >> {shlex.quote(cache)}); fi"
    )


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


# A line's first word -> the list of KubelabLeftovers it goes to.
LEFTOVER_KINDS = {
    "active": "active",
    "enabled": "enabled",
    "path": "paths",
    "mountpoint": "mountpoints",
    "mount": "mounts",
    "link": "links",
}


class KubelabLeftovers(FactBase):
    """What kubelab left on a host, for deploys/reset.py and deploys/remove_node.py: which of
    ``units`` are active or enabled, which of ``paths`` exist (a mount point that holds
    something is ``mountpoint``: its contents go, not the mount), the entries of each of
    ``shared`` (directories kubelab may share with others), the mounts under ``mount_roots``,
    the interfaces of ``links`` and the iptables chains starting with ``chain_prefixes``
    (filter, nat, mangle; iptables and ip6tables).

    A dict: ``active``, ``enabled``, ``paths``, ``mountpoints``, ``mounts``, ``links``: lists;
    ``entries``: shared directory -> its entries (only for those that exist); ``chains``: list
    of (command, table, chain)."""

    @staticmethod
    def default():
        return KubelabLeftovers.empty()

    @staticmethod
    def empty() -> dict:
        keys = ("active", "enabled", "paths", "mountpoints", "mounts", "links", "chains")
        return {**{key: [] for key in keys}, "entries": {}}

    def command(self, units, paths, shared, mount_roots, links, chain_prefixes):
        def words(items):  # globs (``/run/netns/cni-*``) stay unquoted for the shell
            return " ".join(item if "*" in item else shlex.quote(item) for item in items)

        roots = "|".join(root.replace(".", "\\.") for root in mount_roots)
        prefixes = "|".join(prefix.rstrip("-") for prefix in chain_prefixes)
        return (
            f"for u in {words(units)}; do "
            'systemctl is-active -q "$u" 2>/dev/null && echo "active $u"; '
            'systemctl is-enabled -q "$u" 2>/dev/null && echo "enabled $u"; done; '
            f"for p in {words(paths)}; do "
            'if mountpoint -q "$p" 2>/dev/null; then '
            '[ -z "$(ls -A "$p" 2>/dev/null)" ] || echo "mountpoint $p"; '
            'elif [ -e "$p" ] || [ -L "$p" ]; then echo "path $p"; fi; done; '
            f"for d in {words(shared)}; do "
            '[ -d "$d" ] || continue; echo "dir $d"; '
            'ls -A "$d" 2>/dev/null | while read -r e; do echo "entry $d $e"; done; done; '
            f"findmnt -rn -o TARGET 2>/dev/null | grep -E '^({roots})' | sed 's/^/mount /'; "
            f"for l in {words(links)}; do "
            'ip link show "$l" >/dev/null 2>&1 && echo "link $l"; done; '
            "for c in iptables ip6tables; do command -v $c-save >/dev/null 2>&1 || continue; "
            "for t in filter nat mangle; do $c -w 5 -t $t -S 2>/dev/null | "
            f'awk -v c=$c -v t=$t \'$1 == "-N" && $2 ~ /^({prefixes})-/ '
            '{print "chain", c, t, $2}\'; '
            "done; done; true"
        )

    def process(self, output):
        found = self.empty()
        for line in output:
            kind, _, rest = line.strip().partition(" ")
            if kind in LEFTOVER_KINDS:
                found[LEFTOVER_KINDS[kind]].append(rest)
            elif kind == "dir":
                found["entries"].setdefault(rest, [])
            elif kind == "entry":
                directory, _, entry = rest.partition(" ")
                found["entries"].setdefault(directory, []).append(entry)
            elif kind == "chain" and len(rest.split()) == 3:
                found["chains"].append(tuple(rest.split()))
        return found


class KubeNodes(FactBase):
    """The names of the cluster's Node objects, read on the master with ``kubectl`` (its
    command with credentials and bounds); ``{"error": "..."}`` when kubectl cannot list them."""

    def command(self, kubectl):
        return (
            f"if ! command -v {kubectl.split()[0]} >/dev/null 2>&1; then "
            "echo 'error no kubectl on the master'; exit 0; fi; "
            f"out=$({kubectl} get nodes --no-headers -o custom-columns=NAME:.metadata.name 2>&1)"
            ' && printf "%s\\n" "$out" | sed "s/^/node /" '
            '|| printf "error %s\\n" "$(printf %s "$out" | tail -n 1)"'
        )

    def process(self, output):
        nodes, error = [], None
        for line in output:
            kind, _, rest = line.strip().partition(" ")
            if kind == "node" and rest:
                nodes.append(rest)
            elif kind == "error":
                error = rest or "kubectl failed"
        return {"error": error} if error else {"nodes": nodes}


class EtcdPrefix(FactBase):
    """Every key under ``prefix`` in etcd at ``endpoint`` (v3 API) with its value, read on the
    master; ``{"error": "..."}`` when etcdctl cannot read them. ``options``: etcdctl's bounds
    and TLS arguments."""

    def command(self, endpoint, prefix, options=""):
        etcdctl = etcdctl_line(3, endpoint, options)
        return (
            "if ! command -v etcdctl >/dev/null 2>&1; then "
            "echo 'error no etcdctl on the master'; exit 0; fi; "
            f"out=$({etcdctl} get --prefix {shlex.quote(prefix)} 2>&1)"
            ' && printf "%s\\n" "$out" | sed "s/^/line /" '
            '|| printf "error %s\\n" "$(printf %s "$out" | tail -n 1)"'
        )

    def process(self, output):
        lines = []
        for line in output:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "error":
                return {"error": rest.strip() or "etcdctl failed"}
            if kind == "line":
                lines.append(rest)
        lines = [line for line in lines if line.strip()]
        return {"values": dict(zip(lines[0::2], lines[1::2], strict=False))}


class KubeVersions(FactBase):
    """The running versions of the cluster, read on the master: the apiserver's (``/version``
    through ``kubectl``), each Node's kubelet and container runtime, whether it is cordoned and
    the release an unfinished upgrade of kubelab's took it to (its ``kubelab.io/upgrading``
    annotation), and the version of the etcd binary at ``etcd`` (``etcd --version``). A dict:
    ``api``, ``etcd`` (``v``-prefixed, None when unknown), ``nodes``: name -> ``kubelet``,
    ``runtime`` (``containerd://2.2.9``), ``unschedulable``, ``upgrading``, ``keep_cordoned``
    (cordoned before that upgrade began: its ``kubelab.io/keep-cordoned``); ``error`` when
    kubectl cannot read them."""

    ANNOTATION = "kubelab.io/upgrading"
    KEEP_CORDONED = "kubelab.io/keep-cordoned"  # the operator had cordoned it: it stays so

    @staticmethod
    def default():
        return {"api": None, "etcd": None, "nodes": {}, "error": None}

    def command(self, kubectl, etcd):
        nodes = (
            '\'{range .items[*]}{"node "}{.metadata.name}{"|"}'
            '{.status.nodeInfo.kubeletVersion}{"|"}{.status.nodeInfo.containerRuntimeVersion}'
            '{"|"}{.spec.unschedulable}{"|"}{.metadata.annotations.kubelab\\.io/upgrading}'
            '{"|"}{.metadata.annotations.kubelab\\.io/keep-cordoned}{"\\n"}{end}\''
        )
        error = 'printf "error %s\\n" "$(printf %s "$out" | tail -n 1)"; exit 0'
        return (
            f"if [ -x {etcd} ]; then {etcd} --version 2>/dev/null | "
            "sed -n 's/^etcd Version: *\\([0-9][^ ]*\\).*/etcd v\\1/p'; fi; "
            f"if ! command -v {kubectl.split()[0]} >/dev/null 2>&1; then "
            "echo 'error no kubectl on the master'; exit 0; fi; "
            f"out=$({kubectl} get --raw /version 2>&1) || {{ {error}; }}; "
            "printf '%s\\n' \"$out\" | tr ',{}' '\\n\\n\\n' | "
            'sed -n \'s/^ *"gitVersion": *"\\([^"]*\\)".*/api \\1/p\'; '
            f"out=$({kubectl} get nodes -o jsonpath={nodes} 2>&1) || {{ {error}; }}; "
            'printf "%s\\n" "$out"'
        )

    def process(self, output):
        found = self.default()
        for line in output:
            kind, _, rest = line.strip().partition(" ")
            if kind in ("api", "etcd") and rest:
                found[kind] = rest.strip()
            elif kind == "node":
                fields = [*rest.split("|"), "", "", "", "", ""]
                if fields[0]:
                    found["nodes"][fields[0]] = {
                        "kubelet": fields[1].strip(),
                        "runtime": fields[2].strip(),
                        "unschedulable": fields[3].strip() == "true",
                        "upgrading": fields[4].strip() or None,
                        "keep_cordoned": fields[5].strip() == "true",
                    }
            elif kind == "error":
                found["error"] = rest.strip() or "kubectl failed"
        return found


class EtcdAuth(FactBase):
    """etcd's access control (v3 API), read on the master with kubelab's etcdctl: ``enabled``,
    ``users`` (each named user's roles, ``None`` for one that does not exist) and ``perms``
    (each named role's key permissions as (type, key, range_end); ``None`` for no such role).
    ``None`` when etcdctl cannot read it (no etcdctl, etcd down, a client etcd refuses)."""

    def command(self, endpoint, options, users=(), roles=()):
        etcdctl = etcdctl_line(3, endpoint, options)
        queries = [f"user get {shlex.quote(name)}" for name in users]
        queries += [f"role get {shlex.quote(name)}" for name in roles]
        reads = "; ".join(
            f"printf '%s\\t%s\\n' {shlex.quote(query)} "
            f"\"$({etcdctl} -w json {query} 2>/dev/null | tr -d '\\n')\""
            for query in queries
        )
        return (
            "command -v etcdctl >/dev/null 2>&1 || exit 0; "
            f"out=$({etcdctl} -w json auth status 2>/dev/null | tr -d '\\n') || exit 0; "
            f"printf 'auth status\\t%s\\n' \"$out\"; {reads}"
        )

    def process(self, output):
        answers = {}
        for line in output:
            query, _, answer = line.rstrip("\n").partition("\t")
            try:
                answers[query] = json.loads(answer) if answer.strip() else None
            except ValueError:
                answers[query] = None
        status = answers.pop("auth status", None)
        if status is None:
            return None
        found = {"enabled": bool(status.get("enabled")), "users": {}, "perms": {}}
        for query, answer in answers.items():
            kind, _, name = query.partition(" get ")
            name = name.strip("'")
            if kind == "user":
                found["users"][name] = None if answer is None else sorted(answer.get("roles", []))
            elif kind == "role":
                found["perms"][name] = (
                    None
                    if answer is None
                    else [
                        (
                            int(perm.get("permType", 0)),
                            base64.b64decode(perm.get("key", "")).decode(errors="replace"),
                            base64.b64decode(perm.get("range_end", "")).decode(errors="replace"),
                        )
                        for perm in answer.get("perm", [])
                    ]
                )
        return found
