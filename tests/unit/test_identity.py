"""A cluster's identity on simulated hosts: each host marked as its cluster's (reset and removal
act only on those), one PKI per cluster, no identity key minted again behind the user's back,
reset_pki deleting only what kubelab wrote, and SSH host keys checked outside the lab."""

import copy
import hashlib
import os
import sys
from pathlib import Path

import pytest
from conftest import HOSTS, MASTER, MINIONS, with_own_pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fakehosts import REPO, FileState, debian12, run_deploy
from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory
from test_day_two import reset, running
from test_modern import build

import kubelab
from kubelab.pki import pki, pki_files

MINION1, MINION2 = MINIONS
SA_KEY = "/etc/kubernetes/pki/service-account.key"
MARK = "/etc/kubelab-cluster"  # cluster_mark.MARK


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The running cluster the lab fixture copies (test_day_two's, under its own name)."""
    machines, _, settings = build(debian12, tmp_path_factory.mktemp("identity"))
    return running(machines), settings


@pytest.fixture
def lab(cluster, tmp_path):
    machines, settings = cluster
    return with_own_pki(machines, settings, tmp_path)


def fingerprint(pki_dir) -> str:
    cert = x509.load_pem_x509_certificate((Path(pki_dir) / "ca.crt").read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex()


def foreign_mark(name="other", ca="ab" * 32) -> FileState:
    return FileState(f"cluster_name={name}\nca_sha256={ca}\n".encode(), 0o600)


# 2. Every host marked; reset and removal only on this cluster's -------------------------------


def test_every_host_is_marked_as_this_clusters_root_only(lab):
    machines, settings = lab
    for name in HOSTS:
        mark = machines[name].files[MARK]
        assert (mark.mode, mark.user, mark.group) == (0o600, "root", "root")
        lines = mark.content.decode().splitlines()
        assert lines[1:] == [
            "cluster_name=kubelab",
            f"ca_sha256={fingerprint(settings['pki_dir'])}",
        ]


def test_a_cluster_from_before_the_mark_gets_it_on_its_rerun_and_nothing_else(lab):
    machines, settings = lab
    for machine in machines.values():
        del machine.files[MARK]
    before = copy.deepcopy(machines)
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    for name in HOSTS:
        assert machines[name].restarts == before[name].restarts, name
        changed = {p for p, f in machines[name].files.items() if before[name].files.get(p) != f}
        assert changed == {MARK}, name
    again = run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert again.commands == {name: [] for name in HOSTS}


@pytest.mark.parametrize("deploy", ["reset", "removal", "cluster"])
def test_a_host_marked_as_another_clusters_stops_the_run_before_any_host_is_touched(lab, deploy):
    machines, settings = lab
    machines[MINION2].files[MARK] = foreign_mark()
    before = copy.deepcopy(machines)
    function, data, action = {
        "reset": (kubelab.deploy_reset, {"reset_cluster": "kubelab"}, "reset"),
        "removal": (kubelab.deploy_remove_node, {"remove_nodes": MINION2}, "removed"),
        "cluster": (kubelab.deploy_cluster, {}, "deployed"),
    }[deploy]
    with pytest.raises(kubelab.SettingError) as raised:
        run_deploy(machines, function, data={**settings, **data})
    ours = fingerprint(settings["pki_dir"])
    assert str(raised.value) == (
        f"kubelab: {MINION2} is marked as cluster 'other' (CA sha256 {'ab' * 32}) ({MARK}), not "
        f"as this cluster 'kubelab' (CA sha256 {ours}): nothing {action}; check the inventory, "
        "cluster_name and pki_dir"
    )
    assert machines == before


@pytest.mark.parametrize("deploy", ["reset", "removal"])
def test_a_host_holding_kubelabs_files_without_a_mark_stops_reset_and_removal(lab, deploy):
    """Hosts another tool built, or a cluster from before the mark (cluster.py marks it)."""
    machines, settings = lab
    del machines[MINION2].files[MARK]
    before = copy.deepcopy(machines)
    function, data = {
        "reset": (kubelab.deploy_reset, {"reset_cluster": "kubelab"}),
        "removal": (kubelab.deploy_remove_node, {"remove_nodes": MINION2}),
    }[deploy]
    with pytest.raises(kubelab.SettingError, match=f"kubelab: {MINION2} holds kubelab's files "):
        run_deploy(machines, function, data={**settings, **data})
    assert machines == before


def test_the_reset_removes_the_mark_last_and_a_reset_host_is_no_refusal(lab):
    machines, settings = lab
    run = reset(machines, settings)
    for name in HOSTS:
        assert run.commands[name][-1] == f"rm -f {MARK}"
        assert MARK not in machines[name].files
    assert reset(machines, settings).commands == {name: [] for name in HOSTS}


def test_a_removed_minion_loses_its_mark_and_a_second_removal_is_no_refusal(lab):
    machines, settings = lab
    data = {**settings, "remove_nodes": MINION2}
    run_deploy(machines, kubelab.deploy_remove_node, data=data)
    assert MARK not in machines[MINION2].files and MARK in machines[MINION1].files
    again = run_deploy(machines, kubelab.deploy_remove_node, data=data)
    assert again.commands == {name: [] for name in HOSTS}


# 3. Two clusters never share a PKI by accident --------------------------------------------


def other_inventory(tmp_path) -> str:
    """A second cluster: its own master and minions."""
    hosts = [
        ("kubemaster2.example.org", "192.168.122.140"),
        ("kubeminion9.example.org", "192.168.122.141"),
    ]
    text = f"masters = [({hosts[0][0]!r}, {{'ssh_hostname': {hosts[0][1]!r}}})]\n"
    text += f"minions = [({hosts[1][0]!r}, {{'ssh_hostname': {hosts[1][1]!r}}})]\n"
    (tmp_path / "other.py").write_text(text)
    return os.path.relpath(tmp_path / "other.py", REPO)


def test_a_new_cluster_does_not_take_the_ca_another_clusters_master_holds(lab, tmp_path):
    machines, settings = lab
    fresh = {"kubemaster2.example.org": debian12(), "kubeminion9.example.org": debian12()}
    before = copy.deepcopy(fresh)
    with pytest.raises(kubelab.SettingError) as raised:
        run_deploy(
            fresh, kubelab.deploy_cluster, inventory=other_inventory(tmp_path), data=settings
        )
    assert str(raised.value) == (
        f"kubelab: setting 'pki_dir' on kubemaster2.example.org: {settings['pki_dir']} holds the "
        f"CA of another cluster (its master: 192.168.122.130, kubemaster, {MASTER}), and this "
        "master holds no CA: give this cluster a PKI of its own (a cluster_name of its own, or "
        "pki_dir); kubelab will not share one CA between two clusters"
    )
    assert fresh == before


def test_a_cluster_name_of_its_own_gives_a_cluster_a_pki_of_its_own(lab, tmp_path):
    """pki_dir's default is ~/.kubelab/{cluster_name}/pki: one PKI per cluster name."""
    machines, settings = lab
    template = str(tmp_path / "{cluster_name}" / "pki")
    fresh = {"kubemaster2.example.org": debian12(), "kubeminion9.example.org": debian12()}
    data = {**settings, "pki_dir": template, "cluster_name": "second"}
    run_deploy(fresh, kubelab.deploy_cluster, inventory=other_inventory(tmp_path), data=data)
    ca = fresh["kubemaster2.example.org"].files["/etc/kubernetes/pki/ca.crt"].content
    assert ca == (tmp_path / "second" / "pki" / "ca.crt").read_bytes()
    assert ca != (Path(settings["pki_dir"]) / "ca.crt").read_bytes()


def test_a_master_holding_another_ca_than_the_pki_stops_the_run(lab, tmp_path):
    """Another cluster's running master, this controller's PKI of the same name."""
    machines, settings = lab
    other = {**settings, "pki_dir": str(tmp_path / "other" / "pki")}
    fresh = {name: debian12() for name in HOSTS}
    run_deploy(fresh, kubelab.deploy_cluster, data=other)  # the other cluster, same hosts' names
    before = copy.deepcopy(fresh)
    with pytest.raises(kubelab.SettingError, match="holds another ca.crt than this master's"):
        run_deploy(fresh, kubelab.deploy_cluster, data=settings)
    assert fresh == before


# 10. No identity key made again behind the user's back -------------------------------------


def test_a_pki_restored_with_only_its_ca_gets_no_new_service_account_key(lab):
    machines, settings = lab
    directory = Path(settings["pki_dir"])
    for name in ("service-account.key", "service-account.pub"):
        (directory / name).unlink()
    before = copy.deepcopy(machines)
    with pytest.raises(kubelab.SettingError) as raised:
        run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert str(raised.value) == (
        f"kubelab: setting 'pki_dir' on {MASTER}: {directory} holds no service-account.key, but "
        f"this master has one ({SA_KEY}): restore the directory from this cluster's backup (or "
        "point pki_dir at this cluster's PKI); a new service-account key would void every "
        "service-account token"
    )
    assert machines == before
    assert not (directory / "service-account.key").exists()


def test_a_pki_holding_another_service_account_key_stops_the_run(lab):
    machines, settings = lab
    master = machines[MASTER]
    master.files[SA_KEY] = FileState(b"another key", 0o600)
    before = copy.deepcopy(machines)
    with pytest.raises(
        kubelab.SettingError, match=f"another service-account.key than this master's {SA_KEY}"
    ):
        run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert machines == before


def test_a_master_without_a_service_account_key_gets_the_pkis(lab):
    machines, settings = lab
    key = machines[MASTER].files.pop(SA_KEY).content
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    assert machines[MASTER].files[SA_KEY].content == key


# 4. reset_pki deletes only what kubelab wrote ----------------------------------------------


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "made-before-the-list"])
def test_reset_pki_keeps_a_file_kubelab_did_not_write_and_names_it(lab, caplog, listed):
    machines, settings = lab
    directory = Path(settings["pki_dir"])
    (directory / "notes.txt").write_text("mine")
    (directory / "other.crt").write_text("not a certificate of this CA")
    if not listed:
        (directory / "kubelab-files").unlink()
    caplog.set_level("WARNING")
    reset(machines, settings, reset_pki="kubelab")
    assert sorted(path.name for path in directory.iterdir()) == ["notes.txt", "other.crt"]
    assert not (directory.parent / "admin.kubeconfig").exists()
    messages = [record.getMessage() for record in caplog.records]
    kept = f"kubelab: kept {directory} and in it what kubelab did not write there: "
    assert f"{kept}notes.txt, other.crt" in messages


