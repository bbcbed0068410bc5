"""Cluster DNS (modern profile): CoreDNS, applied from the master as one manifest.

The ``kube-dns`` Service answers at ``cluster_dns_ip`` (every kubelet's ``clusterDNS``). The
Corefile serves ``cluster_domain`` from the API and forwards other names to ``dns_upstream``,
or to the minions' own resolvers (``forward . /etc/resolv.conf``: CoreDNS's pods take the
resolv.conf the kubelet gives them, systemd-resolved's list where /etc/resolv.conf names only
its stub) when every minion has one that is not a loopback address. Otherwise it
does not forward: CoreDNS's forward plugin given a resolv.conf without a nameserver has no
upstream to try (each query then fails inside the plugin), and a loopback nameserver inside
its pod is CoreDNS itself, which its loop plugin detects by exiting: a crash loop. Without
forwarding, names outside the cluster fail at once and CoreDNS stays Ready.
"""

import hashlib
import ipaddress

from pyinfra import host, logger
from pyinfra.facts.files import FileContents

from .. import engine
from ..engine.common import render
from ..settings import topology
from ..settings.addon_checks import dns_ip, upstreams
from ..settings.defaults import setting

MANIFEST = "/etc/kubernetes/addons/coredns.yaml"
DEPLOYMENT = "coredns"  # in kube-system, its pods labelled POD_SELECTOR
POD_SELECTOR = "k8s-app=kube-dns"
RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"  # systemd-resolved's upstream resolvers
RESOLVERS = (RESOLV_CONF, RESOLVED_CONF)


def cluster_dns_ip(target=None) -> str:
    return dns_ip(target or topology.master())


def nameservers(lines) -> list[str]:
    """The nameserver addresses of a resolv.conf's lines."""
    found = []
    for line in lines or ():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return found


def usable(address: str) -> bool:
    """A nameserver CoreDNS's pod can forward to: an address that is not its own loopback."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def has_resolver(path: str, target) -> bool:
    lines = engine.fact(FileContents, target, path=path)
    return any(map(usable, nameservers(lines)))


def resolv_conf(target=None) -> str:
    """The resolv.conf a minion's kubelet gives pods of ``dnsPolicy: Default`` (CoreDNS's):
    /etc/resolv.conf, unless it names only systemd-resolved's stub on loopback and
    systemd-resolved's list of the real resolvers has one (kubeadm's choice too)."""
    target = host if target is None else target
    if not has_resolver(RESOLV_CONF, target) and has_resolver(RESOLVED_CONF, target):
        return RESOLVED_CONF
    return RESOLV_CONF


def minions_without_resolver() -> list[str]:
    """The minions whose resolv.conf for pods names no usable nameserver (read with their
    first facts: roles.first_facts)."""
    return [
        target.name
        for target in topology.minions()
        if not has_resolver(resolv_conf(target), target)
    ]


def forward_targets() -> str | None:
    """Where CoreDNS forwards names outside the cluster: ``dns_upstream``, the nodes'
    resolv.conf, or nowhere (None, with a warning once per run)."""
    chosen = setting("dns_upstream")
    if chosen:
        return " ".join(upstreams(chosen))
    lacking = minions_without_resolver()
    if not lacking:
        return RESOLV_CONF
    warned = engine.run_cache("coredns")
    if not warned:
        warned["no upstream"] = True
        logger.warning(
            f"kubelab: {', '.join(lacking)}: no nameserver in {RESOLV_CONF} that CoreDNS can "
            "forward to (nor in systemd-resolved's list): cluster DNS answers only names of the "
            "cluster; set dns_upstream for the others"
        )
    return None


def corefile(forward: str | None) -> str:
    domain = setting("cluster_domain")
    lines = [
        ".:53 {",
        "    errors",
        "    health {",
        "        lameduck 5s",
        "    }",
        "    ready",
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{",
        "        pods insecure",
        "        fallthrough in-addr.arpa ip6.arpa",
        "        ttl 30",
        "    }",
        "    prometheus :9153",
    ]
    if forward:
        lines += [f"    forward . {forward} {{", "        max_concurrent 1000", "    }"]
    lines += ["    cache 30", "    loop", "    reload", "    loadbalance", "}"]
    return "\n".join(lines) + "\n"


def manifest() -> str:
    """CoreDNS's manifest as the master applies it."""
    text = corefile(forward_targets())
    return render(
        MANIFEST,
        cluster_name=setting("cluster_name"),
        corefile=text,
        corefile_sha256=hashlib.sha256(text.encode()).hexdigest(),
        replicas=setting("dns_replicas"),
        image=setting("dns_image"),
        cluster_dns_ip=cluster_dns_ip(),
    )
