"""What a one-master cluster's deploy writes, as digests: the reference a one-master cluster
without ``api_endpoint`` must keep rendering exactly (tests/data/one_master_files.json, made by
running this module at the commit before high availability:
``cd tests/unit && python one_master_files.py > ../data/one_master_files.json``).

Each file of each host: its owner, mode and a digest of its content, keys and certificates left
out (a PKI of its own per run) with what holds them (PER_PKI), the base64 data of kubeconfigs
blanked. etcd's files are left out: the etcd side of high availability changes etcd's peer URL
on purpose.
"""

import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Keys, certificates and what holds them or the CA's fingerprint (the cluster mark, the
# encryption key, metrics-server's APIService CA bundle); etcd's files.
PER_PKI = re.compile(
    r"\.(crt|key|pub)$|etcd|/var/lib/kubelab/|/etc/kubelab-cluster$|encryption-config"
    r"|metrics-server\.yaml$"
)
DATA = re.compile(rb"(-data: )\S+")


def digests(machines) -> dict[str, dict[str, str]]:
    """host -> path -> 'user:group mode sha256' of every file kubelab's run left there."""
    found = {}
    for name, machine in sorted(machines.items()):
        files = {}
        for path, state in sorted(machine.files.items()):
            if PER_PKI.search(path):
                continue
            content = DATA.sub(rb"\1-", state.content) if state.sha256 is None else b""
            digest = state.sha256 or hashlib.sha256(content).hexdigest()
            files[path] = f"{state.user}:{state.group} {state.mode:o} {digest}"
        found[name] = files
    return found


def one_master_cluster(tmp_path: Path):
    """The reference lab (inventory.py) deployed on simulated Debian 12 hosts."""
    from conftest import HOSTS
    from fakehosts import debian12, run_deploy
    from test_modern import pins

    import kubelab

    machines = {name: debian12() for name in HOSTS}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "kubelab" / "pki")}
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    return machines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        print(json.dumps(digests(one_master_cluster(Path(directory))), indent=1, sort_keys=True))
