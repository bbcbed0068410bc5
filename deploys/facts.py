"""Facts kubelab reads from hosts besides pyinfra's own."""

import re
import shlex

from pyinfra.api import FactBase


class EtcdValue(FactBase):
    """
    The value stored under ``key`` in etcd at ``endpoint``, read with the etcd ``api`` version
    (2 or 3) the reader of that key uses; ``None`` when the key, etcdctl or etcd is missing.
    ``tls_args`` are extra etcdctl arguments (client certificates).
    """

    def command(self, endpoint, key, api=3, tls_args=""):
        if api == 2:
            get = f"get {shlex.quote(key)}"
        else:
            get = f"get {shlex.quote(key)} --print-value-only"
        etcdctl = f"ETCDCTL_API={api} etcdctl --endpoints={shlex.quote(endpoint)} {tls_args}"
        return f"! command -v etcdctl >/dev/null || {etcdctl} {get} 2>/dev/null || true"

    def process(self, output):
        value = "\n".join(output).strip()
        return value or None


class FilesNewerThanService(FactBase):
    """
    Those of ``paths`` modified after the active ``unit`` last started: files it has not
    read yet (say, a run stopped between writing them and restarting it). Empty when the unit
    is not active.
    """

    @staticmethod
    def default():
        return []

    def command(self, unit, paths):
        quoted = " ".join(shlex.quote(path) for path in paths)
        # Microseconds on both sides: a package may start its service within the second its
        # config is written. systemd before 248 only knows whole seconds.
        show = f"systemctl show -p ActiveEnterTimestamp --value {unit}"
        return (
            f"systemctl is-active -q {unit} || exit 0; "
            f"since=$({show} --timestamp=us+utc 2>/dev/null || {show}); "
            'started=$(date -d "$since" +%s%6N) || exit 0; '
            f"for file in {quoted}; do "
            '[ -e "$file" ] && [ "$(date -d "$(stat -c %y "$file")" +%s%6N)" -gt "$started" ] '
            '&& echo "$file"; done; true'
        )

    def process(self, output):
        return [line.strip() for line in output if line.strip()]


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
