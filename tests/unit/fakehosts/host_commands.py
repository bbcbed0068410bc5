"""The commands that set a simulated host up, as the interpreter applies them to its Machine:
packages, systemd units, files and users, downloads and image imports, keys, sysctl."""

from __future__ import annotations

import re
import shlex

from kubelab.engine.facts import PackageSources

from .facts import answer_fact
from .machines import UNIT_BINARIES, WEB, FileState, Hosts, archive_images

ETCD_MEMBER_DIR = "/var/lib/etcd/default/member"


class HostCommands:
    """The interpreter's handlers of host set-up commands (see ``shell.Interpreter``)."""

    def yum_install(self, args):
        for package in shlex.split(args):
            if not package.startswith("-"):
                self.machine.install(package)

    def systemctl(self, verb, unit):
        unit = unit.strip("'\"")
        if verb == "daemon-reload":
            return
        state = self.machine.units.get(unit)
        assert state is not None, f"systemctl {verb} of a unit not installed: {unit}"
        if verb in ("start", "restart", "stop") and unit in self.machine.stalled:
            return False  # its start (or stop) timed out
        if verb in ("start", "restart") and self.machine.lost_starts.get(unit):
            self.machine.lost_starts[unit] -= 1
            return False  # it exited as it started (flanneld losing a subnet to another host)
        if verb in ("start", "restart"):
            state["active"] = True
            if unit == "etcd.service" and "/usr/local/bin/etcd" in self.machine.files:
                self.machine.dirs.add(ETCD_MEMBER_DIR)  # modern etcd: its data, once started
            binary = self.machine.files.get(UNIT_BINARIES.get(unit, ""))
            self.machine.started[unit] = binary.content if binary else b""
        if verb == "restart":
            self.machine.restarts.append(unit)
        if verb in ("start", "restart"):
            self.machine.unread.clear()
        if verb == "stop":
            state["active"] = False
        if verb in ("enable", "disable"):
            state["enabled"] = verb == "enable"

    def tried(self, command, attempts):
        if self.run(command) is not False:
            return None
        unit = command.split()[2]
        again = (self.run(f"systemctl restart {unit}") for _ in range(int(attempts) - 1))
        return any(result is not False for result in again) or False

    def daemon_reload(self):
        pass

    def below(self, path):
        """The files under the directory ``path``."""
        return [name for name in self.machine.files if name.startswith(path.rstrip("/") + "/")]

    def chmod(self, recursive, mode, path):
        path = path.strip("'")
        if path in self.machine.dirs:
            self.machine.dir_modes[path] = int(mode, 8)
            for name in self.below(path) if recursive else []:
                self.machine.files[name].mode = int(mode, 8)
        else:
            self.machine.files[path].mode = int(mode, 8)

    def chown(self, recursive, owner, path):
        user, _, group = owner.partition(":")
        path = path.strip("'")
        assert user in self.machine.users, f"chown to unknown user {user}"
        if path in self.machine.dirs:
            self.machine.dir_owners[path] = (user, group or user)
            targets = self.below(path) if recursive else []
        else:
            targets = [path]
        for name in targets:
            state = self.machine.files[name]
            state.user, state.group = user, group or state.group

    def useradd(self, args):
        words = shlex.split(args)
        name = words[-1]
        assert name not in self.machine.users, f"useradd of an existing user {name}"
        self.machine.users.add(name)
        if "-d" in words:
            self.machine.homes[name] = words[words.index("-d") + 1]

    def fetch(self, dest, url):
        if url in self.machine.stalled:
            return False
        web = {**Hosts.served, **WEB}
        assert url in web, f"fakehosts: nothing at {url}"
        self.machine.downloads.append(url)
        self.machine.files[dest] = FileState(web[url])

    def import_image(self, archive, wanted):
        """ctr importing an archive (see ``image_archive``): its images, then the check."""
        assert "/usr/local/bin/ctr" in self.machine.files, "ctr is not installed"
        assert self.machine.units.get("containerd.service", {}).get("active"), "no containerd"
        content = self.machine.files.pop(archive).content
        self.machine.images.update(archive_images(content))
        return shlex.split(wanted)[0] in self.machine.images

    def mkdir(self, paths):
        self.machine.dirs.update(path.strip("'") for path in paths.split())

    def apt_install(self, args):
        if self.sources_stall():
            return False
        self.yum_install(args)

    def download(self, temp, url, sha256, rest):
        if url in self.machine.stalled:
            return False
        self.machine.downloads.append(url)
        if "tar -xf" not in rest:  # a binary
            dest = rest.rsplit(" ", 1)[1]
            self.machine.files[dest] = FileState(url.encode(), 0o755, sha256=sha256)
            return
        # an archive's members (each its own content, naming the release), then its marker
        listing = [f"{sha256}  {url.rsplit('/', 1)[1]}"]
        for member, target in re.findall(r"--no-anchored (\S+) > (\S+)\.new", rest):
            self.machine.files[target] = FileState(f"{url}#{member}".encode(), 0o755)
            listing.append(f"{self.machine.files[target].digest()}  {target}")
        marker = re.search(r"\} > (\S+)\.new && mv -f", rest)[1]
        self.machine.files[marker] = FileState("\n".join([*listing, ""]).encode())

    def private_dir(self, path):
        self.machine.dirs.add(path)
        self.machine.dir_modes[path] = 0o700

    def secret_dir(self, private, parent):
        self.machine.dirs.update({private, parent})

    def secret_move(self, user, group, temp, mode, temp2, dest):
        uploaded = self.machine.files.pop(temp)
        assert user in self.machine.users, f"chown to unknown user {user}"
        uploaded.user, uploaded.group, uploaded.mode = user, group, int(mode, 8)
        self.machine.files[dest] = uploaded

    def load_sysctl(self):
        self.machine.sysctl_applied = True

    def touch(self, path):
        self.machine.files.setdefault(path.strip("'"), FileState(b""))

    def generate_key(self, path, _new, _again, _again2):
        self.machine.files.setdefault(path, FileState(b"RSA PRIVATE KEY", mode=0o600))

    def sources_stall(self) -> bool:
        return bool(self.machine.stalled & set(answer_fact(self.machine, PackageSources, {})))

    def apt_update(self):
        """apt-get update, failing (as APT::Update::Error-Mode any makes it) on a stalled source."""
        return not self.sources_stall()

    def reload_units(self):
        for unit in self.machine.unit_files_removed:
            self.machine.units.pop(unit, None)
        self.machine.unit_files_removed.clear()
