"""The minions: container runtime, flanneld, kubelet, kube-proxy and the pod network."""

import json
import re

import pytest

from kubelab.settings import topology

RUNTIME = {"el7": "docker", "modern": "containerd"}
BINARIES = {
    "el7": [f"/usr/bin/{name}" for name in ("kubelet", "kube-proxy", "flanneld")],
    "modern": [f"/usr/local/bin/{name}" for name in ("kubelet", "kube-proxy", "flanneld")],
}
KUBELET_PORT = 10250
KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"  # the kubelet's default, 1.5 and 1.35 alike
READY = '{.status.conditions[?(@.type=="Ready")]'
PKI = "/etc/kubernetes/pki"
DOCKER_NETWORK = "/run/flannel/docker"
CNI_CONFIG = "/etc/cni/net.d/10-flannel.conflist"
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "flannel")
CONTAINERD_CONFIG = "/etc/containerd/config.toml"


@pytest.mark.parametrize("service", ["container-runtime", "flanneld", "kubelet", "kube-proxy"])
def test_service_runs(minion, service):
    minion.assert_running(RUNTIME[minion.profile] if service == "container-runtime" else service)


def test_kubelet_listens(minion):
    minion.assert_listening("kubelet", KUBELET_PORT, minion.address)


def test_binaries_are_executable(minion):
    minion.assert_executable(BINARIES[minion.profile])


def test_pod_network_uses_flannel(minion):
    if minion.profile == "el7":
        options = (minion.env_file(DOCKER_NETWORK) or {}).get("DOCKER_NETWORK_OPTIONS", "")
        wanted = f"--bip={minion.flannel_subnet()}"
        assert wanted in options.split(), (
            f"{minion.name}: expected docker's DOCKER_NETWORK_OPTIONS in {DOCKER_NETWORK} "
            f"to hold {wanted}, found {options!r}"
        )
        return
    text = minion.read(CNI_CONFIG)
    assert text is not None, f"{minion.name}: expected {CNI_CONFIG}, found none"
    try:
        types = [plugin.get("type") for plugin in json.loads(text).get("plugins", [])]
    except (ValueError, AttributeError) as error:
        pytest.fail(f"{minion.name}: expected a JSON conflist in {CNI_CONFIG}: {error}")
    assert types[:1] == ["flannel"] and "portmap" in types, (
        f"{minion.name}: expected the plugins flannel, portmap in {CNI_CONFIG}, found {types}"
    )


def test_cni_plugins_are_executable(minion):
    minion.only("modern", "CNI plugins")
    minion.assert_executable([f"/opt/cni/bin/{name}" for name in CNI_PLUGINS])


def test_containerd_uses_systemd_cgroups(minion):
    minion.only("modern", "containerd")
    text = minion.read(CONTAINERD_CONFIG) or ""
    found = re.findall(r"^\s*SystemdCgroup\s*=.*$", text, re.M)
    assert [line.split("=")[1].strip() for line in found] == ["true"], (
        f"{minion.name}: expected 'SystemdCgroup = true' in {CONTAINERD_CONFIG}, "
        f"found {[line.strip() for line in found] or 'no such line'}"
    )


def test_kubelet_credentials(minion):
    minion.only("modern", "TLS credentials")
    minion.assert_verifies(f"{PKI}/kubelet.crt", f"{PKI}/ca.crt")
    secrets = [
        f"{PKI}/kubelet.key",
        "/etc/kubernetes/kubelet.kubeconfig",
        "/etc/kubernetes/kube-proxy.kubeconfig",
    ]
    wanted = {path: (0o600, "root", "root") for path in secrets}
    minion.assert_owned({**wanted, PKI: (0o700, "root", "root")})


def node_status(minion, cluster, field):
    """``kubectl get node`` of the minion's node name, on the master: the STATUS column
    (``field`` None) or a jsonpath ``field``."""
    __tracebackhide__ = True
    name = topology.node_name(minion.inventory_host)
    master = cluster.master
    if field is None:
        result = master.kubectl("get", "node", name, "--no-headers")
    else:
        result = master.kubectl("get", "node", name, "-o", f"jsonpath={field}")
    assert result.rc == 0, (
        f"{minion.name}: expected the Node {name} in kubectl get nodes on {master.name}, found "
        f"{(result.stdout + result.stderr).strip()!r}"
    )
    if field is None:
        return (result.stdout.split() + ["", ""])[1]
    return result.stdout.strip()


def test_node_is_ready(minion, cluster):
    status = node_status(minion, cluster, None)
    if status != "Ready":
        why = node_status(minion, cluster, f"{READY}.reason}}: {READY}.message}}")
        pytest.fail(
            f"{minion.name}: expected its Node Ready in kubectl get nodes, found {status} ({why})",
            pytrace=False,
        )


def test_kubelet_version(minion, cluster):
    minion.only("modern", "kube_version (its kubelet is the package's)")
    wanted = minion.setting("kube_version")
    found = node_status(minion, cluster, "{.status.nodeInfo.kubeletVersion}")
    assert found == wanted, (
        f"{minion.name}: expected status.nodeInfo.kubeletVersion {wanted} (kube_version), "
        f"found {found!r}"
    )


def test_kubelet_is_healthy(minion):
    minion.assert_healthy("the kubelet's", KUBELET_HEALTHZ)
