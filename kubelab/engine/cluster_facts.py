"""Facts about the cluster, read on the master: etcd's keys and access control (through
etcdctl), the Nodes and the versions running (through kubectl)."""

import base64
import json
import shlex

from pyinfra.api import FactBase


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
