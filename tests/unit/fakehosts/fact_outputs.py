"""What kubelab's own facts' commands print on a simulated host (ManagedState,
KubelabLeftovers, KubeVersions), and what its etcd answers etcdctl (EtcdAuth): from its Machine
and, for the Nodes, the other hosts' Machines."""

from __future__ import annotations

import fnmatch
import re

from .machines import NOW, FileState, Hosts, Machine, running_version, version_of


def versions_lines(machine: Machine) -> list[str]:
    """What KubeVersions' command prints on the master ``machine``."""
    lines = []
    etcd = version_of(machine.files.get("/usr/local/bin/etcd", FileState(b"")).content)
    if etcd:
        lines.append(f"etcd {etcd}")
    if machine.kube_error:
        return [*lines, f"error {machine.kube_error}"]
    api = running_version(machine, "kube-apiserver.service")
    if not api:
        return [*lines, "error The connection to the server was refused"]
    lines.append(f"api {api}")
    for name in sorted(machine.kube_nodes):
        other = Hosts.machines.get(name)
        kubelet = running_version(other, "kubelet.service") if other else ""
        runtime = running_version(other, "containerd.service") if other else ""
        unschedulable = "true" if name in machine.cordoned else ""
        runtime = f"containerd://{runtime.lstrip('v')}" if runtime else ""
        upgrading = machine.annotated.get(name, "")
        keep = "true" if name in machine.keep_cordoned else ""
        fields = [name, kubelet or "v0.0.0", runtime, unschedulable, upgrading, keep]
        lines.append(f"node {'|'.join(fields)}")
    return lines


def etcd_auth_answer(machine: Machine, endpoint, options, users=(), roles=()):
    """EtcdAuth: None unless etcd runs and takes the certificates etcdctl presents."""
    if not machine.units.get("etcd.service", {}).get("active"):
        return None
    if etcd_refuses(machine, options):
        return None
    auth = machine.etcd_auth
    return {
        "enabled": auth["enabled"],
        "users": {user: auth["users"].get(user) for user in users},
        "perms": {role: auth["perms"].get(role) for role in roles},
    }


def etcd_refuses(machine: Machine, options: str) -> str | None:
    """Why etcd on ``machine`` (its config files as they are) refuses etcdctl's ``options``
    (--cacert, --cert, --key): etcd's server certificate not of --cacert, or --cert not of a CA
    etcd trusts; None when it accepts them."""
    from cryptography import x509

    flags = dict(re.findall(r"--(cacert|cert|key)=(\S+)", options))
    config = next(
        (path for path in ("/etc/default/etcd", "/etc/etcd/etcd.conf") if path in machine.files),
        None,
    )
    env = dict(re.findall(r'^(ETCD_\w+)="?([^"\n]*)"?$', machine.text(config), re.M))
    if "ETCD_TRUSTED_CA_FILE" not in env:
        return None if not flags else "etcd serves plain HTTP"
    needed = [flags.get("cacert"), flags.get("cert"), flags.get("key")]
    if not all(path in machine.files for path in needed):
        return f"etcdctl's files missing: {needed}"

    def load(path):
        return x509.load_pem_x509_certificate(machine.files[path].content)

    def signed(cert, ca) -> bool:
        try:
            cert.verify_directly_issued_by(ca)
        except Exception:
            return False
        return True

    if not signed(load(env["ETCD_CERT_FILE"]), load(flags["cacert"])):
        return "etcd's server certificate is not of etcdctl's CA"
    if not signed(load(flags["cert"]), load(env["ETCD_TRUSTED_CA_FILE"])):
        return "etcd does not trust etcdctl's certificate"
    return None


def managed_state_output(machine: Machine, paths=(), digests=(), units=(), users=()) -> list:
    """What ManagedState's command prints on ``machine``. Every active unit started at NOW;
    files it has not read yet (``Machine.unread``) were written a second later, others an hour
    earlier."""
    now = int(NOW.timestamp())
    lines = []
    for path in paths:
        state = machine.files.get(path)
        mtime = f"{now + 1 if path in machine.unread else now - 3600}.0000000000"
        if state:
            lines.append(f"F f {oct(state.mode)[2:]} {state.user} {state.group} {mtime} {path}")
        elif path in machine.dirs:
            user, group = machine.dir_owners.get(path, ("root", "root"))
            mode = oct(machine.dir_modes.get(path, 0o755))[2:]
            lines.append(f"F d {mode} {user} {group} {mtime} {path}")
    lines += [
        f"D {machine.files[path].digest()}  {path}" for path in digests if path in machine.files
    ]
    for unit in units:
        state = machine.units.get(unit)
        if state is None:
            props = [
                "ActiveState=inactive",
                "SubState=dead",
                "UnitFileState=",
                "ActiveEnterTimestamp=",
            ]
        else:
            active = state["active"]
            props = [
                f"ActiveState={'active' if active else 'inactive'}",
                f"SubState={'running' if active else 'dead'}",
                f"UnitFileState={'enabled' if state['enabled'] else 'disabled'}",
                f"ActiveEnterTimestamp={NOW:%a %Y-%m-%d %H:%M:%S}.000000 UTC"
                if active
                else "ActiveEnterTimestamp=",
            ]
            if active:
                props.append(f"Since={now}000000")
        lines += [f"U {unit} {prop}" for prop in props]
    for user in users:
        if user in machine.users:
            home = machine.homes.get(user, "/root" if user == "root" else f"/var/lib/{user}")
            lines.append(f"P {user}:x:999:999::{home}:/usr/sbin/nologin")
    return [*lines, f"N {now}"]


def leftover_lines(machine: Machine, units, paths, shared, mount_roots, links, chain_prefixes):
    """What KubelabLeftovers' command prints on ``machine``."""
    lines = []
    for unit in units:
        state = machine.units.get(unit)
        if state and state["active"]:
            lines.append(f"active {unit}")
        if state and state["enabled"]:
            lines.append(f"enabled {unit}")
    for pattern in paths:
        if "*" in pattern:
            known = {*machine.files, *machine.dirs}
            found = sorted(name for name in known if fnmatch.fnmatch(name, pattern))
        else:
            found = [pattern]
        for path in found:
            if path in machine.mountpoints:
                if machine.below(path):
                    lines.append(f"mountpoint {path}")
            elif machine.exists(path):
                lines.append(f"path {path}")
    for directory in shared:
        if machine.exists(directory):
            lines.append(f"dir {directory}")
            lines += [f"entry {directory} {entry}" for entry in machine.entries(directory)]
    lines += [f"mount {m}" for m in sorted(machine.mounts) if m.startswith(tuple(mount_roots))]
    lines += [f"link {link}" for link in links if link in machine.links]
    lines += [
        f"chain {command} {table} {chain}"
        for command, table, chain in sorted(machine.chains)
        if chain.startswith(tuple(chain_prefixes))
    ]
    return lines
