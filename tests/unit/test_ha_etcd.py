"""etcd with several masters: one member each, started together on a first deploy, joining a
running cluster one at a time, the peer URL of a member deployed before, every client on every
member, and the inventories refused."""

import copy
import os
import re
import shlex
import subprocess

import pytest
from conftest import MINIONS, parse_env_file, with_own_pki
from cryptography import x509
from fakehosts import REPO, centos7, debian12, run_deploy
from refusal_cases import assert_refused
from test_modern import pins, unit_flags

import kubelab
from kubelab import SettingError
from kubelab.components.etcd_members import LAG_AWK, MAX_LAG, outdated_member
from kubelab.workflows.refusals import Refused

MASTERS = ["m1.example.org", "m2.example.org", "m3.example.org"]
ADDRESSES = {
    "m1.example.org": "10.1.0.11",
    "m2.example.org": "10.1.0.12",
    "m3.example.org": "10.1.0.13",
    "m4.example.org": "10.1.0.14",
    MINIONS[0]: "10.1.0.21",
    MINIONS[1]: "10.1.0.22",
}
M1, M2, M3 = MASTERS
CONFIG = "/etc/default/etcd"
CLIENT_URLS = "https://10.1.0.11:2379,https://10.1.0.12:2379,https://10.1.0.13:2379"
ALL_PEERS = "m1=https://10.1.0.11:2380,m2=https://10.1.0.12:2380,m3=https://10.1.0.13:2380"


def write_inventory(tmp_path, masters, name="inventory.py") -> str:
    def group(names):
        return [(host, {"ssh_hostname": ADDRESSES[host]}) for host in names]

    text = f"masters = {group(masters)!r}\nminions = {group(MINIONS)!r}\n"
    (tmp_path / name).write_text(text)
    return os.path.relpath(tmp_path / name, REPO)


def deploy(machines, inventory, settings, **run):
    return run_deploy(machines, kubelab.deploy_cluster, inventory=inventory, data=settings, **run)


