"""The smoke deploy (the reference's final tests) against a simulated el7 cluster."""

import copy

import kubelab
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import centos7, run_deploy


@pytest.fixture(scope="module")
def cluster():
    machines = {name: centos7() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster)
    return machines


def test_smoke_checks_nodes_token_replicas_and_service(cluster):
    machines = copy.deepcopy(cluster)
    run_deploy(machines, kubelab.deploy_smoke)
    master = machines[MASTER]
    checks = master.waited_for
    assert len(checks) == 3
    nodes, token, replicas = checks
    assert f"for node in {' '.join(MINIONS)}" in nodes
    assert "kubectl -s http://127.0.0.1:8080 get nodes" in nodes
    assert "get serviceaccount default" in token and ".secrets" in token
    assert "get rc nginx" in replicas and replicas.endswith('" = 3')
    assert master.applied == [
        "/etc/kubernetes/smoke/nginx-rc.yaml",
        "/etc/kubernetes/smoke/nginx-service.yaml",
    ]
    rc = master.text("/etc/kubernetes/smoke/nginx-rc.yaml")
    assert "kind: ReplicationController" in rc and "replicas: 3" in rc
    service = master.text("/etc/kubernetes/smoke/nginx-service.yaml")
    assert "clusterIP: 10.254.0.100" in service
    for minion in MINIONS:
        assert machines[minion].waited_for == [
            "curl -sf -o /dev/null --max-time 5 http://10.254.0.100/"
        ]


def test_smoke_waits_are_bounded():
    from kubelab.smoke_test import WAIT_SECONDS, wait_until

    loop = wait_until("false", "never ready")
    assert f"seq {WAIT_SECONDS // 5}" in loop
    assert "never ready" in loop and loop.endswith("exit 1")


def test_smoke_on_the_modern_profile_uses_the_admin_kubeconfig(tmp_path):
    from fakehosts import debian12
    from test_modern import pins

    data = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki")}
    machines = {name: debian12() for name in HOSTS}
    run_deploy(machines, kubelab.deploy_cluster, data=data)
    run_deploy(machines, kubelab.deploy_smoke, data=data)
    nodes, token, replicas = machines[MASTER].waited_for
    admin = "kubectl --kubeconfig /etc/kubernetes/admin.kubeconfig"
    assert nodes.startswith(f"{admin} get nodes")
    assert token == f"{admin} create token default >/dev/null"  # 1.24+: no token secrets
    assert replicas.startswith(f'test "$({admin} get rc nginx')
