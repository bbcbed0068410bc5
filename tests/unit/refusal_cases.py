"""What the validation tests share: a bad input (``Case``), the inventory it runs on, and the
check that it stops the run with one line before any host is touched (no command ran and no file
was uploaded on any machine)."""

import copy
import os
import re
from typing import NamedTuple

import fakehosts
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import REPO, centos7, run_deploy

import kubelab
from kubelab import SettingError

MINION1, MINION2 = MINIONS

INVENTORY = "inventory"  # the "where" of a problem of the inventory as a whole


def hosts_line(group: str, *entries: tuple[str, str | None]) -> str:
    """An inventory line: ``group = [(name, {"ssh_hostname": address}), ...]``."""
    items = [(name, {"ssh_hostname": address} if address else {}) for name, address in entries]
    return f"{group} = {items!r}\n"


def minions_with(first: dict, second: dict | None = None) -> str:
    """The lab's two minions, with extra host data."""
    items = [
        (MINION1, {"ssh_hostname": "192.168.122.131", **first}),
        (MINION2, {"ssh_hostname": "192.168.122.132", **(second or {})}),
    ]
    return f"minions = {items!r}\n"


MASTER_LINE = hosts_line("masters", (MASTER, "192.168.122.130"))
MINIONS_LINE = hosts_line("minions", (MINION1, "192.168.122.131"), (MINION2, "192.168.122.132"))


class Case(NamedTuple):
    setting: str
    where: str  # a host name, or INVENTORY
    phrase: str  # what the message must say about the problem (a regex)
    data: dict | None = None  # --data overrides, for every host
    inventory: str | None = None  # an inventory file of its own
    group_data: dict | None = None  # group name -> group_data file text, beside that inventory
    machines: dict | None = None  # host name -> Machine factory (default: CentOS 7 for HOSTS)


def kind_case(setting: str, value, phrase: str, case_id: str):
    """A bad value of ``setting`` on the command line, reported on the master."""
    return pytest.param(Case(setting, MASTER, phrase, data={setting: value}), id=case_id)


def both_groups_inventory() -> str:
    minions = hosts_line("minions", (MASTER, "192.168.122.130"), (MINION1, "192.168.122.131"))
    return MASTER_LINE + minions


def write_inventory(tmp_path, case: Case) -> str:
    """The case's inventory file (the standard groups where it names none), relative to REPO."""
    text = case.inventory
    if text is None:
        text = MASTER_LINE + MINIONS_LINE
    else:
        if not re.search(r"^masters\b", text, re.M) and not re.search(r"^master\b", text, re.M):
            text = MASTER_LINE + text
        if not re.search(r"^minions\b", text, re.M):
            text += MINIONS_LINE
    (tmp_path / "inventory.py").write_text(text)
    if case.group_data:
        (tmp_path / "group_data").mkdir()
        for group, body in case.group_data.items():
            (tmp_path / "group_data" / f"{group}.py").write_text(body)
    return os.path.relpath(tmp_path / "inventory.py", REPO)


def expected_message(case: Case) -> str:
    where = "in the inventory" if case.where == INVENTORY else f"on {re.escape(case.where)}"
    return f"kubelab: setting '{re.escape(case.setting)}' {where}: .*{case.phrase}"


def refuse_case(case: Case, tmp_path, monkeypatch, io_log):
    """A corpus case runs ``deploy_cluster`` over simulated hosts, exactly like a real run, and
    is refused before any host is touched."""


def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    monkeypatch.setitem(
        fakehosts.RELEASE_FILES,
        ("debian", 11),
        'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="11"\n',
    )
    factories = case.machines or dict.fromkeys(HOSTS, centos7)
    machines = {name: factory() for name, factory in factories.items()}
    inventory = write_inventory(tmp_path, case)
    assert_refused(
        machines,
        kubelab.deploy_cluster,
        expected_message(case),
        io_log,
        inventory=inventory,
        data=case.data,
    )


def assert_refused(machines, deploy_func, pattern, io_log, **run):
    """``deploy_func`` stops with one line matching ``pattern`` before any host is touched."""
    before = copy.deepcopy(machines)
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, deploy_func, **run)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    assert re.match(pattern, message), message
    assert io_log == []
    assert machines == before


def refusal(setting: str, where: str, phrase: str) -> str:
    """The pattern of a SettingError for ``setting`` on ``where`` that says ``phrase``."""
    return f"kubelab: setting '{re.escape(setting)}' on {re.escape(where)}: .*{phrase}"
