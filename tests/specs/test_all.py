"""Every cluster host: names, firewall, time, kernel networking, its flannel lease and device,
kube-proxy (modern)."""

import ipaddress
from itertools import combinations

import pytest

from kubelab.components import api_balancer

SYSCTL_FILE = "/etc/sysctl.d/90-kubelab.conf"
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
# /livez: the proxy's own health. /healthz also asks whether this host's Node may take
# load-balancer traffic, and the master has no Node: it answers 503 there by design.
KUBE_PROXY_LIVEZ = "http://127.0.0.1:10256/livez"
# kube-proxy serves it only after looking for its host's Node, for up to 30 s where there is
# none (the master): a kube-proxy just restarted there is given that long, and some slack.
KUBE_PROXY_STARTUP = 45


def hosts_line(target):
    names = [target.name] if target.short_name == target.name else [target.name, target.short_name]
    return [target.address, *names]


def test_cluster_names_resolve(node, cluster):
    problems = []
    if node.setting("manage_etc_hosts"):
        lines = [
            line.split("#")[0].split() for line in (node.read("/etc/hosts") or "").splitlines()
        ]
        for other in cluster.nodes.values():
            wanted = hosts_line(other)
            naming = [fields for fields in lines if set(wanted[1:]) & set(fields[1:])]
            if naming != [wanted]:
                found = "; ".join(" ".join(fields) for fields in naming) or "no line"
                problems.append(f"/etc/hosts: expected only '{' '.join(wanted)}', found {found}")
    for other in cluster.nodes.values():
        result = node.run("getent", "ahostsv4", other.name)
        resolved = sorted({line.split()[0] for line in result.stdout.splitlines()})
        if other.address not in resolved:
            problems.append(f"{other.name}: expected {other.address}, resolves to {resolved}")
    assert not problems, f"{node.name}: " + "\n".join(problems)


def test_firewalld_is_off(node):
    active, enabled = node.unit("firewalld")
    running = active in ("active", "activating", "reloading")
    assert not running and enabled not in ("enabled", "enabled-runtime"), (
        f"{node.name}: expected firewalld stopped and disabled (or not installed), found "
        f"is-active={active or 'none'}, is-enabled={enabled or 'none'}"
    )


def test_chrony_runs(node):
    node.assert_running("chrony" if node.debian_family else "chronyd")


def test_kernel_networking(node):
    node.only("modern", "sysctl settings of kubelab")
    configured = {}
    for line in (node.read(SYSCTL_FILE) or "").splitlines():
        key, equals, value = line.partition("=")
        if equals and not key.lstrip().startswith(("#", ";")):
            configured[key.strip()] = value.strip()
    live = {key: (node.read("/proc/sys/" + key.replace(".", "/")) or "").strip() for key in SYSCTLS}
    for key, value in SYSCTLS.items():
        assert configured.get(key) == value, (
            f"{node.name}: expected {key} = {value} in {SYSCTL_FILE}, found {configured.get(key)}"
        )
    assert live == SYSCTLS, f"{node.name}: expected live sysctls {SYSCTLS}, found {live}"


def test_flannel_lease(node, cluster):
    network = ipaddress.ip_network(cluster.master.setting("flannel_network"))
    subnet_len = int(cluster.master.setting("flannel_subnet_len"))
    subnet = node.flannel_subnet().network
    assert subnet.subnet_of(network) and subnet.prefixlen == subnet_len, (
        f"{node.name}: expected a /{subnet_len} flannel subnet inside {network}, found {subnet}"
    )


def test_flannel_leases_are_distinct(cluster):
    leases = {target.name: target.flannel_subnet().network for target in cluster.nodes.values()}
    clashes = [
        f"{a} {leases[a]} and {b} {leases[b]}"
        for a, b in combinations(leases, 2)
        if leases[a].overlaps(leases[b])
    ]
    assert not clashes, f"expected a distinct flannel subnet per host, found overlaps: {clashes}"


def test_flannel_device_carries_the_lease(node, cluster):
    backend = cluster.master.setting("flannel_backend")
    if backend != "vxlan":
        pytest.skip(f"flannel_backend is {backend}: no flannel.<VNI> VXLAN device")
    device = f"flannel.{cluster.master.setting('flannel_vni')}"
    lease = node.flannel_subnet().network
    result = node.run("ip", "-o", "-4", "addr", "show", "dev", device)
    assert result.rc == 0, (
        f"{node.name}: expected flanneld's VXLAN device {device}, found "
        f"{(result.stdout + result.stderr).strip()!r}"
    )
    addresses = [
        ipaddress.ip_interface(word)
        for line in result.stdout.splitlines()
        for before, word in zip(line.split(), line.split()[1:], strict=False)
        if before == "inet"
    ]
    assert any(address.ip in lease for address in addresses), (
        f"{node.name}: expected {device} to carry an address inside its flannel lease {lease}, "
        f"found {[str(address) for address in addresses] or 'none'}"
    )


def test_kube_proxy_runs_and_is_healthy(node):
    node.only(
        "modern", "kube-proxy livez on 10256 (el7: the minions' kube-proxy runs, test_minions.py)"
    )
    node.assert_running("kube-proxy")
    node.assert_healthy("kube-proxy's", KUBE_PROXY_LIVEZ, body=None, within=KUBE_PROXY_STARTUP)


def test_api_balancer_has_every_apiserver_up(node, cluster):
    """Several masters and no ``api_endpoint``: this host's local balancer answers on
    127.0.0.1 and holds every master's apiserver, each UP by its /readyz check."""
    node.only("modern", "a local API balancer")
    if not cluster.highly_available or node.setting("api_endpoint"):
        pytest.skip("one master, or api_endpoint set: no local balancer")
    node.assert_running(api_balancer.SERVICE)
    node.assert_listening("the API balancer", node.setting("api_balancer_port"), "127.0.0.1")
    show = f'echo "show stat" | socat stdio {api_balancer.STATS_SOCKET}'
    result = node.host.run(show)
    assert result.rc == 0, f"{node.name}: {show}: {result.stderr.strip()!r}"
    rows = [line.split(",") for line in result.stdout.splitlines() if not line.startswith("#")]
    found = {row[1]: row[17] for row in rows if len(row) > 17 and row[0] == api_balancer.BACKEND}
    wanted = {master.short_name: "UP" for master in cluster.masters}
    servers = {name: status for name, status in found.items() if name != "BACKEND"}
    assert servers == wanted, (
        f"{node.name}: expected the balancer's backend {api_balancer.BACKEND} to hold {wanted}, "
        f"found {servers}"
    )
