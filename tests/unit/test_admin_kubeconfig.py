"""The admin kubeconfig written for the user beside the local PKI (modern profile)."""

import copy
import os
import stat
from pathlib import Path

import pytest
from conftest import HOSTS, MASTER
from fakehosts import centos7, debian12, run_deploy
from test_modern import build

import kubelab

MASTER_API = "https://192.168.122.130:6443"


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    return build(debian12, tmp_path_factory.mktemp("debian"))


def user_kubeconfig(settings) -> Path:
    return Path(settings["pki_dir"]).parent / "admin.kubeconfig"


def test_admin_kubeconfig_lands_beside_the_pki_with_the_masters_credentials(debian):
    machines, run, settings = debian
    path = user_kubeconfig(settings)
    assert path.read_bytes() == machines[MASTER].files["/etc/kubernetes/admin.kubeconfig"].content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f'server: "{MASTER_API}"' in text
    assert "client-key-data" in text
    for host in HOSTS:
        for command in run.commands[host]:
            assert str(path) not in command and "client-key-data" not in command


def test_default_place_is_the_clusters_directory(monkeypatch, tmp_path):
    from kubelab.pki.admin_kubeconfig import user_kubeconfig_path
    from kubelab.pki.certificates import pki_directory
    from kubelab.settings.defaults import DEFAULTS

    monkeypatch.setenv("HOME", str(tmp_path))

    class Host:
        data = {}

    monkeypatch.setattr("pyinfra.host", Host)
    expected = tmp_path / ".kubelab" / "kubelab" / "admin.kubeconfig"
    assert DEFAULTS["pki_dir"] == "~/.kubelab/{cluster_name}/pki"
    assert user_kubeconfig_path(pki_directory()) == expected


def test_admin_kubeconfig_is_written_only_when_it_differs(debian):
    machines, _, settings = debian
    path = user_kubeconfig(settings)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    run_deploy(copy.deepcopy(machines), kubelab.deploy_cluster, data=settings)
    assert path.stat().st_mtime == 1_000_000_000
    path.chmod(0o644)
    run_deploy(copy.deepcopy(machines), kubelab.deploy_cluster, data=settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_mtime == 1_000_000_000
    path.write_text("edited by hand\n")
    run_deploy(copy.deepcopy(machines), kubelab.deploy_cluster, data=settings)
    assert path.read_bytes() == machines[MASTER].files["/etc/kubernetes/admin.kubeconfig"].content
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_el7_writes_no_admin_kubeconfig(tmp_path):
    settings = {"pki_dir": str(tmp_path / "pki")}
    run_deploy({name: centos7() for name in HOSTS}, kubelab.deploy_cluster, data=settings)
    assert not user_kubeconfig(settings).exists()
