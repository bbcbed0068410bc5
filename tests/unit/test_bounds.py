"""Bounded time: every remote command that waits on the network or a service ends, and a
stalled source fails the host with one line naming the host, the operation and what it
waited on.

The simulated hosts show which commands run (and with which pyinfra ``_timeout``); the shell
kubelab emits for curl and etcdctl is also run here for real, against a local server that
accepts connections and never answers, with small bounds.
"""

import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import SimulatedConnector, centos7, debian12, run_deploy
from test_modern import pins

import kubelab
from kubelab import SettingError
from kubelab.engine import bounds
from kubelab.engine.facts import PackageSources

SOURCES = "http://deb.debian.org/debian, http://deb.debian.org/debian-security"


@pytest.fixture
def timeouts(monkeypatch):
    """Every command the simulated hosts run, with the pyinfra _timeout it ran under."""
    seen = []
    run = SimulatedConnector.run_shell_command

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        seen.append((self.host.name, text, kwargs.get("_timeout")))
        return run(self, command, *args, **kwargs)

    monkeypatch.setattr(SimulatedConnector, "run_shell_command", run_shell_command)
    return seen


@pytest.fixture
def stalled_server():
    """http://127.0.0.1:<port>: accepts every connection, never sends a byte."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in accepted:
        connection.close()


def kubelab_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "kubelab: " in r.getMessage()]


def test_apt_is_bounded_before_its_first_operation(tmp_path, timeouts):
    machines = {name: debian12() for name in HOSTS}
    run = run_deploy(
        machines, kubelab.deploy_cluster, data={"artifact_sha256": pins(), "pki_dir": str(tmp_path)}
    )
    for name in HOSTS:
        config = machines[name].text(bounds.APT_CONFIG)
        assert 'Acquire::http::Timeout "30";' in config
        assert 'Acquire::https::Timeout "30";' in config
        assert 'Acquire::Retries "2";' in config
        assert 'Acquire::Retries::Delay "false";' in config
        assert 'APT::Update::Error-Mode "any";' in config
        assert bounds.APT_CONFIG in run.uploads[name]
        apt = [
            (text, limit) for host, text, limit in timeouts if host == name and "apt-get" in text
        ]
        assert apt and all(limit == 900 for _, limit in apt), apt
        assert apt[0][0] == "apt-get update"


def test_the_apt_config_comes_before_any_apt_command(tmp_path, monkeypatch):
    order = []
    run, put = SimulatedConnector.run_shell_command, SimulatedConnector.put_file

    def run_shell_command(self, command, *args, **kwargs):
        order.append((self.host.name, str(command)))
        return run(self, command, *args, **kwargs)

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        order.append((self.host.name, f"upload {remote_filename}"))
        return put(self, filename_or_io, remote_filename, *args, **kwargs)

    monkeypatch.setattr(SimulatedConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(SimulatedConnector, "put_file", put_file)
    machines = {name: debian12() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_prerequisites)
    for name in HOSTS:
        mine = [what for host, what in order if host == name]
        first_apt = next(i for i, what in enumerate(mine) if "apt-get" in what)
        assert f"upload {bounds.APT_CONFIG}" in mine[:first_apt]


def test_yum_is_bounded_by_its_own_options_and_the_operation_timeout(timeouts):
    machines = {name: centos7() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data={"network_timeout": 20})
    installs = [(text, limit) for _, text, limit in timeouts if text.startswith("yum install")]
    assert installs
    for text, limit in installs:
        assert "--setopt=timeout=20 --setopt=retries=2" in text
        assert limit == 900


def test_a_stalled_apt_source_fails_the_update_with_one_line(caplog, tmp_path):
    """apt-get update fails (APT::Update::Error-Mode any): no cache stamp is written, so the
    next run refreshes again, and one line names the host, the operation and the sources."""
    caplog.set_level(logging.ERROR, logger="pyinfra")
    machines = {name: debian12() for name in HOSTS}
    for machine in machines.values():
        machine.stalled.add("http://deb.debian.org/debian")
    # no checksum fetched from the lab's mirror, no PKI in the user's home
    data = {"artifact_sha256": pins(), "pki_dir": str(tmp_path)}
    run = run_deploy(machines, kubelab.deploy_cluster, data=data, expect_failures=True)
    assert run.failed == sorted(HOSTS)
    for name in HOSTS:
        assert run.commands[name][-1] == "apt-get update"
        assert "/var/lib/apt/periodic/update-success-stamp" not in machines[name].files
    lines = kubelab_lines(caplog)
    assert len(lines) == len(HOSTS)
    assert (
        f"kubelab: {MASTER}: 'Kubernetes cluster | Prerequisites | Refresh the package index "
        f"(daily)' failed, waiting on the package sources {SOURCES} (apt: 30 s to connect or "
        "without data, 2 retries; the operation at most 900 s)"
    ) in lines, lines


def test_a_stalled_download_fails_its_host_with_one_line(tmp_path, stalled_server, caplog):
    """On the simulated minion the fetch fails; the very command, run here with curl against
    a server that never answers, ends within its bounds and prints one line."""
    data = {
        "artifact_sha256": pins(),
        "pki_dir": str(tmp_path / "pki"),
        "artifact_mirror": stalled_server,
        "network_timeout": 1,
        "operation_timeout": 2,
    }
    url = f"{stalled_server}/dl.k8s.io/v1.35.8/bin/linux/amd64/kubelet"
    machines = {name: debian12() for name in HOSTS}
    machines[MINIONS[0]].stalled.add(url)
    run = run_deploy(machines, kubelab.deploy_cluster, data=data, expect_failures=True)
    assert run.failed == [MINIONS[0]]
    command = run.commands[MINIONS[0]][-1]
    assert "--connect-timeout 1 --speed-limit 1024 --speed-time 1 --max-time 2" in command
    assert "/usr/local/bin/kubelet" not in machines[MINIONS[0]].files
    if shutil.which("curl") is None:
        pytest.skip("no curl here to run the command with")
    temp = str(tmp_path / "kubelet.download")
    local = command.replace("/usr/local/bin/kubelet.download", temp)
    started = time.monotonic()
    result = subprocess.run(["sh", "-c", local], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    assert result.returncode == 1 and seconds < 15, (result, seconds)
    assert not os.path.exists(temp)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        f"kubelab: {MINIONS[0]}: Install kubelet v1.35.8: {url}: curl: (28) "
    ), result.stderr
    assert result.stderr.rstrip().endswith(
        "(curl: 1 s to connect or without data, 2 s in all, 3 retries)"
    )


def test_etcdctl_writes_are_bounded_and_name_the_endpoint(tmp_path):
    """The flannel config write: WRITE_ATTEMPTS tries with etcdctl's own timeouts, then one line
    with the endpoint and etcdctl's last error (run here with a stand-in etcdctl)."""
    endpoint = "https://192.168.122.130:2379"
    machines = {name: debian12() for name in HOSTS}
    machines[MASTER].stalled.add(endpoint)
    data = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run = run_deploy(machines, kubelab.deploy_cluster, data=data, expect_failures=True)
    assert MASTER in run.failed
    command = run.commands[MASTER][-1]
    assert "--dial-timeout=5s --command-timeout=10s" in command
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "etcdctl").write_text(
        '#!/bin/sh\necho "$@" >> "$0.log"\necho \'Error: context deadline exceeded\' >&2\nexit 1\n'
    )
    (fake / "sleep").write_text("#!/bin/sh\n")
    for script in fake.iterdir():
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"kubelab: {MASTER}: storing flannel's network config: etcd at {endpoint} did not "
        "accept it in 10 attempts (each at most 5 s to connect, 10 s to answer): Error: context "
        "deadline exceeded\n"
    )
    assert len((fake / "etcdctl.log").read_text().splitlines()) == 10


