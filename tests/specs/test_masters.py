"""The master: etcd, flannel's network config, the kube control plane and its secrets."""

import json
import re

import pytest

from kubelab.pki.etcd_tls import etcd_server_files

ETCD_CONFIG = {"el7": "/etc/etcd/etcd.conf", "modern": "/etc/default/etcd"}
SERVICES = ("etcd", "flanneld", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# Health endpoints: kube 1.5's plain HTTP ports, the HTTPS ones of current releases (their
# serving certificates are self-signed: curl -k).
HEALTHZ = {
    "el7": {
        "kube-controller-manager": "http://127.0.0.1:10252/healthz",
        "kube-scheduler": "http://127.0.0.1:10251/healthz",
    },
    "modern": {
        "kube-controller-manager": "https://127.0.0.1:10257/healthz",
        "kube-scheduler": "https://127.0.0.1:10259/healthz",
    },
}
MASTER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "flanneld")
BINARIES = {
    "el7": [f"/usr/bin/{name}" for name in MASTER_BINARIES],
    "modern": [f"/usr/local/bin/{name}" for name in (*MASTER_BINARIES, "kube-proxy", "kubectl")],
}
PKI = "/etc/kubernetes/pki"
MODERN_SECRETS = [
    f"{PKI}/ca.key",
    f"{PKI}/apiserver.key",
    f"{PKI}/apiserver-kubelet-client.key",
    f"{PKI}/service-account.key",
    "/etc/kubernetes/controller-manager.kubeconfig",
    "/etc/kubernetes/scheduler.kubeconfig",
    "/etc/kubernetes/admin.kubeconfig",
]


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs(master, service):
    master.assert_running(service)


def test_etcd_serves_clients_on_all_addresses(master):
    master.assert_listening("etcd (clients)", master.setting("etcd_client_port"), "all")


def test_etcd_peer_port(master):
    """el7: the one member's peer port on loopback only; modern: on the master's address, for
    the other members (over TLS with ``secure``)."""
    on = "loopback" if master.profile == "el7" else master.address
    master.assert_listening("etcd (peers)", master.setting("etcd_peer_port"), on)


def test_etcd_advertises_the_master_address(master, cluster):
    path = ETCD_CONFIG[master.profile]
    config = master.env_file(path)
    assert config is not None, f"{master.name}: expected {path}, found none"
    wanted = cluster.member_url(master)
    found = config.get("ETCD_ADVERTISE_CLIENT_URLS")
    assert found == wanted and "0.0.0.0" not in found, (
        f"{master.name}: expected ETCD_ADVERTISE_CLIENT_URLS={wanted} in {path}, found {found}"
    )


FLANNEL_CLIENT = {
    "ca": "/etc/flannel/pki/ca.crt",
    "cert": "/etc/flannel/pki/flanneld-etcd-client.crt",
    "key": "/etc/flannel/pki/flanneld-etcd-client.key",
}


def test_flannel_network_config_in_etcd(master, cluster):
    key = master.setting("flannel_etcd_prefix").rstrip("/") + "/config"
    tls = FLANNEL_CLIENT if cluster.secure else None
    if master.profile == "el7":
        argv = ["env", "ETCDCTL_API=2", "etcdctl", f"--endpoints={cluster.etcd_url}"]
        if tls:
            argv += [
                f"--ca-file={tls['ca']}",
                f"--cert-file={tls['cert']}",
                f"--key-file={tls['key']}",
            ]
        argv += ["get", key]
    else:
        argv = ["env", "ETCDCTL_API=3", "etcdctl", f"--endpoints={cluster.etcd_url}"]
        if tls:
            argv += [f"--cacert={tls['ca']}", f"--cert={tls['cert']}", f"--key={tls['key']}"]
        argv += ["get", key, "--print-value-only"]
    result = master.run(*argv)
    assert result.rc == 0 and result.stdout.strip(), (
        f"{master.name}: expected {key} in etcd ({' '.join(argv)}), found rc={result.rc} "
        f"{(result.stdout + result.stderr).strip()!r}"
    )
    wanted = {
        "Network": master.setting("flannel_network"),
        "SubnetLen": int(master.setting("flannel_subnet_len")),
        "Backend": {
            "Type": master.setting("flannel_backend"),
            "VNI": int(master.setting("flannel_vni")),
        },
    }
    try:
        found = json.loads(result.stdout)
    except ValueError:
        found = result.stdout.strip()
    assert found == wanted, f"{master.name}: expected {key} = {wanted}, found {found}"


def test_apiserver_listens(master):
    if master.profile == "el7":
        bind = master.setting("apiserver_insecure_bind_address")
        port = master.setting("apiserver_insecure_port")
        on = "all" if bind in ("0.0.0.0", "::") else bind
    else:
        port, on = master.setting("apiserver_port"), master.address
    master.assert_listening("kube-apiserver", port, on)


