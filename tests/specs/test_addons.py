"""The modern profile's add-ons and Secrets at rest: CoreDNS available and answering on the
cluster DNS address from every minion, metrics-server's APIService Available, the encryption
configuration in place and a Secret stored encrypted in etcd."""

import base64
import ipaddress
import json

import pytest

from kubelab.pki.etcd_tls import etcd_server_files
from kubelab.settings.addon_checks import dns_ip

ENCRYPTION_CONFIG = "/etc/kubernetes/encryption-config.yaml"
# kubelab's own etcdctl identity on the master (flanneld's is kept to flannel's prefix)
ETCD_CLIENT = etcd_server_files()
PROBE_SECRET = "kubelab-spec-at-rest"
AVAILABLE_WAIT = 120  # s, for the add-ons' pods to be available again
PROBE_VALUE = "kubelab-plaintext-probe"
# One DNS question (type A, class IN) over UDP, 3 tries of 2 s; prints the rcode and each
# A record's address. python3 is on every node; dig and nslookup may not be.
DNS_QUERY = r"""
import random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
ident = random.randrange(65536)
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
for _ in range(3):
    sock.sendto(query, (server, 53))
    try:
        data = sock.recv(4096)
    except socket.timeout:
        continue
    if struct.unpack(">H", data[:2])[0] == ident:
        break
else:
    sys.exit("no answer from %s:53 within 3 tries of 2 s" % server)
flags, qd, an = struct.unpack(">HHH", data[2:8])
offset = 12
for _ in range(qd):
    while data[offset]:
        offset += data[offset] + 1
    offset += 5
addresses = []
for _ in range(an):
    if data[offset] & 0xC0 == 0xC0:
        offset += 2
    else:
        while data[offset]:
            offset += data[offset] + 1
        offset += 1
    kind, _, _, length = struct.unpack(">HHIH", data[offset:offset + 10])
    offset += 10
    if kind == 1 and length == 4:
        addresses.append(socket.inet_ntoa(data[offset:offset + 4]))
    offset += length
print(flags & 0xF, *addresses)
"""


def modern_only(node, what):
    node.only("modern", what)


# The add-ons' pods may be starting again when the specs run (after a node came back, a fault),
# as a user may run them at any time: each spec below waits for them at most AVAILABLE_WAIT.


def test_coredns_is_available(master):
    modern_only(master, "add-ons")
    wanted = master.setting("dns_replicas")
    result = master.until(
        AVAILABLE_WAIT,
        lambda: master.kubectl(
            "-n",
            "kube-system",
            "get",
            "deployment",
            "coredns",
            "-o",
            "jsonpath={.spec.replicas} {.status.availableReplicas}",
        ),
        lambda result: result.rc == 0 and result.stdout.split() == [str(wanted)] * 2,
    )
    assert result.rc == 0 and result.stdout.split() == [str(wanted), str(wanted)], (
        f"{master.name}: expected the coredns Deployment with {wanted} available replicas "
        f"(dns_replicas) within {AVAILABLE_WAIT} s, found "
        f"{(result.stdout + result.stderr).strip()!r}"
    )
    service = master.kubectl(
        "-n", "kube-system", "get", "service", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"
    )
    address = dns_ip(master.inventory_host)
    assert service.stdout.strip() == address, (
        f"{master.name}: expected the kube-dns Service at {address} (cluster_dns_ip), found "
        f"{(service.stdout + service.stderr).strip()!r}"
    )


def test_cluster_dns_answers_on_each_minion(minion):
    modern_only(minion, "cluster DNS")
    address = dns_ip(minion.inventory_host)
    name = f"kubernetes.default.svc.{minion.setting('cluster_domain')}"
    api = str(ipaddress.IPv4Network(minion.setting("service_cluster_ip_range"))[1])
    result = minion.until(
        AVAILABLE_WAIT,
        lambda: minion.run("python3", "-c", DNS_QUERY, address, name),
        lambda result: result.rc == 0 and result.stdout.split() == ["0", api],
    )
    assert result.rc == 0 and result.stdout.split() == ["0", api], (
        f"{minion.name}: expected {address}:53 (cluster DNS) to answer {name} with {api} "
        f"within {AVAILABLE_WAIT} s, found rc={result.rc} "
        f"{(result.stdout + result.stderr).strip()!r}"
    )


