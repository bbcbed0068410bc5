import json
import re
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakehosts import REPO  # noqa: E402

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
