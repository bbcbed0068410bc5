"""containerd 2.x on the minions: its config (version 3), the sandbox image, image archives."""

import copy

import fakehosts
import pytest
import tomllib
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import debian12, image_archive, rocky9, run_deploy, ubuntu24
from test_modern import build

import kubelab
from kubelab.settings.defaults import DEFAULTS

CRI_IMAGES = "io.containerd.cri.v1.images"
CRI_RUNTIME = "io.containerd.cri.v1.runtime"
PAUSE = "registry.k8s.io/pause:3.10.1"
NGINX = "docker.io/library/nginx:1.27"
NGINX_URL = "http://192.168.122.1:8080/lab/images/nginx-1.27.tar"
IMPORT = (
    "ctr --namespace k8s.io --connect-timeout 30s --timeout 900s images import --platform "
    "linux/amd64"
)


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    return build(debian12, tmp_path_factory.mktemp("debian"))


def containerd_config(machine) -> dict:
    return tomllib.loads(machine.text("/etc/containerd/config.toml"))


@pytest.mark.parametrize("factory", [debian12, ubuntu24, rocky9])
def test_containerd_config_is_version_3_with_systemd_cgroups_and_flannel_cni(factory, tmp_path):
    machines, _, _ = build(factory, tmp_path, {"sandbox_image": DEFAULTS["sandbox_image"]})
    for minion in MINIONS:
        config = containerd_config(machines[minion])
        assert config["version"] == 3
        plugins = config["plugins"]
        assert plugins[CRI_IMAGES] == {"pinned_images": {"sandbox": PAUSE}}
        runc = plugins[CRI_RUNTIME]["containerd"]["runtimes"]["runc"]
        assert runc == {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": True}}
        assert plugins[CRI_RUNTIME]["cni"] == {
            "bin_dirs": ["/opt/cni/bin"],
            "conf_dir": "/etc/cni/net.d",
        }
        assert set(config) == {"version", "plugins"}
        assert set(plugins) == {CRI_IMAGES, CRI_RUNTIME}
    assert "/etc/containerd/config.toml" not in machines[MASTER].files


def test_sandbox_image_is_written_to_containerds_pinned_sandbox_only(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    mirror = "192.168.122.1:5000/pause:3.10.1"
    run = run_deploy(converged, kubelab.deploy_cluster, data={**settings, "sandbox_image": mirror})
    for minion in MINIONS:
        assert containerd_config(converged[minion])["plugins"][CRI_IMAGES] == {
            "pinned_images": {"sandbox": mirror}
        }
        assert converged[minion].restarts == ["containerd.service"]
        written = {path for path, data in run.uploads[minion].items() if b"pause" in data}
        assert written == {"/etc/containerd/config.toml"}
        others = [p for p, f in converged[minion].files.items() if b"pause:" in f.content]
        assert others == ["/etc/containerd/config.toml"]
    assert run.commands[MASTER] == []


def test_containerd_release_change_restarts_containerd_only(debian):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    name = "containerd-2.2.9-linux-amd64.tar.gz"
    pins = dict(settings["artifact_sha256"], **{name: "1" * 64})
    run_deploy(converged, kubelab.deploy_cluster, data={**settings, "artifact_sha256": pins})
    for minion in MINIONS:
        assert converged[minion].restarts == ["containerd.service"]
    assert converged[MASTER].restarts == []


def test_runc_release_change_restarts_nothing(debian):
    """runc runs once per container start: the next container simply gets the new one."""
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    pins = dict(settings["artifact_sha256"], **{"runc.amd64": "2" * 64})
    run = run_deploy(converged, kubelab.deploy_cluster, data={**settings, "artifact_sha256": pins})
    for minion in MINIONS:
        assert converged[minion].restarts == []
        assert any("runc.amd64" in command for command in run.commands[minion])


# Image archives --------------------------------------------------------------------------------


@pytest.fixture
def archives(tmp_path, monkeypatch):
    """A local archive holding the pause image, and one holding nginx on a web server."""
    local = tmp_path / "pause-3.10.1.tar"
    local.write_bytes(image_archive(PAUSE))
    monkeypatch.setitem(fakehosts.WEB, NGINX_URL, image_archive(NGINX))
    return {PAUSE: str(local), NGINX: NGINX_URL}


def imports(commands) -> list[str]:
    return [command for command in commands if command.startswith(IMPORT)]


@pytest.mark.parametrize("factory", [debian12, rocky9])
def test_image_archives_are_imported_on_every_minion_once(factory, tmp_path, archives):
    machines, run, settings = build(factory, tmp_path, {"image_archives": archives})
    for minion in MINIONS:
        machine = machines[minion]
        assert machine.images == {PAUSE, NGINX}
        assert len(imports(run.commands[minion])) == 2
        # the local archive was uploaded, the URL fetched with bounded timeouts
        assert any(path.startswith("/var/lib/kubelab/images/") for path in run.uploads[minion])
        fetch = [c for c in run.commands[minion] if "curl" in c and NGINX_URL in c]
        assert len(fetch) == 1
        bounds = "--connect-timeout 30 --speed-limit 1024 --speed-time 30 --max-time 900"
        assert bounds in fetch[0] and "--retry 3 --retry-max-time 900" in fetch[0]
        assert all(
            "--label io.cri-containerd.pinned=pinned" in c for c in imports(run.commands[minion])
        )
        # nothing left behind
        assert not [path for path in machine.files if path.startswith("/var/lib/kubelab/images/")]
        # after containerd runs, before the kubelet starts
        commands = run.commands[minion]
        first_import = commands.index(imports(commands)[0])
        assert commands.index("systemctl start containerd.service") < first_import
        assert first_import < commands.index("systemctl start kubelet.service")
    assert machines[MASTER].images == set()
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert again.commands == {host: [] for host in HOSTS}
    assert again.uploads == {host: {} for host in HOSTS}


def test_an_image_containerd_holds_is_not_imported(debian, archives):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    for minion in MINIONS:
        converged[minion].images.add(PAUSE)
    run = run_deploy(
        converged, kubelab.deploy_cluster, data={**settings, "image_archives": archives}
    )
    for minion in MINIONS:
        assert len(imports(run.commands[minion])) == 1
        assert NGINX_URL in converged[minion].downloads
        assert not run.uploads[minion]
        assert converged[minion].restarts == []


def test_short_references_match_containerds_names(debian, monkeypatch):
    """'nginx:1.27' is docker.io/library/nginx:1.27 to containerd: imported once, then known."""
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    monkeypatch.setitem(fakehosts.WEB, NGINX_URL, image_archive(NGINX))
    data = {**settings, "image_archives": {"nginx:1.27": NGINX_URL}}
    run = run_deploy(converged, kubelab.deploy_cluster, data=data)
    assert NGINX in converged[MINIONS[0]].images
    assert len(imports(run.commands[MINIONS[0]])) == 1
    again = run_deploy(converged, kubelab.deploy_cluster, data=data)
    assert again.commands == {host: [] for host in HOSTS}


def test_an_archive_without_the_image_fails_the_minion(debian, monkeypatch):
    machines, _, settings = debian
    converged = copy.deepcopy(machines)
    monkeypatch.setitem(fakehosts.WEB, NGINX_URL, image_archive("docker.io/library/nginx:1.26"))
    data = {**settings, "image_archives": {NGINX: NGINX_URL}}
    with pytest.raises(AssertionError, match="hosts failed"):
        run_deploy(converged, kubelab.deploy_cluster, data=data)
