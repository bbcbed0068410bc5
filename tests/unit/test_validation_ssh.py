"""SSH settings stop the run with one line before pyinfra connects: checked only for hosts pyinfra
reaches over ssh, which the simulated hosts are not."""

import fakehosts
import pytest
from conftest import HOSTS, MASTER
from fakehosts import REPO, SimulatedConnector, centos7
from pyinfra.api import State
from pyinfra.api.host import Host
from pyinfra.context import ctx_host, ctx_state
from pyinfra_cli.inventory import make_inventory

from kubelab import SettingError
from kubelab.settings import inventory_checks, validation


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id_test"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    return str(key)


def validate_over_ssh(monkeypatch, data: dict):
    """validate_inventory() on the lab inventory with pyinfra's ssh connector, never connecting:
    facts are answered by simulated CentOS 7 hosts."""
    machines = {name: centos7() for name in HOSTS}
    monkeypatch.setattr(
        Host,
        "get_fact",
        lambda self, cls, *args, **kwargs: fakehosts.answer_fact(machines[self.name], cls, kwargs),
    )
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory(
            str(REPO / "inventory.py"),
            override_data=data,
            cwd=str(REPO),
            group_data_directories=[str(REPO / "group_data")],
        )
        for target in inventory:
            assert inventory_checks.uses_ssh(target)
            assert not target.connected
        with ctx_host.use(inventory.get_host(MASTER)):
            validation.validate_inventory()
    return inventory


SSH_CASES = [
    pytest.param({"ssh_port": 0}, "ssh_port", "0 is out of range 1-65535", id="ssh-port-zero"),
    pytest.param(
        {"ssh_port": 70000}, "ssh_port", "70000 is out of range 1-65535", id="ssh-port-too-large"
    ),
    pytest.param(
        {"ssh_port": "22"},
        "ssh_port",
        "'22' is a string, not a port number",
        id="ssh-port-as-string",
    ),
    pytest.param({"ssh_user": ""}, "ssh_user", "'' is not a user name", id="empty-ssh-user"),
    pytest.param(
        {"ssh_key": "/nonexistent/id_kubelab"},
        "ssh_key",
        "the key file '/nonexistent/id_kubelab' does not exist",
        id="missing-ssh-key",
    ),
    pytest.param({"ssh_key": "/tmp"}, "ssh_key", "'/tmp' is not a file", id="ssh-key-directory"),
    pytest.param(
        {"ssh_hostname": ""},
        "ssh_hostname",
        "'' is not a host name or address",
        id="empty-ssh-hostname",
    ),
    pytest.param(
        {"ssh_hostname": "kube_master.lan"},
        "ssh_hostname",
        "'kube_master.lan' is neither an IP address nor a DNS name: it has a label with a "
        "character other than letters, digits and '-' ('kube_master')",
        id="ssh-hostname-not-a-dns-name",
    ),
]


@pytest.mark.parametrize(("data", "name", "phrase"), SSH_CASES)
def test_bad_ssh_setting_stops_before_connecting(monkeypatch, ssh_key, data, name, phrase):
    with pytest.raises(SettingError) as raised:
        validate_over_ssh(monkeypatch, {"ssh_key": ssh_key, **data})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"kubelab: setting '{name}' on {MASTER}: {phrase}"), message


def test_valid_ssh_settings_pass(monkeypatch, ssh_key):
    inventory = validate_over_ssh(monkeypatch, {"ssh_key": ssh_key, "ssh_port": 2222})
    assert not any(target.connected for target in inventory)


@pytest.mark.parametrize(
    ("data", "name"),
    [({"apiserver_port": 22}, "apiserver_port"), ({"ssh_port": 2379}, "etcd_client_port")],
    ids=["apiserver-on-sshd", "sshd-on-etcd"],
)
def test_a_master_port_on_sshd_stops_before_connecting(monkeypatch, ssh_key, data, name):
    with pytest.raises(SettingError) as raised:
        validate_over_ssh(monkeypatch, {"ssh_key": ssh_key, **data})
    port = data.get("apiserver_port") or data["ssh_port"]
    assert str(raised.value) == (
        f"kubelab: setting '{name}' on {MASTER}: {port} is also the master's SSH port "
        "(ssh_port) (both listen on the master)"
    )


def test_ssh_checks_skip_hosts_of_other_connectors(monkeypatch):
    """The simulated hosts (a fake connector) are not reached over ssh: no ssh check fires."""
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory(
            str(REPO / "inventory.py"),
            override_data={"ssh_port": 0, "ssh_key": "/nonexistent/key"},
            cwd=str(REPO),
        )
    target = inventory.get_host(MASTER)
    target.connector_cls = SimulatedConnector
    assert not inventory_checks.uses_ssh(target)
    inventory_checks.check_ssh(target)  # raises nothing
