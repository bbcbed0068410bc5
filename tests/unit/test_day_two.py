"""Day two on simulated Debian 12 hosts: removing a minion (deploys/remove_node.py) and
resetting the cluster (deploys/reset.py), each followed by a cluster.py run.

The cluster is built by ``deploy_cluster`` over the simulated hosts, then given what a running
cluster holds besides kubelab's files (``running``): Node objects, flannel's leases in etcd, the
interfaces, iptables chains, pods' mounts and state. The removal and the reset must take exactly
kubelab's part away, and a second run must change nothing.
"""

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import HOSTS, MASTER, MINIONS, with_own_pki
from fakehosts import REPO, FileState, debian12, run_deploy
from test_modern import build

import kubelab
from kubelab.workflows import node_removal, teardown

MINION1, MINION2 = MINIONS
ADDRESSES = {MASTER: "192.168.122.130", MINION1: "192.168.122.131", MINION2: "192.168.122.132"}
SUBNETS = {MASTER: "10.20.3.0", MINION1: "10.20.1.0", MINION2: "10.20.2.0"}
PREFIX = "/atomic.io/network/subnets/"
# What stays on a reset or removed host: the distribution's (apt's stamp: apt-get update's).
DISTRIBUTIONS_FILES = {
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/apt/sources.list.d/debian.sources",
    "/var/lib/apt/periodic/update-success-stamp",
}
CA = "/etc/kubernetes/pki/ca.crt"
POD = "/var/lib/kubelet/pods/4f1c/volumes/kubernetes.io~projected/kube-api-access-x7"
ROOTFS = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/8e2a/rootfs"
NETNS = "/run/netns/cni-5d1e"
CHAINS = {
    ("iptables", "nat", "KUBE-SERVICES"),
    ("iptables", "nat", "KUBE-POSTROUTING"),
    ("iptables", "filter", "KUBE-FORWARD"),
    ("iptables", "mangle", "KUBE-KUBELET-CANARY"),
    ("iptables", "nat", "FLANNEL-POSTRTG"),
    ("iptables", "filter", "FLANNEL-FWD"),
    ("ip6tables", "nat", "KUBE-SERVICES"),
    ("iptables", "filter", "DOCKER-USER"),  # someone else's: stays
}


def lease_key(name: str) -> str:
    return f"{PREFIX}{SUBNETS[name]}-24"


def running(machines: dict) -> dict:
    """What a running cluster holds besides kubelab's files: Nodes, leases, interfaces,
    iptables chains, and on the minions the pods' mounts, tasks and state."""
    master = machines[MASTER]
    master.kube_nodes = set(MINIONS)
    master.files["/var/lib/etcd/default/member/snap/db"] = FileState(b"db", 0o600, "etcd", "etcd")
    for name, machine in machines.items():
        lease = {"PublicIP": ADDRESSES[name], "BackendType": "vxlan", "BackendData": {"VNI": 1}}
        master.etcd[(3, lease_key(name))] = json.dumps(lease)
        machine.links.add("flannel.1")
        machine.chains |= CHAINS
        machine.files["/run/flannel/subnet.env"] = FileState(
            f"FLANNEL_SUBNET={SUBNETS[name][:-1]}1/24\n".encode()
        )
    for name in MINIONS:
        machine = machines[name]
        machine.units["kubepods.slice"] = {"active": True, "enabled": False}
        machine.links.add("cni0")
        machine.tasks = {"8e2a", "77b0"}
        machine.mounts |= {POD, ROOTFS, NETNS}
        for path in (
            f"{POD}/token",
            f"{ROOTFS}/usr/share/nginx/html/index.html",
            NETNS,
            "/var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/0a1b",
            "/var/lib/cni/networks/cbr0/10.20.1.2",
            "/var/log/pods/default_nginx-a1_4f1c/nginx/0.log",
            "/opt/containerd/lib/.keep",
        ):
            machine.files[path] = FileState(b"x")
    return machines


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A built, running cluster (never changed: tests work on copies)."""
    machines, _, settings = build(debian12, tmp_path_factory.mktemp("daytwo"))
    return running(machines), settings


@pytest.fixture
def lab(cluster, tmp_path):
    """A copy of the cluster with a PKI of its own (tests delete files from it)."""
    machines, settings = cluster
    return with_own_pki(machines, settings, tmp_path)


def kubelab_left(machine) -> list[str]:
    """Every path of kubelab's, mount, interface, chain or unit of its still on ``machine``."""
    left = [path for path in teardown.paths() if "*" not in path and machine.exists(path)]
    left += [path for path in teardown.SHARED_DIRS if machine.exists(path)]
    left += sorted(machine.mounts) + sorted(machine.links)
    left += [chain for _, _, chain in machine.chains if chain.startswith(("KUBE-", "FLANNEL-"))]
    left += [unit for unit in machine.units if unit.split(".")[0] in teardown.SERVICES]
    return left


