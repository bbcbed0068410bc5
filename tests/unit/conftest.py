import copy
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakehosts import REPO, SimulatedConnector  # noqa: E402

MASTER = "kubemaster.traininglab.com"
MINIONS = ["kubeminion1.traininglab.com", "kubeminion2.traininglab.com"]
HOSTS = [MASTER, *MINIONS]


def parse_env_file(text: str) -> dict[str, str]:
    """The variables a systemd EnvironmentFile sets; fails on a line that is neither."""
    variables = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r'([A-Z_][A-Z0-9_]*)="([^"]*)"', line)
        assert match, f'not a VAR="value" line: {line!r}'
        variables[match[1]] = match[2]
    return variables


def flag_names(value: str) -> list[str]:
    """Flag names in a variable's value, normalised like pflag (``_`` -> ``-``)."""
    names = []
    for token in shlex.split(value):
        assert token.startswith("-"), f"not a flag: {token!r}"
        names.append(token.lstrip("-").split("=", 1)[0].replace("_", "-"))
    return names


@pytest.fixture(scope="session")
def flags():
    return json.loads((REPO / "tests/data/flags.json").read_text())


@pytest.fixture
def order(monkeypatch):
    """(host, command) of every command, in the order they ran (a download as
    ``(download <path>)``)."""
    log = []
    run = SimulatedConnector.run_shell_command

    def run_shell_command(self, command, *args, **kwargs):
        text = command if isinstance(command, str) else command.get_raw_value()
        log.append((self.host.name, text))
        return run(self, command, *args, **kwargs)

    get = SimulatedConnector.get_file

    def get_file(self, remote_filename, *args, **kwargs):
        log.append((self.host.name, f"(download {remote_filename})"))
        return get(self, remote_filename, *args, **kwargs)

    monkeypatch.setattr(SimulatedConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(SimulatedConnector, "get_file", get_file)
    return log


@pytest.fixture
def io_log(monkeypatch):
    """Every command run and file uploaded through the simulated connector."""
    log = []
    run, put = SimulatedConnector.run_shell_command, SimulatedConnector.put_file

    def run_shell_command(self, command, *args, **kwargs):
        log.append((self.host.name, "command", str(command)))
        return run(self, command, *args, **kwargs)

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        log.append((self.host.name, "upload", remote_filename))
        return put(self, filename_or_io, remote_filename, *args, **kwargs)

    monkeypatch.setattr(SimulatedConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(SimulatedConnector, "put_file", put_file)
    return log


def with_own_pki(machines, settings, tmp_path):
    """A copy of ``machines`` and ``settings`` whose local PKI (and the admin kubeconfig
    beside it) is a copy of its own under ``tmp_path``: tests may change or delete it."""
    original = Path(settings["pki_dir"])
    pki = tmp_path / "kubelab" / "pki"
    shutil.copytree(original, pki)
    shutil.copy2(original.parent / "admin.kubeconfig", pki.parent)
    return copy.deepcopy(machines), {**settings, "pki_dir": str(pki)}
