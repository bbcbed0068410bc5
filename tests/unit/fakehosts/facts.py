"""What pyinfra's facts, and kubelab's own, read on a simulated host: answered from its
Machine (kubelab's own: from what their commands would print there, see ``fact_outputs``)."""

from __future__ import annotations

import hashlib

from pyinfra.facts import deb as deb_facts
from pyinfra.facts import files as file_facts
from pyinfra.facts import rpm as rpm_facts
from pyinfra.facts import server as server_facts
from pyinfra.facts import systemd as systemd_facts

from kubelab.engine.facts import (
    ArchiveMarker,
    CgroupVersion,
    ContainerdImages,
    EtcdAuth,
    EtcdPrefix,
    EtcdValue,
    KubelabLeftovers,
    KubeNodes,
    KubeVersions,
    ManagedState,
    PackageSources,
    Several,
)

from .fact_outputs import etcd_auth_answer, leftover_lines, managed_state_output, versions_lines
from .machines import DEBIAN, NOW, Machine

RELEASE_FILES = {
    ("centos", 7): 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nVERSION_ID="7"\n',
    ("debian", 12): 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n',
    ("debian", 13): 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="13"\n',
    ("ubuntu", 24): 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n',
    ("ubuntu", 22): 'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="22.04"\n',
    ("rocky", 9): 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.4"\n',
}


def answer_fact(machine: Machine, cls, kwargs: dict):
    """What pyinfra's fact ``cls`` reads on ``machine``."""
    path = kwargs.get("path")
    if cls is Several:
        return [answer_fact(machine, part, dict(arguments)) for part, arguments in kwargs["facts"]]
    if cls is server_facts.LinuxDistribution:
        release = RELEASE_FILES[(machine.os_id, machine.major)]
        return cls().process(["/etc/os-release", *release.splitlines(), "---"])
    if cls is server_facts.Date:
        return NOW
    if cls is server_facts.Which:
        command = kwargs.get("command")
        return f"/usr/sbin/{command}" if command in ("useradd", "usermod") else None
    if cls is server_facts.Os:
        return "Linux"
    if cls is server_facts.Users:
        return {
            name: {
                "home": machine.homes.get(name, "/root" if name == "root" else f"/var/lib/{name}"),
                "shell": "/usr/sbin/nologin",
                "group": name,
                "groups": [],
                "comment": None,
                "password": None,
            }
            for name in machine.users
        }
    if cls is server_facts.Groups:
        return sorted(machine.users)
    if cls is CgroupVersion:
        return machine.cgroup
    if cls is ContainerdImages:
        return sorted(machine.images)
    if cls is server_facts.TmpDir:
        return "/tmp"
    if cls is file_facts.File:
        state = machine.files.get(path)
        if state is None:
            return None
        return {
            "mode": int(oct(state.mode)[2:]),
            "user": state.user,
            "group": state.group,
            "size": len(state.content),
            "mtime": NOW,
        }
    if cls is file_facts.Directory:
        if path not in machine.dirs:
            return None
        user, group = machine.dir_owners.get(path, ("root", "root"))
        return {
            "mode": int(oct(machine.dir_modes.get(path, 0o755))[2:]),
            "user": user,
            "group": group,
        }
    if cls is file_facts.Sha1File:
        state = machine.files.get(path)
        return hashlib.sha1(state.content).hexdigest() if state else None
    if cls is file_facts.Sha256File:
        state = machine.files.get(path)
        return state.digest() if state else None
    if cls in (file_facts.Md5File,):
        return None
    if cls is file_facts.FileContents:
        return machine.text(path).splitlines() if path in machine.files else None
    if cls is systemd_facts.SystemdStatus:
        units = {name: unit["active"] for name, unit in machine.units.items()}
        return _only(units, kwargs.get("services"))
    if cls is systemd_facts.SystemdEnabled:
        units = {name: unit["enabled"] for name, unit in machine.units.items()}
        return _only(units, kwargs.get("services"))
    if cls is rpm_facts.RpmPackages:
        return {name: ["1"] for name in machine.packages} if machine.os_id not in DEBIAN else {}
    if cls is rpm_facts.RpmPackageProvides:
        return []
    if cls is deb_facts.DebPackages:
        return {name: ["1"] for name in machine.packages} if machine.os_id in DEBIAN else {}
    if cls is ArchiveMarker:
        return cls().process(machine.text(path).splitlines()) if path in machine.files else None
    if cls is EtcdValue:
        if machine.etcd_read_errors:  # this read fails (etcd down, too slow)
            return cls().process([f"{cls.MARK} error {machine.etcd_read_errors.pop(0)}"])
        value = machine.etcd.get((kwargs.get("api", 3), kwargs["key"]))
        return cls().process([*([value] if value else []), f"{cls.MARK} read"])
    if cls is EtcdAuth:
        return etcd_auth_answer(machine, **kwargs)
    if cls is ManagedState:
        return cls().process(managed_state_output(machine, **kwargs))
    if cls is KubelabLeftovers:
        return cls().process(leftover_lines(machine, **kwargs))
    if cls is KubeVersions:
        return cls().process(versions_lines(machine))
    if cls is KubeNodes:
        if machine.kube_error:
            return cls().process([f"error {machine.kube_error}"])
        return cls().process([f"node {name}" for name in sorted(machine.kube_nodes)])
    if cls is EtcdPrefix:
        if machine.etcd_error:
            return cls().process([f"error {machine.etcd_error}"])
        prefix = kwargs["prefix"]
        lines = []
        for (api, key), value in sorted(machine.etcd.items()):
            if api == 3 and key.startswith(prefix):
                lines += [f"line {key}", f"line {value}"]
        return cls().process(lines)
    if cls is PackageSources:
        folders = ("/etc/apt/", "/etc/yum.repos.d/")
        lines = [
            line
            for name in sorted(machine.files)
            if name.startswith(folders)
            for line in machine.text(name).splitlines()
        ]
        return cls().process(lines)
    raise AssertionError(f"fakehosts: no answer for fact {cls.__name__}({kwargs})")


def _only(units: dict, services) -> dict:
    if services is None:
        return units
    services = [services] if isinstance(services, str) else services
    return {name: value for name, value in units.items() if name in services}