def write_inventory(tmp_path, minions) -> str:
    lines = [(MASTER, {"ssh_hostname": ADDRESSES[MASTER]})]
    text = f"masters = {lines!r}\n"
    text += f"minions = {[(n, {'ssh_hostname': ADDRESSES[n]}) for n in minions]!r}\n"
    (tmp_path / "inventory.py").write_text(text)
    return os.path.relpath(tmp_path / "inventory.py", REPO)


def remove(machines, settings, names=MINION2, **data):
    return run_deploy(
        machines, kubelab.deploy_remove_node, data={**settings, "remove_nodes": names, **data}
    )


# Removing a minion ---------------------------------------------------------------------


def test_removal_drains_deletes_cleans_then_drops_the_lease(lab, order):
    machines, settings = lab
    before_minion1 = copy.deepcopy(machines[MINION1])
    run = remove(machines, settings, "kubeminion2")  # the short name
    master, gone = machines[MASTER], machines[MINION2]

    # The master: drain, delete the Node, drop the lease; nothing else.
    drain, delete, lease = run.commands[MASTER]
    assert f"cordon {MINION2} 2>&1" in drain
    assert (
        f"drain {MINION2} --ignore-daemonsets --delete-emptydir-data --timeout=300s "
        "--skip-wait-for-delete-timeout=60 2>&1" in drain
    )
    assert "--skip-wait-for-delete-timeout=60 --force" not in drain
    assert "--request-timeout=20s" in drain and "--kubeconfig /etc/kubernetes/admin" in drain
    assert f"delete node {MINION2} --ignore-not-found --timeout=60s" in delete
    assert f"del {lease_key(MINION2)} 2>&1" in lease
    assert "--cacert=/etc/etcd/pki/ca.crt" in lease  # secure: etcdctl presents its cert
    assert "--dial-timeout=5s --command-timeout=10s" in lease
    assert master.drained == [MINION2] and master.kube_nodes == {MINION1}
    assert (3, lease_key(MINION2)) not in master.etcd
    assert (3, lease_key(MINION1)) in master.etcd and (3, lease_key(MASTER)) in master.etcd

    # The other minion: not one command.
    assert run.commands[MINION1] == [] and run.uploads[MINION1] == {}
    assert machines[MINION1] == before_minion1

    # In order: the master's drain and delete, then the minion, then the lease.
    hosts = [host for host, _ in order]
    assert hosts == [MASTER, MASTER, *[MINION2] * len(run.commands[MINION2]), MASTER]

    # The removed minion: kubelab is gone, the distribution's part stays.
    assert kubelab_left(gone) == []
    assert gone.chains == {("iptables", "filter", "DOCKER-USER")}
    assert set(gone.files) == DISTRIBUTIONS_FILES
    assert {"chrony", "curl", "conntrack", "iptables"} <= gone.packages
    assert gone.units["kubepods.slice"]["active"] is False and not gone.tasks