def fresh(names, factory=debian12):
    return {name: factory() for name in names}


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A first deploy of three masters and two minions."""
    tmp_path = tmp_path_factory.mktemp("three")
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    inventory = write_inventory(tmp_path, MASTERS)
    machines = fresh([*MASTERS, *MINIONS])
    run = deploy(machines, inventory, settings)
    return machines, run, settings, inventory


def env(machine) -> dict:
    return parse_env_file(machine.text(CONFIG))


# A first deploy --------------------------------------------------------------------------


def test_a_first_deploy_lists_every_master_new_on_each(three):
    machines, _, _, _ = three
    for name in MASTERS:
        short, address = name.split(".")[0], ADDRESSES[name]
        config = env(machines[name])
        assert config["ETCD_NAME"] == short
        assert config["ETCD_INITIAL_CLUSTER"] == ALL_PEERS
        assert config["ETCD_INITIAL_CLUSTER_STATE"] == "new"
        assert config["ETCD_LISTEN_PEER_URLS"] == f"https://{address}:2380"
        assert config["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == f"https://{address}:2380"
        assert config["ETCD_ADVERTISE_CLIENT_URLS"] == f"https://{address}:2379"
        assert config["ETCD_PEER_CERT_FILE"] == config["ETCD_CERT_FILE"]
        assert config["ETCD_PEER_KEY_FILE"] == config["ETCD_KEY_FILE"]
        assert config["ETCD_PEER_TRUSTED_CA_FILE"] == config["ETCD_TRUSTED_CA_FILE"]
        assert config["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"


def test_every_master_starts_etcd_in_the_same_operation_and_none_joins(three):
    machines, run, _, _ = three
    for name in MASTERS:
        assert machines[name].units["etcd.service"] == {"active": True, "enabled": True}
        assert machines[name].etcd_member_adds == []
        assert not any("member add" in command for command in run.commands[name])
    starts = {
        name: [i for i, c in enumerate(run.commands[name]) if "systemctl start etcd" in c]
        for name in MASTERS
    }
    assert all(len(found) == 1 for found in starts.values()), starts


def test_each_member_serves_its_own_certificate(three):
    _, _, settings, _ = three
    pki = settings["pki_dir"]
    names = {M1: "etcd-server", M2: "etcd-server-m2", M3: "etcd-server-m3"}
    for host, name in names.items():
        path = f"{pki}/etcd/{name}.crt"
        if not os.path.exists(path):
            path = next(
                os.path.join(root, f"{name}.crt")
                for root, _, found in os.walk(pki)
                if f"{name}.crt" in found
            )
        with open(path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert host in sans.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        assert ADDRESSES[host] in ips and "127.0.0.1" in ips


def test_every_client_uses_every_member(three):
    machines, _, _, _ = three
    for name in [*MASTERS, *MINIONS]:
        flanneld = machines[name].text("/etc/systemd/system/flanneld.service")
        assert f"-etcd-endpoints={CLIENT_URLS} " in flanneld
    for name in MASTERS:
        apiserver = machines[name].text("/etc/systemd/system/kube-apiserver.service")
        assert f"--etcd-servers={CLIENT_URLS} " in apiserver
        assert "etcd-servers" in unit_flags(apiserver)


def test_cluster_level_etcd_work_runs_on_the_first_master_only(three):
    _, run, _, _ = three
    auth = [n for n in MASTERS if any("e auth enable" in c for c in run.commands[n])]
    flannel = [n for n in MASTERS if any("/config" in c and " put " in c for c in run.commands[n])]
    assert auth == [M1]
    assert flannel == [M1]
    setup = next(c for c in run.commands[M1] if "e auth enable" in c)
    assert f"--endpoints={CLIENT_URLS} " in setup


def test_a_rerun_of_three_masters_leaves_etcd_alone(three):
    machines, _, settings, inventory = three
    machines = copy.deepcopy(machines)
    for machine in machines.values():
        machine.restarts.clear()
    run = deploy(machines, inventory, settings)
    for name in MASTERS:
        assert CONFIG not in run.uploads[name]
        assert "etcd.service" not in machines[name].restarts
        assert not any("member" in command for command in run.commands[name])


# Growing a running cluster ---------------------------------------------------------------

OLD_ONE_MEMBER = (
    'ETCD_NAME="m1"\nETCD_DATA_DIR="/var/lib/etcd/default"\n'
    'ETCD_LISTEN_PEER_URLS="http://localhost:2380"\n'
)


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """One master deployed (its etcd file as before several masters: a localhost peer URL),
    then the inventory with three masters."""
    tmp_path = tmp_path_factory.mktemp("grown")
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    machines = fresh([M1, *MINIONS])
    deploy(machines, write_inventory(tmp_path, [M1], "one.py"), settings)
    before = copy.deepcopy(machines)
    machines[M1].files[CONFIG].content = OLD_ONE_MEMBER.encode()
    machines[M1].etcd_members = {"m1": "http://localhost:2380"}
    machines.update(fresh([M2, M3]))
    inventory = write_inventory(tmp_path, MASTERS)
    pre = copy.deepcopy(machines)
    run = deploy(machines, inventory, settings)
    return before, machines, run, settings, inventory, pre


def test_one_master_renders_its_address_as_peer_url(grown):
    before, *_ = grown
    config = env(before[M1])
    assert config["ETCD_INITIAL_CLUSTER"] == "m1=https://10.1.0.11:2380"
    assert config["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert config["ETCD_LISTEN_PEER_URLS"] == "https://10.1.0.11:2380"
    assert config["ETCD_ADVERTISE_CLIENT_URLS"] == "https://10.1.0.11:2379"


def test_the_first_member_gets_its_peer_url_before_etcd_restarts(grown):
    _, machines, run, *_ = grown
    assert machines[M1].etcd_peer_updates == [("m1", "https://10.1.0.11:2380")]
    commands = run.commands[M1]
    update = next(i for i, c in enumerate(commands) if "member update" in c)
    restart = next(i for i, c in enumerate(commands) if "systemctl restart etcd" in c)
    assert update < restart
    assert env(machines[M1])["ETCD_INITIAL_CLUSTER"] == ALL_PEERS


def test_the_new_masters_join_one_at_a_time(grown):
    _, machines, run, *_ = grown
    assert machines[M2].etcd_member_adds == [
        ("m2", "https://10.1.0.12:2380", "https://10.1.0.11:2379")
    ]
    assert machines[M3].etcd_member_adds == [
        ("m3", "https://10.1.0.13:2380", "https://10.1.0.11:2379,https://10.1.0.12:2379")
    ]
    m2, m3 = env(machines[M2]), env(machines[M3])
    assert m2["ETCD_INITIAL_CLUSTER"] == "m1=https://10.1.0.11:2380,m2=https://10.1.0.12:2380"
    assert m2["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    assert m3["ETCD_INITIAL_CLUSTER"] == ALL_PEERS
    assert m3["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    for name in (M2, M3):
        assert machines[name].units["etcd.service"] == {"active": True, "enabled": True}
        assert f"etcd member at https://{ADDRESSES[name]}:2379 caught up" in (
            machines[name].waited_for
        )
        assert not any("systemctl restart etcd" in c for c in run.commands[name])


def test_the_turns_are_in_order(grown, order):
    """The first member restarts on its new peer URL, then m2's turn (add, start, wait) ends
    before m3's begins: pyinfra runs each operation on every host before the next."""
    _, _, _, settings, inventory, pre = grown
    deploy(copy.deepcopy(pre), inventory, settings)
    steps = [
        (host, kind)
        for host, command in order
        for kind in ("systemctl restart etcd", "member add", "systemctl start etcd", "health")
        if kind in command and host in MASTERS
    ]
    assert steps == [
        (M1, "systemctl restart etcd"),
        (M2, "member add"),
        (M2, "systemctl start etcd"),
        (M2, "health"),
        (M3, "member add"),
        (M3, "systemctl start etcd"),
        (M3, "health"),
    ]