def test_metrics_apiservice_is_available(master):
    modern_only(master, "add-ons")
    if not master.setting("metrics_server"):
        pytest.skip("metrics_server is off")
    # one replica: after its node was down it takes a scrape or two to be ready again
    result = master.until(
        AVAILABLE_WAIT,
        lambda: master.kubectl(
            "get",
            "apiservice",
            "v1beta1.metrics.k8s.io",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Available")].status} '
            '{.status.conditions[?(@.type=="Available")].message}',
        ),
        lambda result: result.stdout.split()[:1] == ["True"],
    )
    assert result.rc == 0 and result.stdout.split()[:1] == ["True"], (
        f"{master.name}: expected the APIService v1beta1.metrics.k8s.io Available within "
        f"{AVAILABLE_WAIT} s, found "
        f"{(result.stdout + result.stderr).strip()!r}"
    )


def encrypting(master) -> bool:
    modern_only(master, "encryption at rest")
    if not master.setting("secrets_encryption"):
        pytest.skip("secrets_encryption is off")
    return True


def test_encryption_configuration_is_private(master):
    encrypting(master)
    master.assert_owned({ENCRYPTION_CONFIG: (0o600, "root", "root")})
    unit = master.read("/etc/systemd/system/kube-apiserver.service") or ""
    assert f"--encryption-provider-config={ENCRYPTION_CONFIG}" in unit, (
        f"{master.name}: expected kube-apiserver's unit to name {ENCRYPTION_CONFIG}"
    )


def test_a_secret_is_stored_encrypted_in_etcd(master, cluster):
    encrypting(master)
    made = master.kubectl(
        "-n",
        "default",
        "create",
        "secret",
        "generic",
        PROBE_SECRET,
        f"--from-literal=v={PROBE_VALUE}",
    )
    assert made.rc == 0 or "AlreadyExists" in made.stderr, (
        f"{master.name}: kubectl create secret {PROBE_SECRET}: {made.stderr.strip()!r}"
    )
    try:
        ca, cert, key = (ETCD_CLIENT[part] for part in ("ca", "cert", "key"))
        tls = f"--cacert={ca} --cert={cert} --key={key} " if cluster.secure else ""
        raw = master.host.run(
            "ETCDCTL_API=3 etcdctl --dial-timeout=5s --command-timeout=10s "
            f"--endpoints={cluster.etcd_url} {tls}"
            f"get /registry/secrets/default/{PROBE_SECRET} --print-value-only | base64 -w0"
        )
        value = base64.b64decode(raw.stdout.strip() or "")
        shown = json.dumps(value[:40].decode("latin-1"))
        assert value.startswith(b"k8s:enc:aescbc:v1:") and PROBE_VALUE.encode() not in value, (
            f"{master.name}: expected /registry/secrets/default/{PROBE_SECRET} in etcd to start "
            f"with k8s:enc:aescbc:v1: and hold no plaintext, found {shown} "
            f"({raw.stderr.strip()!r})"
        )
    finally:
        master.kubectl("-n", "default", "delete", "secret", PROBE_SECRET, "--ignore-not-found")


def test_addon_manifests_are_private(master, cluster):
    """metrics-server's manifest holds its serving key."""
    modern_only(master, "add-ons")
    if master is not cluster.master:
        pytest.skip(f"{master.name} is not the first master: the add-ons are applied from there")
    manifests = master.find("/etc/kubernetes/addons", "*.yaml")
    wanted = {path: (0o600, "root", "root") for path in manifests}
    master.assert_owned({**wanted, "/etc/kubernetes/addons": (0o700, "root", "root")})