def test_the_removed_minion_is_stopped_before_it_is_taken_apart(lab):
    machines, settings = lab
    commands = remove(machines, settings).commands[MINION2]
    stops = [c for c in commands if c.startswith("systemctl stop")]
    assert stops == [
        "systemctl stop kubelet.service",
        "systemctl stop kube-proxy.service",
        "systemctl stop kubepods.slice 2>/dev/null; for id in $(ctr --namespace k8s.io "
        "--connect-timeout 30s --timeout 900s tasks ls -q 2>/dev/null); do ctr --namespace "
        'k8s.io --connect-timeout 30s --timeout 900s tasks delete -f "$id" >/dev/null 2>&1; '
        "done; true",
        "systemctl stop containerd.service",
        "systemctl stop flanneld.service",
    ]
    for unit in ("kubelet", "kube-proxy", "containerd", "flanneld"):
        assert f"systemctl disable {unit}.service" in commands
    index = commands.index
    unmount = next(c for c in commands if c.startswith("findmnt"))
    assert index(unmount) > index("systemctl disable flanneld.service")
    assert index(unmount) < index("rm -rf --one-file-system /var/lib/kubelet")
    for path in (
        "/etc/systemd/system/kubelet.service",
        "/usr/local/bin/kubelet",
        "/usr/local/sbin/runc",
        "/opt/cni/bin/flannel",
        "/etc/kubernetes",
        "/etc/containerd/config.toml",
        "/etc/cni/net.d/10-flannel.conflist",
        "/var/lib/containerd",
        "/var/lib/cni",
        "/run/flannel",
        NETNS,
    ):
        assert f"rm -rf --one-file-system {path}" in commands, path
    assert "systemctl daemon-reload" in commands
    for directory in ("/etc/cni/net.d", "/etc/cni", "/opt/cni/bin", "/opt/cni", "/etc/containerd"):
        assert f"rmdir {directory}" in commands
    assert "ip link delete flannel.1 2>/dev/null || ! ip link show flannel.1 >/dev/null 2>&1" in (
        commands
    )
    assert "ip link delete cni0 2>/dev/null || ! ip link show cni0 >/dev/null 2>&1" in commands
    tables = [re.match(r"(\S+)-save -t (\w+) ", c).groups() for c in commands if "-save -t" in c]
    assert tables == [
        ("ip6tables", "nat"),
        ("iptables", "filter"),
        ("iptables", "mangle"),
        ("iptables", "nat"),
    ]
    chains = next(c for c in commands if c.startswith("iptables-save -t nat"))
    assert "grep -vE '^(:|-A )(KUBE|FLANNEL)-| -[jg] (KUBE|FLANNEL)-' | iptables-restore" in chains


def test_second_removal_changes_nothing(lab, monkeypatch):
    machines, settings = lab
    remove(machines, settings)
    deleted = []
    monkeypatch.setattr(
        node_removal, "delete_local_files", lambda state, host, paths: deleted.append(paths)
    )
    run = remove(machines, settings)
    assert run.commands == {host: [] for host in HOSTS}
    assert run.uploads == {host: {} for host in HOSTS}
    assert deleted == []


def test_the_removed_minions_certificates_leave_the_local_pki(lab):
    machines, settings = lab
    pki = Path(settings["pki_dir"])
    mine = {"kubelet-kubeminion2.crt", "kubelet-kubeminion2.key"}
    mine |= {"kubelet-serving-kubeminion2.crt", "kubelet-serving-kubeminion2.key"}
    assert mine <= {path.name for path in pki.iterdir()}
    remove(machines, settings)
    left = {path.name for path in pki.iterdir()}
    assert not mine & left
    assert {"ca.crt", "ca.key", "kubelet-kubeminion1.crt", "kubelet-serving-kubeminion1.crt"} <= (
        left
    )


def test_cluster_rerun_without_the_removed_host_changes_nothing(lab, tmp_path):
    machines, settings = lab
    remove(machines, settings)
    del machines[MINION2]
    inventory = write_inventory(tmp_path, [MINION1])
    run = run_deploy(machines, kubelab.deploy_cluster, inventory=inventory, data=settings)
    assert run.commands == {MASTER: [], MINION1: []}
    assert run.uploads == {MASTER: {}, MINION1: {}}