def test_a_rerun_after_growth_leaves_etcd_alone(grown):
    _, machines, _, settings, inventory, _ = grown
    machines = copy.deepcopy(machines)
    for machine in machines.values():
        machine.restarts.clear()
    run = deploy(machines, inventory, settings)
    for name in MASTERS:
        assert CONFIG not in run.uploads[name], name
        assert "etcd.service" not in machines[name].restarts
        assert not any("member" in command for command in run.commands[name])


def test_a_resumed_join_adds_no_member_twice(grown, tmp_path):
    """A run that stopped after m3's member add: m3 is listed already, it only starts."""
    _, machines, _, settings, inventory, _ = grown
    machines = copy.deepcopy(machines)
    machines[M3] = debian12()
    for name in (M1, M2):
        machines[name].etcd_members["m3"] = "https://10.1.0.13:2380"
    deploy(machines, inventory, settings)
    assert machines[M3].etcd_member_adds == []
    assert machines[M3].units["etcd.service"]["active"]


# Refusals --------------------------------------------------------------------------------


def refused(tmp_path, io_log, masters, pattern, factory=debian12, unreachable=()):
    machines = fresh([*masters, *MINIONS], factory)
    for name in unreachable:
        machines[name].unreachable = True
    inventory = write_inventory(tmp_path, masters)
    assert_refused(
        machines,
        kubelab.deploy_cluster,
        pattern,
        io_log,
        inventory=inventory,
        data={"pki_dir": str(tmp_path / "pki")},
    )


@pytest.mark.parametrize("count", [2, 4])
def test_an_even_count_of_masters_is_refused(count, tmp_path, io_log):
    masters = [*MASTERS, "m4.example.org"][:count]
    refused(
        tmp_path,
        io_log,
        masters,
        r"kubelab: setting 'masters' in the inventory: the group must hold 1, 3, 5 or 7 hosts "
        rf".*an even count.*it holds {count}: m1\.example\.org",
    )


def test_el7_with_several_masters_is_refused(tmp_path, io_log):
    refused(
        tmp_path,
        io_log,
        MASTERS,
        r"kubelab: setting 'masters' on m2\.example\.org: the el7 profile has one master",
        factory=centos7,
    )