def test_apiserver_is_ready(master):
    """This master's own apiserver (not whichever one its kubeconfig reaches) is ready."""
    if master.profile == "el7":  # kubernetes 1.5 has /healthz only
        port = master.setting("apiserver_insecure_port")
        master.assert_healthy("the apiserver's", f"http://127.0.0.1:{port}/healthz")
        return
    server = f"https://{master.address}:{master.setting('apiserver_port')}"
    result = master.kubectl(f"--server={server}", "get", "--raw", "/readyz")
    assert result.rc == 0 and result.stdout.strip() == "ok", (
        f"{master.name}: expected kubectl --server={server} get --raw /readyz to answer ok, "
        f"found rc={result.rc} {(result.stdout + result.stderr).strip()!r}"
    )


@pytest.mark.parametrize("service", ["kube-controller-manager", "kube-scheduler"])
def test_component_is_healthy(master, service):
    url = HEALTHZ[master.profile][service]
    master.assert_healthy(f"{service}'s", url, *(["-k"] if url.startswith("https") else []))


# kubelab's own etcdctl on the master: etcd's serving certificate (the root role on modern;
# flanneld's is kept to flannel's prefix, and `endpoint health` may ask for etcd's status)
KUBELAB_CLIENT = etcd_server_files()


def member_etcdctl(master, cluster):
    """etcdctl on ``master`` against its own member, with kubelab's client certificate."""
    argv = ["env", "ETCDCTL_API=3", "etcdctl", f"--endpoints={cluster.member_url(master)}"]
    if cluster.secure:
        tls = KUBELAB_CLIENT
        argv += [f"--cacert={tls['ca']}", f"--cert={tls['cert']}", f"--key={tls['key']}"]
    return argv + ["--dial-timeout=5s", "--command-timeout=10s"]


def test_etcd_is_healthy(master, cluster):
    argv = member_etcdctl(master, cluster)
    result = master.run(*argv, "endpoint", "health")
    output = (result.stdout + result.stderr).strip()
    assert result.rc == 0 and "is healthy" in output, (
        f"{master.name}: expected {' '.join(argv)} endpoint health to find its member "
        f"healthy, found rc={result.rc} {output!r}"
    )


def test_etcd_has_one_started_member_per_master(master, cluster):
    master.only("modern", "more than one etcd member")
    argv = member_etcdctl(master, cluster)
    result = master.run(*argv, "member", "list", "-w", "json")
    assert result.rc == 0, f"{master.name}: {' '.join(argv)} member list: {result.stderr!r}"
    found = sorted(member.get("name", "") for member in json.loads(result.stdout)["members"])
    wanted = sorted(node.short_name for node in cluster.masters)
    assert found == wanted, (
        f"{master.name}: expected etcd's members {wanted} (one started member per master; an "
        f"unstarted one has no name), found {found}"
    )


def test_binaries_are_executable(master):
    master.assert_executable(BINARIES[master.profile])


def test_secrets_are_private(master):
    if master.profile == "el7":
        master.assert_owned({master.setting("service_account_key_file"): (0o600, "kube", "kube")})
        return
    present = master.find("/etc/kubernetes", "*.key", "*.kubeconfig")
    wanted = {path: (0o600, "root", "root") for path in {*MODERN_SECRETS, *present}}
    master.assert_owned({**wanted, PKI: (0o700, "root", "root")})


def test_apiserver_certificate(master):
    master.only("modern", "TLS certificates")
    cert, ca = f"{PKI}/apiserver.crt", f"{PKI}/ca.crt"
    master.assert_verifies(cert, ca)
    text = master.run("openssl", "x509", "-noout", "-text", "-in", cert).stdout
    addresses = re.findall(r"IP Address:([0-9A-Fa-f.:]+)", text)
    assert master.address in addresses, (
        f"{master.name}: expected {master.address} among the IP SANs of {cert}, found {addresses}"
    )


def test_etcd_client_access(master, cluster):
    """With ``secure``: no certificate, no answer; the cluster's certificate, an answer.
    Without it, the reference setup's exposure: etcd answers anyone over plain HTTP."""
    url = f"{cluster.member_url(master)}/health"
    if not cluster.secure:
        anyone = master.run("curl", "-sS", "--max-time", "5", url)
        assert anyone.rc == 0 and '"health":"true"' in anyone.stdout.replace(" ", ""), (
            f"{master.name}: expected the open setup's etcd to answer {url}, found "
            f"rc={anyone.rc} {(anyone.stdout + anyone.stderr).strip()!r}"
        )
        return
    anonymous = master.run("curl", "-sS", "--max-time", "5", "--cacert", FLANNEL_CLIENT["ca"], url)
    assert anonymous.rc != 0 or '"health":"true"' not in anonymous.stdout.replace(" ", ""), (
        f"{master.name}: expected etcd to refuse a client without a certificate, it answered "
        f"{anonymous.stdout!r}"
    )
    certified = master.run(
        "curl",
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        FLANNEL_CLIENT["ca"],
        "--cert",
        FLANNEL_CLIENT["cert"],
        "--key",
        FLANNEL_CLIENT["key"],
        url,
    )
    assert certified.rc == 0 and '"health":"true"' in certified.stdout.replace(" ", ""), (
        f"{master.name}: expected etcd to serve flanneld's certificate (of etcd's CA), found "
        f"rc={certified.rc} {(certified.stdout + certified.stderr).strip()!r}"
    )