def test_a_node_already_gone_from_the_api_is_only_cleaned(lab):
    machines, settings = lab
    machines[MASTER].kube_nodes = {MINION1}
    run = remove(machines, settings)
    assert not any("drain" in c or "delete node" in c for c in run.commands[MASTER])
    assert kubelab_left(machines[MINION2]) == []


def test_pods_that_cannot_be_evicted_stop_the_removal_before_the_minion_is_touched(lab):
    machines, settings = lab
    machines[MASTER].undrainable = {MINION2: ["default/bare"]}
    before = copy.deepcopy(machines[MINION2])
    run = run_deploy(
        machines,
        kubelab.deploy_remove_node,
        data={**settings, "remove_nodes": MINION2},
        expect_failures=True,
    )
    assert run.failed == [MASTER]
    assert len(run.commands[MASTER]) == 1  # the drain, nothing after it
    assert run.commands[MINION2] == [] and machines[MINION2] == before
    assert (3, lease_key(MINION2)) in machines[MASTER].etcd


def test_drain_force_adds_force_and_disable_eviction(lab):
    machines, settings = lab
    machines[MASTER].undrainable = {MINION2: ["default/bare"]}
    run = remove(machines, settings, drain_force=True, drain_timeout=45)
    assert (
        "--timeout=45s --skip-wait-for-delete-timeout=60 --force --disable-eviction"
        in (run.commands[MASTER][0])
    )
    assert kubelab_left(machines[MINION2]) == []


def test_removing_every_minion_needs_remove_last_minion(lab):
    machines, settings = lab
    run = remove(machines, settings, f"{MINION1},kubeminion2", remove_last_minion=True)
    assert machines[MASTER].kube_nodes == set()
    assert machines[MASTER].drained == MINIONS
    for name in MINIONS:
        assert kubelab_left(machines[name]) == [], name
        assert (3, lease_key(name)) not in machines[MASTER].etcd
    assert (3, lease_key(MASTER)) in machines[MASTER].etcd
    drains, deletes, leases = (
        run.commands[MASTER][:2],
        run.commands[MASTER][2:4],
        run.commands[MASTER][4:],
    )
    assert [MINION1 in drains[0], MINION2 in drains[1]] == [True, True]
    assert all("delete node" in c for c in deletes) and len(leases) == 2


# Resetting the cluster ---------------------------------------------------------------------


def reset(machines, settings, **data):
    return run_deploy(
        machines, kubelab.deploy_reset, data={**settings, "reset_cluster": "kubelab", **data}
    )


def test_reset_removes_what_kubelab_put_on_every_host(lab):
    machines, settings = lab
    users = {name: set(machine.users) for name, machine in machines.items()}
    packages = {name: set(machine.packages) for name, machine in machines.items()}
    reset(machines, settings)
    for name, machine in machines.items():
        assert kubelab_left(machine) == [], name
        assert machine.etcd == {}
        assert set(machine.files) == DISTRIBUTIONS_FILES
        assert machine.users == users[name] and machine.packages == packages[name]
        assert machine.chains == {("iptables", "filter", "DOCKER-USER")}


def test_reset_stops_the_master_services_and_drops_etcds_data(lab):
    machines, settings = lab
    commands = reset(machines, settings).commands[MASTER]
    stops = [c.split()[-1] for c in commands if c.startswith("systemctl stop")]
    assert stops == [
        "kube-proxy.service",
        "kube-scheduler.service",
        "kube-controller-manager.service",
        "kube-apiserver.service",
        "flanneld.service",
        "etcd.service",
    ]
    assert "rm -rf --one-file-system /var/lib/etcd" in commands
    assert "rm -rf --one-file-system /etc/etcd/pki" in commands and "rmdir /etc/etcd" in commands
    assert "rm -rf --one-file-system /usr/local/bin/kubectl" in commands
    assert not any("kubepods" in c or c.startswith("findmnt") for c in commands)