def test_an_unreachable_master_stops_the_run(tmp_path, io_log):
    refused(
        tmp_path,
        io_log,
        MASTERS,
        r"kubelab: setting 'masters' on m3\.example\.org: the master is unreachable",
        unreachable=[M3],
    )


def test_growth_with_a_new_first_master_is_refused(grown, tmp_path, io_log):
    _, machines, _, settings, *_ = grown
    machines = copy.deepcopy(machines)
    machines.pop(M3)
    machines["m4.example.org"] = debian12()
    inventory = write_inventory(tmp_path, ["m4.example.org", M1, M2])
    assert_refused(
        machines,
        kubelab.deploy_cluster,
        r"kubelab: setting 'masters' on m4\.example\.org: the first master holds no etcd data "
        r"while m1\.example\.org does",
        io_log,
        inventory=inventory,
        data=settings,
    )


def test_one_master_reads_no_more_than_before(tmp_path):
    """A one-master run asks nothing of etcd's data (the re-run cost stays)."""
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    machines = fresh([M1, *MINIONS])
    run = deploy(machines, write_inventory(tmp_path, [M1]), settings)
    assert not any("Directory" in fact for fact in run.facts[M1] if "member" in fact)
    assert re.search("m1=https://10.1.0.11:2380", machines[M1].text(CONFIG))


# The other workflows with three masters ---------------------------------------------------


def test_an_upgrade_of_three_masters_is_refused(three, io_log):
    machines, _, settings, inventory = three
    machines = copy.deepcopy(machines)
    with pytest.raises(Refused) as raised:
        run_deploy(machines, kubelab.deploy_upgrade, inventory=inventory, data=settings)
    assert str(raised.value).startswith(
        "kubelab: deploy_upgrade upgrades a cluster of one master; this one has 3 "
        f"({M1}, {M2}, {M3})"
    )
    assert io_log == []


def test_removing_a_minion_drains_from_the_first_master_only(three, tmp_path):
    machines, _, settings, inventory = three
    machines, settings = with_own_pki(machines, settings, tmp_path)
    machines[M1].kube_nodes = set(MINIONS)
    run = run_deploy(
        machines,
        kubelab.deploy_remove_node,
        inventory=inventory,
        data={**settings, "remove_nodes": MINIONS[1]},
    )
    assert any(f"drain {MINIONS[1]}" in c for c in run.commands[M1])
    for name in (M2, M3):
        assert not any("kubectl" in c for c in run.commands[name]), name


# The shell a joining member's wait runs ---------------------------------------------------


def status_block(member: int, leader: int, index: int, endpoint: str) -> str:
    """One endpoint's block of ``etcdctl endpoint status -w fields`` (etcd 3.6)."""
    return (
        f'"ClusterID" : 7\n"MemberID" : {member}\n"Revision" : 9\n"RaftTerm" : 2\n'
        f'"Version" : "3.6.14"\n"DBSize" : 20480\n"Leader" : {leader}\n"IsLearner" : false\n'
        f'"RaftIndex" : {index}\n"RaftTerm" : 2\n"RaftAppliedIndex" : {index}\n"Errors" : []\n'
        f'"Endpoint" : "{endpoint}"\n\n'
    )


@pytest.mark.parametrize(
    ("mine", "ok", "says"),
    [(450, True, ""), (400, True, ""), (399, False, "raft index 101 behind the leader")],
)
def test_the_lag_check_compares_the_member_with_the_leader(mine, ok, says):
    output = status_block(11, 11, 500, "https://10.1.0.11:2379") + status_block(
        12, 11, mine, "https://10.1.0.12:2379"
    )
    program = f"awk -v me=https://10.1.0.12:2379 -v max={MAX_LAG} {shlex.quote(LAG_AWK)}"
    done = subprocess.run(["sh", "-c", program], input=output, capture_output=True, text=True)
    assert (done.returncode == 0) is ok, done.stderr
    assert done.stdout.strip() == says


def test_the_lag_check_fails_without_the_leader_s_block():
    output = status_block(12, 11, 500, "https://10.1.0.12:2379")
    program = f"awk -v me=https://10.1.0.12:2379 -v max={MAX_LAG} {shlex.quote(LAG_AWK)}"
    done = subprocess.run(["sh", "-c", program], input=output, capture_output=True, text=True)
    assert done.returncode == 1
    assert "no raft index" in done.stdout


