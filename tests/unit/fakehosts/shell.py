"""The shell interpreter of the simulated hosts: each command kubelab emits is matched, whole,
against the patterns of the commands kubelab emits, and applied to the host's Machine by its
handler (``host_commands``, ``cluster_commands``); any other command fails the test."""

from __future__ import annotations

import re

from .cluster_commands import ClusterCommands
from .host_commands import HostCommands
from .machines import Machine

# Every curl kubelab runs is bounded (see kubelab.engine.bounds.curl).
CURL = (
    r"err=\$\(curl -fsSL --connect-timeout \d+ --speed-limit \d+ --speed-time \d+ --max-time \d+ "
    r"--retry \d+ --retry-max-time \d+"
)
CTR = r"ctr --namespace k8s.io --connect-timeout \d+s --timeout \d+s"


class Interpreter(ClusterCommands, HostCommands):
    """Applies the commands kubelab emits to a Machine."""

    def __init__(self, machine: Machine):
        self.machine = machine

    def run(self, command: str):
        for pattern, handler in self.HANDLERS:
            match = re.fullmatch(pattern, command.strip(), re.S)
            if match:
                return handler(self, *match.groups())
        raise AssertionError(f"fakehosts: unexpected command: {command}")

    HANDLERS = [
        (
            r"systemctl stop kubepods\.slice 2>/dev/null; for id in \$\(" + CTR + r" tasks ls -q "
            r"2>/dev/null\); do " + CTR + r' tasks delete -f "\$id" >/dev/null 2>&1; done; true',
            ClusterCommands.stop_pods,
        ),
        (
            r"findmnt -rn -o TARGET \| grep -E '\^\(([^)]+)\)' \| sort -r \| while read -r m; "
            r"do .*; done; left=.*",
            ClusterCommands.unmount,
        ),
        (r"rm -rf --one-file-system (\S+)", ClusterCommands.rm_rf),
        (
            r"\[ ! -e (\S+) \] \|\| find \S+ -mindepth 1 -maxdepth 1 -exec rm -rf "
            r"--one-file-system \{\} \+",
            ClusterCommands.rm_contents,
        ),
        (r"rmdir (\S+)", ClusterCommands.rmdir),
        (
            r"ip link delete (\S+) 2>/dev/null \|\| ! ip link show (\S+) >/dev/null 2>&1",
            ClusterCommands.delete_link,
        ),
        (
            r"(ip6?tables)-save -t (\w+) \| grep -vE '([^']+)' \| (ip6?tables)-restore -w 5; "
            r"left=.*",
            ClusterCommands.remove_chains,
        ),
        (
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s cordon (\S+) 2>&1\) \|\| .*?; "
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s drain \S+ (.*?) 2>&1\) "
            r"\|\| \{ left=.*",
            ClusterCommands.drain,
        ),
        (
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s delete node (\S+) "
            r"--ignore-not-found --timeout=\d+s 2>&1\) \|\| .*",
            ClusterCommands.delete_node,
        ),
        (
            r"err=\$\(ETCDCTL_API=3 etcdctl --endpoints=(\S+)(?: --\S+)* del (\S+) "
            r"2>&1 >/dev/null\) \|\| .*",
            ClusterCommands.etcdctl_delete,
        ),
        (
            r"umask 077 && mkdir -p \S+ && err=\$\(timeout \d+ env ETCDCTL_API=3 etcdctl "
            r"--endpoints=(\S+)(?: --\S+)* snapshot save (\S+) 2>&1 >/dev/null\) \|\| .*",
            lambda self, endpoint, path: self.snapshot(path, endpoint),
        ),
        (r"rm -f (\S+)", ClusterCommands.rm_f),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s get --raw /readyz 2>&1\) && .*",
            ClusterCommands.api_ready,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until curl -fsS --max-time 2 -o /dev/null "
            r"http://127\.0\.0\.1:10256/livez 2>/dev/null; do .*",
            ClusterCommands.proxy_live,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s get node (\S+) -o jsonpath=.*? 2>&1\) && "
            r"\[ \"\$out\" = '(\S+) True' \]; do .*; done; (?:out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s uncordon (\S+) 2>&1\) && )?out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s annotate node (\S+) kubelab\.io/upgrading-"
            r"( kubelab\.io/keep-cordoned-)? 2>&1\) \|\| .*",
            ClusterCommands.node_upgraded,
        ),
        (
            r"out=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s annotate node (\S+) --overwrite "
            r"kubelab\.io/upgrading=(\S+)( kubelab\.io/keep-cordoned=true)? 2>&1\) \|\| .*",
            ClusterCommands.annotate,
        ),
        (r"yum install -y (.+)", HostCommands.yum_install),
        (r"systemctl (start|stop|restart|enable|disable) (\S+)", HostCommands.systemctl),
        (
            r"(systemctl \S+ \S+) && exit 0; for attempt in \$\(seq 2 (\d+)\); do .*",
            HostCommands.tried,
        ),
        (r"systemctl daemon-reload", HostCommands.reload_units),
        (r"chmod (-R )?(\d+) (\S+)", HostCommands.chmod),
        (r"chown (-R )?(\S+) (\S+)", HostCommands.chown),
        (r"useradd (.+)", HostCommands.useradd),
        (r"touch (\S+)", HostCommands.touch),
        (r"mkdir -p (.+)", HostCommands.mkdir),
        (
            r"DEBIAN_FRONTEND=noninteractive apt-get -y .* install "
            r"(?:--no-install-recommends )?(.+)",
            HostCommands.apt_install,
        ),
        (
            rf"{CURL} -o (\S+) (\S+) 2>&1\) \|\| \{{.*?; exit 1; \}}; "
            r"echo '(\w+)  \S+' \| sha256sum -c --quiet - >/dev/null 2>&1 \|\| \{.*?\} && (.*)",
            HostCommands.download,
        ),
        (
            rf"{CURL} -o (\S+) (\S+) 2>&1\) \|\| \{{ rm -f \S+; echo .* >&2; exit 1; \}}",
            HostCommands.fetch,
        ),
        (
            rf"{CTR} images import --platform linux/amd64 "
            r"--label io.cri-containerd.pinned=pinned (\S+); imported=\$\?; rm -f \S+; "
            rf"\[ \$imported = 0 \] && {CTR} images ls -q \| grep -qxF (\S+) "
            r"\|\| \{ echo .* >&2; exit 1; \}",
            HostCommands.import_image,
        ),
        (r"if \[ -d /var/lib/kubelab \] && .* >> \S+/sha256sums\); fi", lambda self: None),
        (r"install -d -m 700 (\S+) && mkdir -p (\S+)", HostCommands.secret_dir),
        (r"install -d -m 700 (\S+)", HostCommands.private_dir),
        (
            r"chown (\w+):(\w+) (\S+) && chmod (\d+) (\S+) && mv -f \S+ (\S+)",
            HostCommands.secret_move,
        ),
        (r"test -d /proc/sys/net/bridge \|\| modprobe br_netfilter", lambda self: None),
        (r"sysctl -q -p /etc/sysctl.d/90-kubelab.conf", HostCommands.load_sysctl),
        (
            r"test -e (\S+) \|\| \(umask 077 && openssl genrsa -out (\S+) 2048 2>/dev/null "
            r"&& mv (\S+) (\S+)\)",
            HostCommands.generate_key,
        ),
        (
            r"for attempt in .*?ETCDCTL_API=(\d) etcdctl --endpoints=(\S+)(?: --\S+)* "
            r"(set|put) (\S+) ('[^']*') 2>&1 >/dev/null\) && exit 0; .*",
            ClusterCommands.etcdctl_write,
        ),
        (
            r"e\(\) \{ ETCDCTL_API=3 etcdctl --endpoints=\S+ (.*?) \"\$@\"; \}; "
            r"for attempt in \$\(seq \d+\); do err=\$\(\{ (.*?); \} 2>&1 >/dev/null\) .*",
            ClusterCommands.etcd_auth_setup,
        ),
        (
            r"e\(\) \{ ETCDCTL_API=3 etcdctl --endpoints=\S+ .*? \"\$@\"; \}; if list=\$\(e member "
            r"list 2>/dev/null\); then .*? awk -F', ' -v n=(\S+) -v u=(\S+) .*",
            ClusterCommands.etcd_peer_update,
        ),
        (
            r"e\(\) \{ ETCDCTL_API=3 etcdctl --endpoints=(\S+) .*? \"\$@\"; \}; list=\$\(e member "
            r"list 2>&1\) .*? until out=\$\(\{ e member list .*? \|\| "
            r"e member add (\S+) --peer-urls=(\S+); \} 2>&1\).*",
            ClusterCommands.etcd_member_add,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(ETCDCTL_API=3 etcdctl "
            r"--endpoints=(\S+) .*? endpoint health && .*",
            ClusterCommands.etcd_caught_up,
        ),
        (r"apt-get update", HostCommands.apt_update),
        (
            r"for try in \$\(seq \d+\); do if (.+?); then exit 0; fi; sleep \d+; done; .*",
            ClusterCommands.wait_loop,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s apply -f (\S+) 2>&1\); do .*?; done && "
            r"end=.*? until out=\$\(\{ s=\$\(\S+ --kubeconfig \S+ --request-timeout=\d+s -n "
            r"kube-system get deployment (\S+) .*?; done && mv -f \S+ (\S+)",
            ClusterCommands.addon_applied,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(\S+ --kubeconfig \S+ "
            r"--request-timeout=\d+s delete --ignore-not-found --timeout=\d+s -f (\S+) 2>&1\); "
            r"do .*; done "
            r"&& rm -f (\S+)",
            ClusterCommands.addon_deleted,
        ),
        (
            r"end=\$\(\( \$\(date \+%s\) \+ \d+ \)\); until out=\$\(secrets=\$\(\S+ "
            r"--kubeconfig \S+ --request-timeout=\d+s get secrets -A -o json\) && "
            r"if printf '%s' \"\$secrets\" \| "
            r"grep -q '\"kind\": \"Secret\"'; then printf '%s' \"\$secrets\" \| \S+ --kubeconfig "
            r"\S+ --request-timeout=\d+s replace -f -; fi 2>&1\); do .*; done && "
            r"printf '%s\\n' (\w+) > (\S+)",
            ClusterCommands.secrets_rewritten,
        ),
        (r"kubectl .*apply -f (\S+)", ClusterCommands.kubectl_apply),
    ]
