"""Facts about one host besides pyinfra's own: its cgroup version, containerd's images, its
package sources, an installed archive's marker, what kubelab left on it; ``Several`` reads
several facts in one command."""

import re
import shlex

from pyinfra.api import FactBase, StringCommand


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