def test_the_peer_url_update_picks_this_member_when_its_url_differs():
    listing = (
        "8e9e05c52164694d, started, m1, http://localhost:2380, https://10.1.0.11:2379, false\n"
        "91bc3c398fb3c146, started, m2, https://10.1.0.12:2380, https://10.1.0.12:2379, false\n"
    )
    for name, url, wanted in (
        ("m1", "https://10.1.0.11:2380", "8e9e05c52164694d"),
        ("m2", "https://10.1.0.12:2380", ""),
    ):
        program = outdated_member(name, url)
        done = subprocess.run(["sh", "-c", program], input=listing, capture_output=True, text=True)
        assert done.stdout.strip() == wanted


def test_a_rerun_of_three_masters_costs_what_one_master_s_does(three):
    """Whether each master holds data is read with its first facts: no command more."""
    machines, _, settings, inventory = three
    run = deploy(copy.deepcopy(machines), inventory, settings)
    assert {name: run.remote_commands(name) for name in MASTERS} == dict.fromkeys(MASTERS, 2)


def test_without_secure_the_peers_speak_http_without_tls(tmp_path):
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki"), "secure": False}
    machines = fresh([*MASTERS, *MINIONS])
    deploy(machines, write_inventory(tmp_path, MASTERS), settings)
    config = env(machines[M2])
    assert config["ETCD_LISTEN_PEER_URLS"] == "http://10.1.0.12:2380"
    assert config["ETCD_INITIAL_CLUSTER"] == ALL_PEERS.replace("https", "http")
    assert not any(name.startswith("ETCD_PEER_") for name in config)


def test_a_failed_turn_stops_the_turns_after_it(grown):
    """m2's etcd never starts: m2 fails its turn, and m3 is not added (a second member down
    would leave a cluster of three without its majority)."""
    *_, settings, inventory, pre = grown
    machines = copy.deepcopy(pre)
    machines[M2].stalled.add("etcd.service")
    run = deploy(machines, inventory, settings, expect_failures=True)
    assert M2 in run.failed
    assert [add[0] for add in machines[M2].etcd_member_adds] == ["m2"]
    assert machines[M3].etcd_member_adds == []
    assert not any("member add" in command for command in run.commands[M3])


def test_growth_under_no_wait_touches_nothing(grown):
    """A script's run_ops(no_wait=True): each host would run its turns on its own."""
    *_, settings, inventory, pre = grown
    machines = copy.deepcopy(pre)
    run = deploy(machines, inventory, settings, expect_failures=True, no_wait=True)
    assert run.commands == {name: [] for name in [*MASTERS, *MINIONS]}
    assert machines == pre


def test_removing_a_master_other_than_the_first_is_refused(three, io_log):
    machines, _, settings, inventory = three
    with pytest.raises(SettingError) as raised:
        run_deploy(
            copy.deepcopy(machines),
            kubelab.deploy_remove_node,
            inventory=inventory,
            data={**settings, "remove_nodes": "m2"},
        )
    assert str(raised.value) == (
        f"kubelab: setting 'remove_nodes' on {M1}: 'm2' is a master: removing a master (an "
        "etcd member) is not supported, only minions can be removed"
    )
    assert io_log == []


def test_a_first_start_never_keeps_a_join_s_file(three):
    """No member holds data (say, after its data was deleted): a file a join left is written
    over with every master, ``new``, since etcd reads it at this start."""
    machines, _, settings, inventory = three
    machines = copy.deepcopy(machines)
    joined = machines[M2].text(CONFIG).replace('STATE="new"', 'STATE="existing"')
    for name in MASTERS:
        machines[name].dirs.discard("/var/lib/etcd/default/member")
        machines[name].units["etcd.service"]["active"] = False
    machines[M2].files[CONFIG].content = joined.encode()
    run = deploy(machines, inventory, settings)
    assert CONFIG in run.uploads[M2]
    assert env(machines[M2])["ETCD_INITIAL_CLUSTER_STATE"] == "new"