def test_delete_files_deletes_what_the_list_names_only(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / ".bashrc").write_text("x")
    cluster = pki.ClusterPKI.open(home, create=True, cluster_name="lab")
    cluster.client_cert("admin", "admin")
    cluster.service_account_keypair()
    assert pki_files.delete_files(home) == [".bashrc"]
    assert sorted(p.name for p in home.iterdir()) == [".bashrc"]
    empty = tmp_path / "pki"
    pki.ClusterPKI.open(empty, create=True).client_cert("admin", "admin")
    assert pki_files.delete_files(empty) == [] and not empty.exists()


# 5. SSH host keys are checked outside the lab ----------------------------------------------


def loaded(inventory: str) -> dict:
    """Each host's data as pyinfra's CLI loads ``inventory`` from the repo (group_data/)."""
    with ctx_state.use(State()):
        hosts = make_inventory(inventory, cwd=str(REPO))
    return {target.name: target.data for target in hosts}


def test_an_inventory_of_ones_own_checks_host_keys(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "masters = [('m1.example.org', {'ssh_hostname': '10.1.0.10'})]\n"
        "minions = ['n1.example.org']\n"
    )
    for data in loaded(str(path)).values():
        assert data.ssh_strict_host_key_checking == "yes"
        assert data.get("ssh_known_hosts_file") is None  # pyinfra: ~/.ssh/known_hosts


def test_the_labs_inventories_do_not_check_host_keys(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "lab"))
    import pipeline

    derived = pipeline.derived_inventory(str(REPO / "inventory.py"), tmp_path / "lab-4.py", 1)
    for inventory in (str(REPO / "inventory.py"), derived):
        hosts = loaded(inventory)
        assert len(hosts) == (3 if inventory.endswith("inventory.py") else 4)
        for data in hosts.values():
            assert (data.ssh_strict_host_key_checking, data.ssh_known_hosts_file) == (
                "no",
                "/dev/null",
            )


def test_the_fingerprint_is_the_sha256_of_the_ca_certificates_der(lab):
    _, settings = lab
    pem = (Path(settings["pki_dir"]) / "ca.crt").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert pki_files.ca_fingerprint(Path(settings["pki_dir"])) == hashlib.sha256(der).hexdigest()