def test_a_service_that_does_not_start_names_what_it_needs(caplog):
    caplog.set_level(logging.ERROR, logger="pyinfra")
    machines = {name: centos7() for name in HOSTS}
    machines[MINIONS[1]].stalled.add("flanneld.service")
    run = run_deploy(machines, kubelab.deploy_cluster, expect_failures=True)
    assert run.failed == [MINIONS[1]]
    assert kubelab_lines(caplog) == [
        f"kubelab: {MINIONS[1]}: 'Kubernetes cluster | Minion | Minion services | flannel | "
        "flanneld running and enabled, restarted if its configuration changed' failed, waiting on "
        "flanneld to start, "
        "which needs etcd at http://192.168.122.130:2379 (systemd's start timeout, 90 s unless "
        "its unit sets one)"
    ]


def test_el7_etcdctl_uses_the_v2_names_of_the_timeouts():
    machines = {name: centos7() for name in HOSTS}
    run = run_deploy(machines, kubelab.deploy_cluster)
    write = next(c for c in run.commands[MASTER] if "etcdctl" in c)
    assert "ETCDCTL_API=2 etcdctl --endpoints=http://192.168.122.130:2379 --timeout=5s " in write
    assert "--total-timeout=10s set " in write


def test_a_checksum_that_does_not_come_stops_the_run_naming_the_url(tmp_path, stalled_server):
    data = {
        "pki_dir": str(tmp_path),
        "artifact_mirror": stalled_server,
        "artifact_sha256": {},  # no pins (the lab's group_data may hold some)
        "network_timeout": 1,
    }
    machines = {name: debian12() for name in HOSTS}
    started = time.monotonic()
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert time.monotonic() - started < 10
    # the first artifact of whichever host prepares first
    assert re.fullmatch(
        rf"kubelab: setting 'artifact_sha256' on \S+: no checksum for (\S+): "
        rf"{stalled_server}/\S+ did not answer within 1 s \(network_timeout\); "
        r"pin it with artifact_sha256=\{'\1': '<sha256>'\}",
        str(raised.value),
    ), str(raised.value)


