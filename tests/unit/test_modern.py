"""The modern profile against simulated Debian 12, Ubuntu 24.04 and Rocky 9 hosts."""

import copy
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from types import SimpleNamespace

import fakehosts
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import debian12, rocky9, run_deploy, ubuntu24

import kubelab
from kubelab.components import catalog
from kubelab.engine import artifacts
from kubelab.engine.facts import ArchiveMarker, EtcdValue
from kubelab.settings.defaults import DEFAULTS

MASTER_IP = "192.168.122.130"
MIRROR = "http://192.168.122.1:8080"


def pins() -> dict:
    """A made-up sha256 for every artifact, pinned through the artifact_sha256 setting."""
    data = SimpleNamespace(**DEFAULTS)
    every = catalog.master_artifacts(data) + catalog.minion_artifacts(data)
    return {a.name: hashlib.sha256(a.name.encode()).hexdigest() for a in every}


def build(machine_factory, tmp_path, data=None):
    machines = {name: machine_factory() for name in HOSTS}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki"), **(data or {})}
    run = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    return machines, run, settings


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    return build(debian12, tmp_path_factory.mktemp("debian"))


def unit_flags(text: str) -> list[str]:
    """The flag names on a unit's ExecStart line (continuations joined)."""
    exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", text.replace("\\\n", " "), re.M)[1]
    tokens = exec_start.split()[1:]
    return [t.lstrip("-").split("=", 1)[0] for t in tokens if t.startswith("-")]


def test_debian_master_gets_packages_binaries_and_units(debian):
    machines, run, _ = debian
    master = machines[MASTER]
    assert {"chrony", "curl", "conntrack"} <= master.packages
    for binary in (
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kube-proxy",
    ):
        assert master.files[f"/usr/local/bin/{binary}"].mode == 0o755
        assert f"{MIRROR}/dl.k8s.io/v1.35.8/bin/linux/amd64/{binary}" in master.downloads
    assert "/usr/local/bin/flanneld" in master.files
    for unit in (
        "etcd",
        "flanneld",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "chrony",
    ):
        assert master.units[f"{unit}.service"] == {"active": True, "enabled": True}, unit
    assert "/usr/local/bin/containerd" not in master.files
    assert "/usr/local/bin/kubelet" not in master.files


def test_debian_minions_get_runtime_cni_and_node_services(debian):
    machines, _, _ = debian
    for name in MINIONS:
        minion = machines[name]
        assert "containerd" not in minion.packages
        for plugin in ("bridge", "host-local", "loopback", "portmap", "flannel"):
            assert f"/opt/cni/bin/{plugin}" in minion.files, plugin
        for unit in ("containerd", "flanneld", "kubelet", "kube-proxy"):
            assert minion.units[f"{unit}.service"] == {"active": True, "enabled": True}, unit
        assert '"type": "flannel"' in minion.text("/etc/cni/net.d/10-flannel.conflist")
        kubelet = minion.text("/etc/kubernetes/kubelet-config.yaml")
        assert "cgroupDriver: systemd" in kubelet and "failSwapOn: false" in kubelet


def test_every_download_is_verified_before_install(debian):
    _, run, settings = debian
    for host in HOSTS:
        for command in run.commands[host]:
            if not command.startswith("curl -fsSL --retry 3"):  # a release artifact
                continue
            fetch, verify = command.split(" && ", 2)[:2]
            sha = re.search(r"echo '(\w+) ", verify)[1]
            assert sha in settings["artifact_sha256"].values()
            assert "sha256sum -c" in verify
            # the final path is written only after the check
            assert command.index("sha256sum -c") < command.index("mv -f")


