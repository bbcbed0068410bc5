"""The lab's package repository holds every package kubelab installs on Debian 12.

The lab's machines reach no package archive: a package missing from tests/lab/base_image.py's
DEPLOY_PACKAGES would fail the lab's deploy with "no installation candidate".
"""

import sys
from pathlib import Path

from conftest import HOSTS
from fakehosts import debian12, run_deploy
from test_modern import pins

import kubelab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
import base_image  # noqa: E402


def test_every_debian_package_of_the_deploy_is_in_the_lab_repository(tmp_path):
    machines = {name: debian12() for name in HOSTS}
    data = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    installed = set().union(*(machine.packages for machine in machines.values()))
    assert installed, "the simulated deploy installed no package"
    missing = installed - set(base_image.DEPLOY_PACKAGES) - set(base_image.BASE_PACKAGES)
    assert not missing, f"add to DEPLOY_PACKAGES in tests/lab/base_image.py: {sorted(missing)}"
