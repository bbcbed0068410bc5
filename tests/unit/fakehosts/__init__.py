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

from .fact_outputs import (
    etcd_auth_answer,
    etcd_refuses,
    leftover_lines,
    managed_state_output,
    versions_lines,
)
from .facts import RELEASE_FILES, answer_fact
from .harness import REPO, UNIT_PKI_DIR, Run, SimulatedConnector, run_deploy, served_archives
from .machines import (
    CENTOS_REPOS,
    DEBIAN,
    DEBIAN_SOURCES,
    NOW,
    PACKAGE_DIRS,
    PACKAGE_UNITS,
    PACKAGE_USERS,
    UNIT_BINARIES,
    WEB,
    FileState,
    Hosts,
    Machine,
    archive_images,
    centos7,
    debian12,
    image_archive,
    modern,
    rocky9,
    running_version,
    ubuntu24,
    version_of,
)
from .shell import CTR, CURL, Interpreter

__all__ = [
    "CENTOS_REPOS",
    "CTR",
    "CURL",
    "DEBIAN",
    "DEBIAN_SOURCES",
    "NOW",
    "PACKAGE_DIRS",
    "PACKAGE_UNITS",
    "PACKAGE_USERS",
    "RELEASE_FILES",
    "REPO",
    "UNIT_BINARIES",
    "UNIT_PKI_DIR",
    "WEB",
    "FileState",
    "Hosts",
    "Interpreter",
    "Machine",
    "Run",
    "SimulatedConnector",
    "answer_fact",
    "archive_images",
    "centos7",
    "debian12",
    "etcd_auth_answer",
    "etcd_refuses",
    "image_archive",
    "leftover_lines",
    "managed_state_output",
    "modern",
    "rocky9",
    "run_deploy",
    "running_version",
    "served_archives",
    "ubuntu24",
    "version_of",
    "versions_lines",
]
