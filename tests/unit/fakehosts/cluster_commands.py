"""The commands of a cluster's life, as the interpreter applies them to a simulated Machine:
etcdctl and kubectl (add-ons, drains, upgrades, Nodes), the waits for the API, and the
teardown of a reset or a removal (pods stopped, mounts, files, links, iptables chains)."""

from __future__ import annotations

import json
import re
import shlex

from .fact_outputs import etcd_refuses
from .machines import FileState, Hosts, running_version


class ClusterCommands:
    """The interpreter's handlers of a cluster's commands (see ``shell.Interpreter``)."""

    def etcdctl_write(self, api, endpoint, _verb, key, value):
        if endpoint in self.machine.stalled:
            return False
        self.machine.etcd[(int(api), shlex.split(key)[0])] = shlex.split(value)[0]

    def etcd_auth_setup(self, options, steps):
        """etcd_access.setup_command: users, the flanneld role, auth on."""
        machine = self.machine
        if not machine.units.get("etcd.service", {}).get("active"):
            return False
        if etcd_refuses(machine, options):
            return False
        auth = machine.etcd_auth
        for user in re.findall(r"e user add (\S+) --no-password", steps):
            auth["users"].setdefault(user, [])
        for user, role in re.findall(r"e user grant-role (\S+) (\S+)", steps):
            auth["users"][user] = sorted({*auth["users"][user], role})
        for role in re.findall(r"e role add ([\w-]+)", steps):
            auth["perms"].setdefault(role, [])
        for role, prefix in re.findall(
            r"e role grant-permission (\S+) --prefix=true readwrite (\S+)", steps
        ):
            prefix = shlex.split(prefix)[0]
            perm = (2, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))
            auth["perms"][role] = sorted({*auth["perms"][role], perm})
        assert "root" in auth["users"] and "e auth enable" in steps
        auth["enabled"] = True

    def etcd_peer_update(self, name, url):
        """etcd_members.peer_url_update_command: when etcd runs, this member's peer URL."""
        machine = self.machine
        if not machine.units.get("etcd.service", {}).get("active"):
            return  # etcd does not answer: nothing to update
        known = machine.etcd_members.get(name)
        if known is not None and known != url:
            for other in Hosts.machines.values():
                if name in other.etcd_members:
                    other.etcd_members[name] = url
            machine.etcd_peer_updates.append((name, url))

    def etcd_member_add(self, endpoints, name, url):
        """etcd_members.member_add_command: on the joining master, against the members."""
        running = [
            m for m in Hosts.machines.values() if m.units.get("etcd.service", {}).get("active")
        ]
        if not running:
            return False  # no member answers
        if url in running[0].etcd_members.values():
            return  # a member already (a resumed run)
        for other in [*running, self.machine]:
            other.etcd_members[name] = url
        self.machine.etcd_member_adds.append((name, url, endpoints))

    def etcd_caught_up(self, endpoint):
        if not self.machine.units.get("etcd.service", {}).get("active"):
            return False
        self.machine.waited_for.append(f"etcd member at {endpoint} caught up")

    def wait_loop(self, check):
        self.machine.waited_for.append(check)

    def kubectl_apply(self, manifest):
        assert manifest in self.machine.files, f"kubectl apply of a missing file {manifest}"
        self.machine.applied.append(manifest)

    def addon_applied(self, pending, deployment, path):
        """An add-on's manifest applied (tried until the API accepts it), its Deployment
        waited on (never available: ``unavailable``), then the manifest in place."""
        assert pending == f"{path}.pending", (pending, path)
        if self.machine.kube_error:
            return False
        self.kubectl_apply(pending)
        self.machine.waited_for.append(f"deployment {deployment}")
        if deployment in self.machine.unavailable:
            return False
        self.machine.files[path] = self.machine.files.pop(pending)

    def secrets_rewritten(self, digest, marker):
        """Every Secret read and written back through the apiserver, then the marker."""
        if self.machine.kube_error:
            return False
        self.machine.rewritten.append(digest)
        self.machine.files[marker] = FileState(f"{digest}\n".encode())

    def addon_deleted(self, path, again):
        assert path == again and path in self.machine.files
        if self.machine.kube_error:
            return False
        self.machine.deleted.append(path)
        del self.machine.files[path]

    def stop_pods(self):
        """The kubelet's slice stopped, containerd's tasks deleted (their rootfs unmounted)."""
        if "kubepods.slice" in self.machine.units:
            self.machine.units["kubepods.slice"]["active"] = False
        if self.machine.units.get("containerd.service", {}).get("active"):
            self.machine.tasks.clear()
            self.machine.mounts = {
                m for m in self.machine.mounts if not m.startswith("/run/containerd/")
            }

    def unmount(self, pattern):
        roots = [root.replace("\\.", ".") for root in pattern.split("|")]
        self.machine.mounts = {m for m in self.machine.mounts if not m.startswith(tuple(roots))}

    def rm_rf(self, path):
        path = shlex.split(path)[0]
        self.machine.remove(path)
        if path.startswith("/etc/systemd/system/") and path.count("/") == 4:
            self.machine.unit_files_removed.add(path.rsplit("/", 1)[1])

    def rm_contents(self, path):
        self.machine.remove(shlex.split(path)[0], keep_top=True)

    def rmdir(self, path):
        path = shlex.split(path)[0]
        assert not self.machine.below(path), f"rmdir of a directory not empty: {path}"
        assert path not in self.machine.files, f"rmdir of a file: {path}"
        self.machine.dirs.discard(path)

    def delete_link(self, link, _again):
        self.machine.links.discard(link)

    def remove_chains(self, command, table, _pattern, _restore):
        self.machine.chains = {
            (c, t, chain)
            for c, t, chain in self.machine.chains
            if (c, t) != (command, table) or not chain.startswith(("KUBE-", "FLANNEL-"))
        }

    def drain(self, node, rest):
        assert node in self.machine.kube_nodes, f"drain of a node the API does not hold: {node}"
        assert "--ignore-daemonsets --delete-emptydir-data --timeout=" in rest
        if node in self.machine.undrainable and "--force --disable-eviction" not in rest:
            return False
        self.machine.drained.append(node)
        self.machine.cordoned.add(node)

    def snapshot(self, path, endpoint):
        """etcdctl snapshot save: the keys of etcd, in a file only root reads."""
        if endpoint in self.machine.stalled or not self.machine.units.get("etcd.service", {}).get(
            "active"
        ):
            return False
        content = json.dumps(sorted(f"{api} {key}" for api, key in self.machine.etcd)).encode()
        self.machine.dirs.add(path.rsplit("/", 1)[0])
        self.machine.files[path] = FileState(content, 0o600)
        self.machine.snapshots.append(path)

    def rm_f(self, path):
        self.machine.files.pop(shlex.split(path)[0], None)

    def proxy_live(self):
        self.machine.waited_for.append("/livez")
        return bool(running_version(self.machine, "kube-proxy.service"))

    def api_ready(self):
        self.machine.waited_for.append("/readyz")
        return bool(running_version(self.machine, "kube-apiserver.service"))

    def node_upgraded(self, node, wanted, uncordoned, again, keep):
        """The wait for ``node`` Ready at ``wanted`` (its kubelet restarted on that binary),
        then kubectl uncordon (not when it stays cordoned: ``keep``), its annotations removed."""
        assert again == node and node in self.machine.kube_nodes
        assert uncordoned in (None, node) and (uncordoned is None) == bool(keep)
        other = Hosts.machines[node]
        self.machine.waited_for.append(f"node {node} {wanted}")
        if running_version(other, "kubelet.service") != wanted or other.not_ready:
            return False
        if uncordoned:
            self.machine.cordoned.discard(node)
        self.machine.annotated.pop(node, None)
        self.machine.keep_cordoned.discard(node)

    def annotate(self, node, version, keep):
        assert node in self.machine.kube_nodes, f"annotate of a node the API does not hold: {node}"
        self.machine.annotated[node] = version
        if keep:
            self.machine.keep_cordoned.add(node)

    def delete_node(self, node):
        self.machine.kube_nodes.discard(node)

    def etcdctl_delete(self, endpoint, key):
        if endpoint in self.machine.stalled:
            return False
        del self.machine.etcd[(3, shlex.split(key)[0])]