def test_second_reset_changes_nothing(lab):
    machines, settings = lab
    reset(machines, settings)
    run = reset(machines, settings)
    assert run.commands == {host: [] for host in HOSTS}


def test_reset_keeps_the_pki_and_the_rebuild_reuses_its_ca(lab):
    machines, settings = lab
    ca = machines[MASTER].files[CA].content
    reset(machines, settings)
    assert (Path(settings["pki_dir"]) / "ca.crt").exists()
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    for name in HOSTS:
        assert machines[name].files[CA].content == ca
    for name in MINIONS:
        assert machines[name].units["kubelet.service"] == {"active": True, "enabled": True}
    assert (3, "/atomic.io/network/config") in machines[MASTER].etcd
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert again.commands == {host: [] for host in HOSTS}


def test_reset_pki_deletes_it_and_the_rebuild_mints_a_new_ca(lab):
    machines, settings = lab
    ca = machines[MASTER].files[CA].content
    pki = Path(settings["pki_dir"])
    reset(machines, settings, reset_pki="kubelab")
    assert not pki.exists() and not (pki.parent / "admin.kubeconfig").exists()
    run_deploy(machines, kubelab.deploy_cluster, data=settings)  # no lost-PKI refusal
    assert (pki / "ca.crt").read_bytes() == machines[MASTER].files[CA].content != ca
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert again.commands == {host: [] for host in HOSTS}


def test_a_failed_reset_keeps_the_pki(lab, caplog):
    machines, settings = lab
    machines[MINION1].stalled.add("kubelet.service")  # its stop times out
    caplog.set_level("ERROR")
    run = run_deploy(
        machines,
        kubelab.deploy_reset,
        data={**settings, "reset_cluster": "kubelab", "reset_pki": "kubelab"},
        expect_failures=True,
    )
    assert run.failed == [MASTER, MINION1]  # the master: its PKI step refused
    assert (Path(settings["pki_dir"]) / "ca.crt").exists()
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert f"the reset failed on {MINION1}" in messages
    assert "waiting on kubelab's services to stop (systemd's stop timeout" in messages


def test_reset_keeps_what_others_put_in_shared_directories(lab):
    machines, settings = lab
    other = "/etc/cni/net.d/99-other.conflist"
    machines[MINION1].files[other] = FileState(b"{}")
    run = reset(machines, settings)
    assert "rmdir /etc/cni/net.d" not in run.commands[MINION1]
    assert "rmdir /etc/cni/net.d" in run.commands[MINION2]
    assert other in machines[MINION1].files
    assert reset(machines, settings).commands == {host: [] for host in HOSTS}


def test_a_bind_mounted_state_directory_is_emptied_not_removed(lab):
    """The lab's machines bind-mount /var/lib/kubelet and /var/lib/containerd."""
    machines, settings = lab
    for name in MINIONS:
        machines[name].mountpoints |= {"/var/lib/kubelet", "/var/lib/containerd"}
        machines[name].dirs |= {"/var/lib/kubelet", "/var/lib/containerd"}
    commands = reset(machines, settings).commands[MINION1]
    for path in ("/var/lib/kubelet", "/var/lib/containerd"):
        emptied = f"find {path} -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {{}} +"
        assert f"[ ! -e {path} ] || {emptied}" in (commands)
        assert f"rm -rf --one-file-system {path}" not in commands
        assert path in machines[MINION1].dirs and not machines[MINION1].below(path)
    assert reset(machines, settings).commands == {host: [] for host in HOSTS}


def test_reset_deletes_flannels_device_of_the_clusters_vni(lab):
    """flanneld's vxlan device is flannel.<flannel_vni>: a cluster with VNI 7 has flannel.7."""
    machines, settings = lab
    for machine in machines.values():
        machine.links = {"flannel.7" if link == "flannel.1" else link for link in machine.links}
    run = reset(machines, settings, flannel_vni=7)
    for name, machine in machines.items():
        assert kubelab_left(machine) == [], name
        assert any(c.startswith("ip link delete flannel.7 ") for c in run.commands[name]), name
    assert reset(machines, settings, flannel_vni=7).commands == {host: [] for host in HOSTS}


