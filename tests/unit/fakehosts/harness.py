"""Runs a deploy over simulated hosts: pyinfra's @fake connector sends each command to the
host's interpreter and each upload to its Machine, and every fact is answered from it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import ConnectError, PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.operations import run_ops
from pyinfra.connectors.fake import FakeConnector
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory

from kubelab.engine.facts import Several
from kubelab.engine.images import normalized

from .facts import answer_fact
from .machines import FileState, Hosts, Machine, image_archive
from .shell import Interpreter

REPO = Path(__file__).resolve().parents[3]
# The local PKI of runs that name no pki_dir: one per test session, never the user's own.
UNIT_PKI_DIR = str(Path(tempfile.mkdtemp(prefix="kubelab-unit-")) / "pki")


class SimulatedConnector(FakeConnector):
    """pyinfra's @fake connector over the Machines of ``Hosts``: commands go to the host's
    interpreter, files to and from its Machine."""

    def _sleep(self):
        pass

    def connect(self):
        if Hosts.machines[self.host.name].unreachable:
            raise ConnectError("Could not connect (timed out)")
        return super().connect()

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        text = command if isinstance(command, str) else command.get_raw_value()
        self.executed_commands.append(text)
        self.host.kubelab_commands.append(text)
        succeeded = Interpreter(Hosts.machines[self.host.name]).run(text) is not False
        return succeeded, CommandOutput([])

    def get_file(self, remote_filename, filename_or_io, remote_temp_filename=None, **kwargs):
        """files.get: the machine's file, written on this machine."""
        machine = Hosts.machines[self.host.name]
        if remote_filename not in machine.files:
            return False
        data = machine.files[remote_filename].content
        if hasattr(filename_or_io, "write"):
            filename_or_io.write(data)
        else:
            Path(filename_or_io).write_bytes(data)
        self.host.kubelab_commands.append(f"(download {remote_filename})")
        return True

    def put_file(self, filename_or_io, remote_filename, remote_temp_filename=None, **kwargs):
        if hasattr(filename_or_io, "read"):
            filename_or_io.seek(0)
            data = filename_or_io.read()
        else:
            data = Path(filename_or_io).read_bytes()
        data = data.encode() if isinstance(data, str) else data
        machine = Hosts.machines[self.host.name]
        existing = machine.files.get(remote_filename)
        if existing:
            existing.content = data
        else:
            machine.files[remote_filename] = FileState(data)
        if remote_filename.startswith("/etc/systemd/system/"):  # a unit of our own
            unit = remote_filename.rsplit("/", 1)[1]
            machine.units.setdefault(unit, {"active": False, "enabled": False})
        self.host.kubelab_uploads[remote_filename] = data
        return True


def served_archives(inventory) -> dict[str, bytes]:
    """The web server of every http(s) archive the hosts' ``image_archives`` name (the lab's
    group_data, say): each holds the image it is named for."""
    served = {}
    for target in inventory:
        archives = target.data.get("image_archives") or {}
        if not isinstance(archives, dict):
            continue
        for reference, archive in archives.items():
            if isinstance(archive, str) and archive.startswith(("http://", "https://")):
                served[archive] = image_archive(normalized(reference))
    return served


@dataclass
class Run:
    """What one deploy did: commands and uploads per host name."""

    commands: dict[str, list[str]]
    uploads: dict[str, dict[str, bytes]]
    failed: list[str] = field(default_factory=list)  # hosts that failed (expect_failures)
    facts: dict[str, list[str]] = field(default_factory=dict)  # fact classes read, in order
    operations: dict[str, int] = field(default_factory=dict)  # operations added per host

    def remote_commands(self, name: str) -> int:
        """Every command the host ran: each fact read and each operation's command."""
        return len(self.facts[name]) + len(self.commands[name])

    def changed_hosts(self) -> list[str]:
        return [name for name, cmds in self.commands.items() if cmds]


def run_deploy(
    machines: dict[str, Machine],
    deploy_func,
    inventory="inventory.py",
    data=None,
    expect_failures=False,
    check_for_changes=False,
    serial=False,
    no_wait=False,
):
    """Run ``deploy_func`` on every host of ``inventory`` (with group_data/) over ``machines``;
    a host that fails fails the test, unless ``expect_failures`` (then ``Run.failed``).
    As ``pyinfra -y`` does, unless ``check_for_changes`` (pyinfra without ``-y``: every
    operation is asked for its changes while the run is prepared, then executed); ``serial``,
    ``no_wait``: as pyinfra's ``--serial`` and ``--no-wait``."""
    state = State(check_for_changes=check_for_changes)
    with ctx_state.use(state):
        inv = make_inventory(
            str(REPO / inventory),
            override_data={"pki_dir": UNIT_PKI_DIR, **(data or {})},
            cwd=str(REPO),
            group_data_directories=[str(REPO / "group_data")],
        )
    Hosts.machines = machines
    Hosts.served = served_archives(inv)
    for target in inv:
        target.connector_cls = SimulatedConnector
    state.init(inv, Config())
    connect_all(state)
    original_get_fact = Host.get_fact

    def get_fact(self, cls, *args, **kwargs):
        name = cls.__name__  # one remote command each: pyinfra caches none
        if cls is Several:
            name += f"[{','.join(part.__name__ for part, _ in kwargs['facts'])}]"
        self.kubelab_facts.append(name)
        if machines[self.name].unreachable:  # pyinfra connects for the fact, and fails
            raise ConnectError(f"Could not connect to {self.name} (timed out)")
        return answer_fact(machines[self.name], cls, kwargs)

    Host.get_fact = get_fact
    try:
        for target in inv:
            target.kubelab_commands, target.kubelab_uploads, target.kubelab_facts = [], {}, []
        add_deploy(state, deploy_func)
        try:
            run_ops(state, serial=serial, no_wait=no_wait)
        except PyinfraError as error:  # every host failed
            if not expect_failures or "No hosts remaining" not in str(error):
                raise
    finally:
        Host.get_fact = original_get_fact
    failed = sorted(target.name for target in state.failed_hosts or ())
    assert expect_failures or not failed, f"hosts failed: {failed}"
    return Run(
        commands={t.name: t.kubelab_commands for t in inv},
        uploads={t.name: t.kubelab_uploads for t in inv},
        failed=failed,
        facts={t.name: t.kubelab_facts for t in inv},
        operations={t.name: len(t.op_hash_order) for t in inv},
    )