def test_package_sources_of_every_format():
    lines = [
        "deb http://deb.debian.org/debian bookworm main",
        "# deb http://commented.example/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] https://apt.example/ stable main",
        "URIs: http://deb.debian.org/debian http://mirror.example/debian",
        "Suites: bookworm",
        "mirrorlist=http://mirrorlist.centos.org/?release=7&repo=os",
        "#baseurl=http://mirror.centos.org/centos/7/os/x86_64/",
        "baseurl=http://vault.centos.org/7.9.2009/os/x86_64/",
    ]
    assert PackageSources().process(lines) == [
        "http://deb.debian.org/debian",
        "https://apt.example/",
        "http://mirror.example/debian",
        "http://mirrorlist.centos.org/?release=7&repo=os",
        "http://vault.centos.org/7.9.2009/os/x86_64/",
    ]


def test_a_umount_that_blocks_is_bounded_and_the_mount_taken_off_lazily(tmp_path, monkeypatch):
    """The teardown's unmount, run for real: a plain umount of a dead network mount never
    returns (here: it sleeps), so it is cut off after UMOUNT_TIMEOUT s and unmounted lazily."""
    from pyinfra.context import ctx_host

    from kubelab.workflows import teardown

    monkeypatch.setattr(teardown, "UMOUNT_TIMEOUT", 1)
    mounts = tmp_path / "mounts"
    mounts.write_text("/var/lib/kubelet/pods/1/volumes/nfs\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "findmnt").write_text(f"#!/bin/sh\ncat {mounts}\n")
    (bin_dir / "umount").write_text(
        "#!/bin/sh\n"
        f'[ "$1" = -l ] || exec sleep 600\n'
        f'grep -vxF "$2" {mounts} > {mounts}.new; mv {mounts}.new {mounts}\n'
    )
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    with ctx_host.use(type("Host", (), {"name": "kubeminion1"})()):
        command = teardown.unmount_command()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    started = time.monotonic()
    process = subprocess.Popen(["sh", "-c", command], env=env, start_new_session=True)
    try:
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
    assert code == 0
    assert time.monotonic() - started < 10
    assert mounts.read_text() == ""