@pytest.mark.parametrize(
    "unit, component, version",
    [
        ("kube-apiserver", "kube-apiserver", "1.35"),
        ("kube-controller-manager", "kube-controller-manager", "1.35"),
        ("kube-scheduler", "kube-scheduler", "1.36"),
        ("kubelet", "kubelet", "1.35"),
        ("kube-proxy", "kube-proxy", "1.35"),
        ("flanneld", "flanneld", "0.28.9"),
    ],
)
def test_every_flag_is_one_the_release_accepts(debian, flags, unit, component, version):
    machines, _, _ = debian
    host = MASTER if unit.startswith(("kube-api", "kube-con", "kube-sch")) else MINIONS[0]
    used = unit_flags(machines[host].text(f"/etc/systemd/system/{unit}.service"))
    assert used
    assert set(used) <= set(flags[component][version]), set(used) - set(flags[component][version])


def test_etcd_environment_is_etcd_settings(debian, flags):
    machines, _, _ = debian
    text = machines[MASTER].text("/etc/default/etcd")
    names = set(re.findall(r"^(ETCD_\w+)=", text, re.M))
    known = set(flags["etcd_env"]["3.6.14"].values())
    assert names and names <= known, names - known
    # secure by default on modern: TLS, and only clients with a certificate of the cluster CA
    assert f'ETCD_ADVERTISE_CLIENT_URLS="https://{MASTER_IP}:2379"' in text
    assert 'ETCD_CLIENT_CERT_AUTH="true"' in text


def test_flannel_config_written_with_the_v3_api(debian):
    machines, _, _ = debian
    etcd = machines[MASTER].etcd
    assert (3, "/atomic.io/network/config") in etcd
    assert (2, "/atomic.io/network/config") not in etcd


def test_keys_and_kubeconfigs_are_private(debian):
    machines, _, _ = debian
    for host in HOSTS:
        for path, state in machines[host].files.items():
            if path.endswith((".key", ".kubeconfig")):
                owner = "etcd" if path.startswith("/etc/etcd/") else "root"  # etcd reads its key
                assert (state.mode, state.user) == (0o600, owner), path


def test_kernel_networking_for_kubernetes(debian):
    machines, _, _ = debian
    for host in HOSTS:
        text = machines[host].text("/etc/sysctl.d/90-kubelab.conf")
        assert "net.ipv4.ip_forward = 1" in text
        assert "net.bridge.bridge-nf-call-iptables = 1" in text
        assert machines[host].sysctl_applied
        assert "br_netfilter" in machines[host].text("/etc/modules-load.d/kubelab.conf")


