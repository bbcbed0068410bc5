"""Run kubelab's deploys against simulated hosts, with pyinfra's @fake connector.

A ``Machine`` is the state of one host: its OS, files, packages, systemd units and (on the
master) etcd's keys. pyinfra's facts are answered from it, and every command an operation
emits is applied to it by a small interpreter that knows exactly the commands kubelab emits;
any other command fails the test. So a first run shows what a fresh host receives, and a second
run over the resulting Machines shows whether a converged cluster is left alone.

``machines``: the Machine, the fresh hosts, ``Hosts`` (the Machines of the run under way);
``facts``: the facts' answers; ``shell``: the interpreter, with the handlers of
``host_commands`` and ``cluster_commands``; ``harness``: the connector and ``run_deploy``.
"""

from .facts import RELEASE_FILES, answer_fact
from .harness import REPO, UNIT_PKI_DIR, Run, SimulatedConnector, run_deploy, served_archives
from .machines import (
    NOW,
    WEB,
    FileState,
    Hosts,
    Machine,
    centos7,
    debian12,
    image_archive,
    modern,
    rocky9,
    running_version,
    ubuntu24,
    version_of,
)
from .shell import Interpreter

__all__ = [
    "NOW",
    "RELEASE_FILES",
    "REPO",
    "UNIT_PKI_DIR",
    "WEB",
    "FileState",
    "Hosts",
    "Interpreter",
    "Machine",
    "Run",
    "SimulatedConnector",
    "answer_fact",
    "centos7",
    "debian12",
    "image_archive",
    "modern",
    "rocky9",
    "run_deploy",
    "running_version",
    "served_archives",
    "ubuntu24",
    "version_of",
]