# The shell of the drain, against a fake kubectl --------------------------------------------

FAKE_KUBECTL = r"""
import sys
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout")]
if args[:1] == ["--kubeconfig"]:
    args = args[2:]
if args[0] == "cordon":
    print(f"node/{args[1]} cordoned")
    sys.exit(0)
if args[0] == "drain":
    print(f"node/{args[1]} already cordoned")
    print(f'error: unable to drain node "{args[1]}" due to error: cannot delete Pods that '
          "declare no controller (use --force to override): default/bare, continuing command...")
    print("There are pending nodes to be drained:")
    print(f" {args[1]}")
    print("cannot delete Pods that declare no controller (use --force to override): "
          "default/bare", file=sys.stderr)
    sys.exit(1)
if args[0] == "get" and args[1] == "pods":
    print("default/bare ")
    print("kube-system/agent-x7 DaemonSet")
    print("default/web-1 ReplicaSet")
    sys.exit(0)
sys.exit(2)
"""


def test_shell_pods_that_stay_are_named_in_one_line(tmp_path, lab, monkeypatch):
    machines, settings = lab
    machines[MASTER].undrainable = {MINION2: ["default/bare"]}
    run = run_deploy(
        machines,
        kubelab.deploy_remove_node,
        data={**settings, "remove_nodes": MINION2, "drain_timeout": 120},
        expect_failures=True,
    )
    (drain,) = run.commands[MASTER]
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{textwrap.dedent(FAKE_KUBECTL)}")
    kubectl.chmod(0o755)
    result = subprocess.run(
        ["/bin/sh", "-c", drain.replace("/usr/local/bin/kubectl", str(kubectl))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"kubelab: {MASTER}: draining node {MINION2}: pods default/bare, default/web-1 not "
        "evicted within 120 s (drain_timeout; kubectl drain --timeout): cannot delete Pods "
        "that declare no controller (use --force to override): default/bare; drain_force=True "
        "deletes them without eviction (--force --disable-eviction)"
    ]


# A minion powered off for good: removed from the cluster by the master alone.

DEAD_LINE = (
    f"kubelab: {MINION2} unreachable: drained and deleted from the cluster by the master, its "
    "own cleanup skipped (kubelab's services and files stay on it: wipe it before using it again)"
)


def test_a_powered_off_minion_is_drained_and_deleted_its_cleanup_skipped(lab, caplog):
    machines, settings = lab
    caplog.set_level("WARNING")
    machines[MINION2].unreachable = True
    before_dead, before_minion1 = copy.deepcopy(machines[MINION2]), copy.deepcopy(machines[MINION1])
    run = remove(machines, settings)  # no host fails: the removal was what was asked
    master = machines[MASTER]
    drain, delete, lease = run.commands[MASTER]
    assert f"drain {MINION2} " in drain and "--skip-wait-for-delete-timeout=1 " in drain
    assert f"delete node {MINION2} " in delete and f"del {lease_key(MINION2)} " in lease
    assert master.kube_nodes == {MINION1} and (3, lease_key(MINION2)) not in master.etcd
    assert run.commands[MINION2] == [] and run.facts[MINION2] == []  # not even its OS asked
    assert machines[MINION2] == before_dead
    assert run.commands[MINION1] == [] and machines[MINION1] == before_minion1
    assert not (Path(settings["pki_dir"]) / "kubelet-kubeminion2.crt").exists()
    assert not (Path(settings["pki_dir"]) / "kube-proxy-kubeminion2.key").exists()
    assert (Path(settings["pki_dir"]) / "kube-proxy-kubeminion1.key").exists()
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert warnings == [DEAD_LINE]
    again = remove(machines, settings)
    assert again.commands == {host: [] for host in HOSTS}


def test_a_live_minion_waits_for_its_pods_to_confirm_their_end(lab):
    machines, settings = lab
    drain = remove(machines, settings).commands[MASTER][0]
    assert "--skip-wait-for-delete-timeout=60 " in drain