def test_second_run_changes_nothing(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    run = run_deploy(converged, kubelab.deploy_cluster, data=settings)
    assert run.commands == {host: [] for host in HOSTS}
    assert run.uploads == {host: {} for host in HOSTS}


def test_new_binary_version_restarts_only_its_services(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    pinned = dict(settings["artifact_sha256"], kubelet="0" * 64)
    run_deploy(converged, kubelab.deploy_cluster, data={**settings, "artifact_sha256": pinned})
    for minion in MINIONS:
        assert converged[minion].restarts == ["kubelet.service"]
    assert converged[MASTER].restarts == []


def test_hand_edited_kube_proxy_config_is_restored_and_only_it_restarts(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    converged[MINIONS[1]].files["/etc/kubernetes/kube-proxy-config.yaml"].content += b"x: 1\n"
    run = run_deploy(converged, kubelab.deploy_cluster, data=settings)
    assert run.changed_hosts() == [MINIONS[1]]
    assert converged[MINIONS[1]].restarts == ["kube-proxy.service"]


@pytest.mark.parametrize("factory", [ubuntu24, rocky9])
def test_other_distributions_converge(factory, tmp_path):
    machines, run, settings = build(factory, tmp_path)
    assert run.commands[MASTER]
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert again.commands == {host: [] for host in HOSTS}


@pytest.mark.parametrize("factory", [debian12, ubuntu24, rocky9])
def test_every_master_runs_upstream_etcd_as_its_own_user(factory, tmp_path):
    machines, run, _ = build(factory, tmp_path)
    master = machines[MASTER]
    assert "/usr/local/bin/etcd" in master.files and "/usr/local/bin/etcdctl" in master.files
    assert not {"etcd", "etcd-server", "etcd-client"} & master.packages
    release = f"etcd-{DEFAULTS['etcd_version']}-linux-amd64.tar.gz"
    assert any(url.endswith(f"/{release}") for url in master.downloads)
    unit = master.text("/etc/systemd/system/etcd.service")
    assert "ExecStart=/usr/local/bin/etcd" in unit
    assert "User=etcd\nGroup=etcd\n" in unit
    assert "useradd -d /var/lib/etcd -s /usr/sbin/nologin -r -M etcd" in run.commands[MASTER]
    assert master.dir_owners["/var/lib/etcd"] == ("etcd", "etcd")
    assert master.dir_modes["/var/lib/etcd"] == 0o700
    assert 'ETCD_DATA_DIR="/var/lib/etcd/default"' in master.text("/etc/default/etcd")
    assert master.units["etcd.service"] == {"active": True, "enabled": True}


def test_etcd_data_written_as_root_becomes_etcds(debian):
    """A master whose etcd ran as root (kubelab's earlier EL unit): its data turns etcd's."""
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    master = converged[MASTER]
    master.dir_owners["/var/lib/etcd"] = ("root", "root")
    master.files["/var/lib/etcd/default/member/snap/db"] = fakehosts.FileState(b"db", 0o600)
    run = run_deploy(converged, kubelab.deploy_cluster, data=settings)
    assert run.commands[MASTER] == ["chown -R etcd:etcd /var/lib/etcd"]
    assert master.files["/var/lib/etcd/default/member/snap/db"].user == "etcd"


@pytest.mark.parametrize("factory", [debian12, ubuntu24, rocky9])
def test_every_minion_runs_upstream_containerd_and_runc(factory, tmp_path):
    machines, _, _ = build(factory, tmp_path)
    minion = machines[MINIONS[0]]
    assert "containerd" not in minion.packages and "runc" not in minion.packages
    for path in (
        "/usr/local/bin/containerd",
        "/usr/local/bin/containerd-shim-runc-v2",
        "/usr/local/bin/ctr",
        "/usr/local/sbin/runc",
        "/etc/systemd/system/containerd.service",
    ):
        assert path in minion.files, path
    assert any("containerd-2.2.9-linux-amd64.tar.gz" in url for url in minion.downloads)
    assert any(url.endswith("/v1.3.6/runc.amd64") for url in minion.downloads)
    unit = minion.text("/etc/systemd/system/containerd.service")
    assert "ExecStart=/usr/local/bin/containerd\n" in unit and "Delegate=yes" in unit
    assert minion.units["containerd.service"] == {"active": True, "enabled": True}
    assert ("conntrack-tools" if factory is rocky9 else "conntrack") in minion.packages


def test_lost_pki_with_a_running_cluster_stops_before_any_change(debian, tmp_path):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    lost = {**settings, "pki_dir": str(tmp_path / "empty")}
    with pytest.raises(kubelab.SettingError, match="pki_dir.*will not mint a new CA"):
        run_deploy(converged, kubelab.deploy_cluster, data=lost)
    assert converged == machines


def test_existing_pki_is_reused_for_a_fresh_master(debian, tmp_path):
    """Rebuilt hosts with the same local PKI get the same CA: nothing is re-minted."""
    machines, _, settings = debian
    fresh = {name: debian12() for name in HOSTS}
    run_deploy(fresh, kubelab.deploy_cluster, data=settings)
    ca = "/etc/kubernetes/pki/ca.crt"
    assert fresh[MASTER].files[ca].content == machines[MASTER].files[ca].content


def test_changed_flannel_network_gives_flanneld_a_fresh_vxlan_device(debian):
    """flanneld keeps its device's address from the old network (the kernel would pick it as
    the source towards the new one): every host stops flanneld (which would put it back) and
    drops flannel.1 before flanneld starts again."""
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    run = run_deploy(
        converged, kubelab.deploy_cluster, data={**settings, "flannel_network": "10.30.0.0/16"}
    )
    for name in HOSTS:
        commands = run.commands[name]
        stopped = [i for i, c in enumerate(commands) if c == "systemctl stop flanneld.service"]
        dropped = [i for i, c in enumerate(commands) if c.startswith("ip link delete flannel.1 ")]
        started = [i for i, c in enumerate(commands) if "systemctl start flanneld.service" in c]
        assert stopped and dropped and started, commands
        assert stopped[0] < dropped[0] < started[0], commands
    unchanged = run_deploy(copy.deepcopy(machines), kubelab.deploy_cluster, data=settings)
    assert not any("ip link delete" in c for cs in unchanged.commands.values() for c in cs)


@pytest.mark.parametrize("lost, converges", [(2, True), (3, False)])
def test_a_flanneld_that_loses_its_subnet_to_another_host_is_started_again(
    tmp_path, lost, converges
):
    """Two flanneld picking the same free subnet: the one whose lease lost exits, and its next
    start sees the other's lease. Up to two lost starts end in a running flanneld."""
    machines = {name: debian12() for name in HOSTS}
    machines[MINIONS[0]].lost_starts["flanneld.service"] = lost
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run = run_deploy(machines, kubelab.deploy_cluster, data=settings, expect_failures=True)
    assert run.failed == ([] if converges else [MINIONS[0]])
    assert machines[MINIONS[0]].units["flanneld.service"]["active"] is converges


@pytest.mark.parametrize("lost, status", [(0, 0), (2, 0), (3, 1)])
def test_the_retried_start_in_a_real_shell(tmp_path, lost, status, monkeypatch):
    """kubelab's own tries of a start (not pyinfra's systemctl command rewritten): each failed
    try said, then one line naming the host and what the start waited on."""
    from kubelab.engine import common

    monkeypatch.setattr(common, "host", SimpleNamespace(name="minion1"))
    monkeypatch.setattr(common.bounds, "service_start", lambda name: f"{name} to start (bound)")
    (tmp_path / "lost").write_text(str(lost))
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\nn=$(cat "$(dirname "$0")/lost")\n'
        '[ "$n" -gt 0 ] || exit 0\necho $((n - 1)) > "$(dirname "$0")/lost"; exit 1\n'
    )
    systemctl.chmod(0o755)
    command = common.started("flanneld", 3, running=False)
    path = f"{tmp_path}:{os.environ['PATH']}"
    result = subprocess.run(["sh", "-c", command], env={"PATH": path}, capture_output=True)
    assert result.returncode == status
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["start flanneld.service"] + ["restart flanneld.service"] * min(lost, 2)
    assert result.stderr.decode().count("kubelab: flanneld did not start, trying again") == min(
        lost, 2
    )
    last = "kubelab: minion1: flanneld did not start in 3 tries, each waiting on flanneld to start"
    assert (last in result.stderr.decode()) is bool(status)


@pytest.mark.parametrize("complete", [True, False])
def test_an_archives_members_unpacked_in_a_real_shell(tmp_path, complete):
    """containerd's archive, fetched, checked and unpacked by sh here: every member in place,
    executable, from one decompression; nothing of the download left. An archive without
    one of the members fails, leaving no marker and no decompressed copy."""
    members = {"containerd": b"daemon", "containerd-shim-runc-v2": b"shim", "ctr": b"client"}
    packed = {**members, "containerd-stress": b"not installed"}
    if not complete:
        del packed["ctr"]
    release = tmp_path / "release.tar.gz"
    with tarfile.open(release, "w:gz") as archive:
        for name, content in packed.items():
            info = tarfile.TarInfo(f"bin/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    name = artifacts.containerd_release(DEFAULTS["containerd_version"]).name
    sha256 = hashlib.sha256(release.read_bytes()).hexdigest()
    machines = {host: debian12() for host in HOSTS}
    settings = {"artifact_sha256": {**pins(), name: sha256}, "pki_dir": str(tmp_path / "pki")}
    run = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    (command,) = [
        c for c in run.commands[MINIONS[0]] if f"-o /var/lib/kubelab/artifacts/{name}" in c
    ]
    command = re.sub(rf"http://\S+/{re.escape(name)}", f"file://{release}", command)
    command = command.replace("/var/lib/kubelab/", f"{tmp_path}/state/")
    command = command.replace("/usr/local/bin/", f"{tmp_path}/bin/")
    (tmp_path / "state" / "artifacts").mkdir(parents=True)
    (tmp_path / "bin").mkdir()

    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    if not complete:
        assert result.returncode != 0
        assert f"{name}.sha256" not in os.listdir(tmp_path / "state" / "artifacts")
        assert f"{name}.tar" not in os.listdir(tmp_path / "state" / "artifacts")
        return
    assert result.returncode == 0, result.stderr
    for member, content in members.items():
        installed = tmp_path / "bin" / member
        assert installed.read_bytes() == content
        assert installed.stat().st_mode & 0o777 == 0o755
    assert sorted(path.name for path in (tmp_path / "bin").iterdir()) == sorted(members)
    assert os.listdir(tmp_path / "state" / "artifacts") == [f"{name}.sha256"]
    assert command.count("gzip -dc") == 1 and "tar -xz" not in command
    # The marker: the archive's digest, then each member's as unpacked, read back by the fact.
    marker = (tmp_path / "state" / "artifacts" / f"{name}.sha256").read_text().splitlines()
    assert ArchiveMarker().process(marker) == {
        "archive": sha256,
        "members": {
            f"{tmp_path}/bin/{member}": hashlib.sha256(content).hexdigest()
            for member, content in members.items()
        },
    }


def release_pins(**versions) -> dict:
    """Made-up digests for every artifact at ``versions`` (and the defaults)."""
    data = SimpleNamespace(**{**DEFAULTS, **versions})
    every = catalog.master_artifacts(data) + catalog.minion_artifacts(data)
    return {a.name: hashlib.sha256(a.name.encode()).hexdigest() for a in every}


@pytest.mark.parametrize(
    "setting, older, host, binary, unit",
    [
        ("containerd_version", "v2.2.8", MINIONS[0], "/usr/local/bin/containerd", "containerd"),
        ("etcd_version", "v3.6.13", MASTER, "/usr/local/bin/etcd", "etcd"),
    ],
)
def test_a_release_installed_before_is_installed_again_after_another(
    tmp_path, setting, older, host, binary, unit
):
    """2.2.9 -> 2.2.8 -> 2.2.9: the third run finds the 2.2.9 archive's marker of the first,
    and still puts 2.2.9's binaries back (each member checked by its own digest)."""
    newer = DEFAULTS[setting]
    machines = {name: debian12() for name in HOSTS}
    pinned = {**release_pins(), **release_pins(**{setting: older})}
    settings = {"artifact_sha256": pinned, "pki_dir": str(tmp_path / "pki")}
    for version in (newer, older, newer):
        for machine in machines.values():
            machine.restarts.clear()
        run_deploy(machines, kubelab.deploy_cluster, data={**settings, setting: version})
        assert fakehosts.version_of(machines[host].files[binary].content) == version
        assert fakehosts.running_version(machines[host], f"{unit}.service") == version
    assert machines[host].restarts == [f"{unit}.service"]
    again = run_deploy(machines, kubelab.deploy_cluster, data={**settings, setting: newer})
    assert again.commands == {name: [] for name in HOSTS}


@pytest.mark.parametrize(
    "host, path, unit",
    [
        (MINIONS[0], "/usr/local/bin/ctr", "containerd"),
        (MINIONS[1], "/opt/cni/bin/bridge", None),
        (MASTER, "/usr/local/bin/etcdctl", "etcd"),
        (MINIONS[0], "/usr/local/bin/kube-proxy", "kube-proxy"),
    ],
)
def test_a_corrupted_binary_is_installed_again(debian, host, path, unit):
    """A byte appended to an installed file (an archive's member or a binary): the next run
    installs it again from its verified download, and restarts the service it belongs to."""
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    installed = copy.deepcopy(converged[host].files[path])
    converged[host].files[path].content += b"\0"
    converged[host].files[path].sha256 = None
    run = run_deploy(converged, kubelab.deploy_cluster, data=settings)
    assert run.changed_hosts() == [host]
    assert converged[host].files[path].digest() == installed.digest()
    assert converged[host].restarts == ([f"{unit}.service"] if unit else [])


@pytest.mark.parametrize("failed_reads", [1, 2])
def test_an_etcd_read_that_fails_restarts_no_flanneld(debian, failed_reads):
    """The v3 read of flannel's config fails: no flanneld restarts; read again when the run
    gets there: nothing to do, or (failing again) the master fails."""
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    converged[MASTER].etcd_read_errors = ["context deadline exceeded"] * failed_reads
    run = run_deploy(converged, kubelab.deploy_cluster, data=settings, expect_failures=True)
    assert [m.restarts for m in converged.values()] == [[], [], []]
    assert run.commands == {host: [] for host in HOSTS}
    assert run.failed == ([] if failed_reads == 1 else [MASTER])


FAKE_ETCDCTL = """#!/bin/sh
# etcdctl as each case makes it answer: CASE names it
case "$CASE" in
v3-value) echo "[WARN] a deprecation" >&2; echo '{"Network":"10.5.0.0/16"}';;
v3-absent) ;;
v3-down) echo '{"level":"warn","msg":"retrying"}' >&2
  echo 'Error: context deadline exceeded' >&2; exit 1;;
v2-value) echo '{"Network":"10.2.0.0/16"}';;
v2-absent) echo 'Error:  100: Key not found (/atomic.io/network/config) [7]' >&2; exit 4;;
v2-down) echo 'Error:  client: etcd cluster is unavailable or misconfigured; error #0: dial tcp \
192.168.122.130:2379: connect: connection refused' >&2
  echo 'error #0: dial tcp 192.168.122.130:2379: connect: connection refused' >&2; exit 4;;
esac
"""


@pytest.mark.parametrize(
    "case, expected",
    [
        ("v3-value", {"value": '{"Network":"10.5.0.0/16"}'}),
        ("v3-absent", {"value": None}),
        ("v3-down", {"error": "Error: context deadline exceeded"}),
        ("v2-value", {"value": '{"Network":"10.2.0.0/16"}'}),
        ("v2-absent", {"value": None}),
        (
            "v2-down",
            {"error": "error #0: dial tcp 192.168.122.130:2379: connect: connection refused"},
        ),
        ("no-etcdctl", {"value": None}),
    ],
)
def test_an_etcd_read_tells_absent_from_unreadable_in_a_real_shell(tmp_path, case, expected):
    """EtcdValue's command run by sh here, with etcdctl answering as etcd 3.3 (v2 API) and 3.6
    (v3 API) do: a missing key and a failed read are told apart."""
    binaries = tmp_path / "bin"
    binaries.mkdir()
    if case != "no-etcdctl":
        (binaries / "etcdctl").write_text(FAKE_ETCDCTL)
        (binaries / "etcdctl").chmod(0o755)
    api = 2 if case.startswith("v2") else 3
    command = EtcdValue().command("http://192.168.122.130:2379", "/atomic.io/network/config", api)
    for tool in ("grep", "tail"):
        (binaries / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(binaries), "CASE": case}
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert EtcdValue().process(result.stdout.splitlines()) == expected
