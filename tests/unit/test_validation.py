"""Bad inventories and settings stop the run with one line, before any host is touched.

Every case of the corpus runs ``deploy_cluster`` over simulated hosts, exactly like a real run,
and asserts the message (setting, host, what is wrong), that it is one line, and that no command
ran and no file was uploaded on any machine.
"""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import fakehosts
import kubelab
import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import REPO, SimulatedConnector, centos7, debian12, run_deploy
from kubelab import SettingError, validation
from pyinfra.api import State
from pyinfra.api.host import Host
from pyinfra.context import ctx_host, ctx_state
from pyinfra_cli.inventory import make_inventory

MINION1, MINION2 = MINIONS
INVENTORY = "inventory"  # the "where" of a problem of the inventory as a whole


def hosts_line(group: str, *entries: tuple[str, str | None]) -> str:
    """An inventory line: ``group = [(name, {"ssh_hostname": address}), ...]``."""
    items = [(name, {"ssh_hostname": address} if address else {}) for name, address in entries]
    return f"{group} = {items!r}\n"


def minions_with(first: dict, second: dict | None = None) -> str:
    """The lab's two minions, with extra host data."""
    items = [
        (MINION1, {"ssh_hostname": "192.168.122.131", **first}),
        (MINION2, {"ssh_hostname": "192.168.122.132", **(second or {})}),
    ]
    return f"minions = {items!r}\n"


MASTER_LINE = hosts_line("masters", (MASTER, "192.168.122.130"))
MINIONS_LINE = hosts_line("minions", (MINION1, "192.168.122.131"), (MINION2, "192.168.122.132"))


class Case(NamedTuple):
    setting: str
    where: str  # a host name, or INVENTORY
    phrase: str  # what the message must say about the problem (a regex)
    data: dict | None = None  # --data overrides, for every host
    inventory: str | None = None  # an inventory file of its own
    group_data: dict | None = None  # group name -> group_data file text, beside that inventory
    machines: dict | None = None  # host name -> Machine factory (default: CentOS 7 for HOSTS)


def kind_case(setting: str, value, phrase: str, case_id: str):
    """A bad value of ``setting`` on the command line, reported on the master."""
    return pytest.param(Case(setting, MASTER, phrase, data={setting: value}), id=case_id)


def both_groups_inventory() -> str:
    minions = hosts_line("minions", (MASTER, "192.168.122.130"), (MINION1, "192.168.122.131"))
    return MASTER_LINE + minions


CASES = [
    # The inventory's shape
    pytest.param(
        Case(
            "masters",
            INVENTORY,
            "the group must hold exactly one host, it holds none$",
            inventory="masters = []\n",
        ),
        id="no-master",
    ),
    pytest.param(
        Case(
            "masters",
            INVENTORY,
            "it holds none \\(the inventory has a group 'master': rename it 'masters'\\)",
            inventory=hosts_line("master", (MASTER, "192.168.122.130")),
        ),
        id="masters-group-misnamed",
    ),
    pytest.param(
        Case(
            "masters",
            INVENTORY,
            f"must hold exactly one host, it holds 2: {MASTER}, {MINION1}",
            inventory=hosts_line(
                "masters", (MASTER, "192.168.122.130"), (MINION1, "192.168.122.131")
            )
            + hosts_line("minions", (MINION2, "192.168.122.132")),
        ),
        id="two-masters",
    ),
    pytest.param(
        Case(
            "minions",
            INVENTORY,
            "the group must hold at least one host, it holds none",
            inventory="minions = []\n",
        ),
        id="no-minion",
    ),
    pytest.param(
        Case(
            "masters",
            MASTER,
            "the host is in both groups masters and minions",
            inventory=both_groups_inventory(),
            machines={MASTER: centos7, MINION1: centos7},
        ),
        id="host-in-both-groups",
    ),
    pytest.param(
        Case(
            "name",
            "kubeminion1.otherlab.com",
            f"short name 'kubeminion1' is also the short name of {MINION1}",
            inventory=hosts_line(
                "minions",
                (MINION1, "192.168.122.131"),
                ("kubeminion1.otherlab.com", "192.168.122.132"),
            ),
            machines={MASTER: centos7, MINION1: centos7, "kubeminion1.otherlab.com": centos7},
        ),
        id="duplicate-short-name",
    ),
    pytest.param(
        Case(
            "node_name",
            MINION2,
            f"'worker' is also the node name of {MINION1}",
            inventory=minions_with({"node_name": "worker"}, {"node_name": "worker"}),
        ),
        id="duplicate-node-name",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION2,
            f"192.168.122.131 is also the address of {MINION1}",
            inventory=hosts_line(
                "minions", (MINION1, "192.168.122.131"), (MINION2, "192.168.122.131")
            ),
        ),
        id="duplicate-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION2,
            f"the host has no address: set ssh_hostname or kube_address \\(its name '{MINION2}' "
            "is not an IP address\\)",
            inventory=hosts_line("minions", (MINION1, "192.168.122.131"), (MINION2, None)),
        ),
        id="missing-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION1,
            "unset, and ssh_hostname 'kubeminion1.lan' is not an IPv4 address: set kube_address",
            inventory=hosts_line(
                "minions", (MINION1, "kubeminion1.lan"), (MINION2, "192.168.122.132")
            ),
        ),
        id="ssh-hostname-not-an-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MASTER,
            "'192.168.122.300' is not an IPv4 address",
            data={"kube_address": "192.168.122.300"},
        ),
        id="malformed-kube-address",
    ),
    pytest.param(
        Case(
            "kube_address",
            MINION1,
            "127.0.0.1 is not an address the other hosts can reach",
            inventory=minions_with({"kube_address": "127.0.0.1"}),
        ),
        id="loopback-address",
    ),
    # Setting names
    pytest.param(
        Case(
            "flannel_netwrok",
            MASTER,
            "unknown setting, did you mean 'flannel_network'\\?",
            data={"flannel_netwrok": "10.30.0.0/16"},
        ),
        id="typo-on-the-command-line",
    ),
    pytest.param(
        Case(
            "kube_adress",
            MINION1,
            "unknown setting, did you mean 'kube_address'\\?",
            inventory=minions_with({"kube_adress": "10.0.0.31"}),
        ),
        id="typo-in-host-data",
    ),
    pytest.param(
        Case(
            "Manage_Etc_Hosts",
            MASTER,
            "unknown setting, did you mean 'manage_etc_hosts'\\?",
            group_data={"all": "Manage_Etc_Hosts = True\n"},
        ),
        id="typo-in-group-data",
    ),
    # Types
    pytest.param(
        Case(
            "flannel_subnet_len",
            MASTER,
            "'24' is a string, not a whole number \\(write 24 without quotes\\)",
            group_data={"all": 'flannel_subnet_len = "24"\n'},
        ),
        id="int-as-string-in-group-data",
    ),
    pytest.param(
        Case(
            "apiserver_insecure_port",
            MASTER,
            "'8080' is a string, not a whole number",
            group_data={"masters": 'apiserver_insecure_port = "8080"\n'},
        ),
        id="port-as-string",
    ),
    pytest.param(
        Case(
            "manage_etc_hosts",
            MASTER,
            "'yes' is a string, not True or False \\(write True or False without quotes\\)",
            data={"manage_etc_hosts": "yes"},
        ),
        id="bool-as-string",
    ),
    pytest.param(
        Case("kube_log_level", MASTER, "True is not a whole number", data={"kube_log_level": True}),
        id="bool-for-int",
    ),
    pytest.param(
        Case(
            "artifact_sha256",
            MASTER,
            "\\['abc'\\] is not a mapping",
            data={"artifact_sha256": ["abc"]},
        ),
        id="list-for-mapping",
    ),
    pytest.param(
        Case(
            "etcd_client_port",
            MASTER,
            "70000 is out of range 1-65535",
            data={"etcd_client_port": 70000},
        ),
        id="port-out-of-range",
    ),
    pytest.param(
        Case(
            "flannel_vni",
            MASTER,
            "16777216 is out of range 0-16777215",
            data={"flannel_vni": 2**24},
        ),
        id="vni-too-large",
    ),
    pytest.param(
        Case("flannel_vni", MASTER, "-1 is out of range 0-16777215", data={"flannel_vni": -1}),
        id="vni-negative",
    ),
    # One cluster, one value
    pytest.param(
        Case(
            "flannel_network",
            MINION1,
            f"'10.30.0.0/16' differs from '10.20.0.0/16' on the master {MASTER}: a cluster-wide "
            "setting must be the same on every host",
            group_data={"minions": 'flannel_network = "10.30.0.0/16"\n'},
        ),
        id="cluster-wide-setting-differs",
    ),
    # Values
    pytest.param(
        Case(
            "flannel_backend",
            MASTER,
            "'vxlam' is not a flannel backend kubelab supports \\(vxlan, host-gw, udp\\), "
            "did you mean 'vxlan'\\?",
            data={"flannel_backend": "vxlam"},
        ),
        id="unknown-flannel-backend",
    ),
    pytest.param(
        Case(
            "cluster_name",
            MASTER,
            "'my cluster' is not a DNS name: it has a label with a character other than letters, "
            "digits and '-' \\('my cluster'\\)",
            data={"cluster_name": "my cluster"},
        ),
        id="cluster-name-with-a-space",
    ),
    pytest.param(
        Case(
            "flannel_etcd_prefix",
            MASTER,
            "'atomic.io/network' is not an etcd key prefix",
            data={"flannel_etcd_prefix": "atomic.io/network"},
        ),
        id="etcd-prefix-without-slash",
    ),
    pytest.param(
        Case(
            "apiserver_insecure_bind_address",
            MASTER,
            "'0.0.0.0.0' is not an IPv4 address",
            data={"apiserver_insecure_bind_address": "0.0.0.0.0"},
        ),
        id="malformed-bind-address",
    ),
    pytest.param(
        Case(
            "kube_version",
            MASTER,
            "'1.35.8' is not a release tag like 'v1.35.8' \\(did you mean 'v1.35.8'\\?\\)",
            data={"kube_version": "1.35.8"},
        ),
        id="version-without-v",
    ),
    pytest.param(
        Case(
            "artifact_sha256",
            MASTER,
            "the pin for 'kubelet' is not a sha256 digest \\(64 hex digits\\): 'abc'",
            data={"artifact_sha256": {"kubelet": "abc"}},
        ),
        id="bad-sha256-pin",
    ),
    pytest.param(
        Case(
            "sandbox_image",
            MASTER,
            "'pause 3.10' is not an image reference like 'registry.k8s.io/pause:3.10.1'$",
            data={"sandbox_image": "pause 3.10"},
        ),
        id="sandbox-image-not-a-reference",
    ),
    pytest.param(
        Case(
            "image_archives",
            MINION1,
            "'Nginx:1.27' is not an image reference like 'registry.k8s.io/pause:3.10.1'$",
            inventory=minions_with({"image_archives": {"Nginx:1.27": "/srv/nginx.tar"}}),
        ),
        id="image-archive-reference-upper-case",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'registry.k8s.io/pause:3.10.1', '/nonexistent/pause.tar', does not "
            "exist on this machine$",
            data={"image_archives": {"registry.k8s.io/pause:3.10.1": "/nonexistent/pause.tar"}},
        ),
        id="image-archive-missing-file",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'nginx', '/tmp', is not a file$",
            data={"image_archives": {"nginx": "/tmp"}},
        ),
        id="image-archive-directory",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'nginx', 'ftp://mirror/nginx.tar', is not an http\\(s\\) URL: it has "
            "the scheme 'ftp', not http:// or https://$",
            data={"image_archives": {"nginx": "ftp://mirror/nginx.tar"}},
        ),
        id="image-archive-ftp-url",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'nginx', 'http:///nginx.tar', is not an http\\(s\\) URL: it names no "
            "host$",
            data={"image_archives": {"nginx": "http:///nginx.tar"}},
        ),
        id="image-archive-url-without-host",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'nginx' is 5, not a file name or an http\\(s\\) URL$",
            data={"image_archives": {"nginx": 5}},
        ),
        id="image-archive-not-a-string",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "\\['nginx.tar'\\] is not a mapping",
            data={"image_archives": ["nginx.tar"]},
        ),
        id="image-archives-a-list",
    ),
    pytest.param(
        Case(
            "kube_proxy_conntrack_max_per_core",
            MASTER,
            "-1 is out of range 0-2147483647$",
            data={"kube_proxy_conntrack_max_per_core": -1},
        ),
        id="conntrack-max-per-core-negative",
    ),
    pytest.param(
        Case(
            "kube_proxy_conntrack_max_per_core",
            MASTER,
            "'0' is a string, not a whole number \\(write 0 without quotes\\)",
            data={"kube_proxy_conntrack_max_per_core": "0"},
        ),
        id="conntrack-max-per-core-as-string",
    ),
    # Networks
    pytest.param(
        Case(
            "flannel_network",
            MASTER,
            "'10.20.0.0/33' is not an IPv4 network in CIDR form",
            data={"flannel_network": "10.20.0.0/33"},
        ),
        id="malformed-pod-network",
    ),
    pytest.param(
        Case(
            "flannel_network",
            MASTER,
            "'10.20.0.1/16' is not an IPv4 network in CIDR form \\(10.20.0.1/16 has host bits "
            "set\\)",
            data={"flannel_network": "10.20.0.1/16"},
        ),
        id="pod-network-with-host-bits",
    ),
    pytest.param(
        Case(
            "service_cluster_ip_range",
            MASTER,
            "'services' is not an IPv4 network in CIDR form",
            data={"service_cluster_ip_range": "services"},
        ),
        id="malformed-service-range",
    ),
    pytest.param(
        Case(
            "service_cluster_ip_range",
            MASTER,
            "10.254.0.0 has no prefix length \\(like /16\\)",
            data={"service_cluster_ip_range": "10.254.0.0"},
        ),
        id="service-range-without-prefix",
    ),
    pytest.param(
        Case(
            "service_cluster_ip_range",
            MASTER,
            "10.20.128.0/20 overlaps flannel_network 10.20.0.0/16",
            data={"service_cluster_ip_range": "10.20.128.0/20"},
        ),
        id="service-range-overlaps-pod-network",
    ),
    pytest.param(
        Case(
            "flannel_network",
            MASTER,
            f"192.168.0.0/16 overlaps the hosts' subnet: it contains 192.168.122.130, the address "
            f"of {MASTER}",
            data={"flannel_network": "192.168.0.0/16"},
        ),
        id="pod-network-overlaps-hosts-subnet",
    ),
    pytest.param(
        Case(
            "service_cluster_ip_range",
            MASTER,
            "192.168.122.128/28 overlaps the hosts' subnet: it contains 192.168.122.130",
            data={"service_cluster_ip_range": "192.168.122.128/28"},
        ),
        id="service-range-overlaps-hosts-subnet",
    ),
    pytest.param(
        Case(
            "flannel_subnet_len",
            MASTER,
            "16 must be larger than the prefix of flannel_network 10.20.0.0/16",
            data={"flannel_subnet_len": 16},
        ),
        id="subnet-len-not-larger-than-prefix",
    ),
    pytest.param(
        Case(
            "flannel_subnet_len",
            MASTER,
            "31 leaves no room for pods",
            data={"flannel_subnet_len": 31},
        ),
        id="subnet-len-too-long",
    ),
    pytest.param(
        Case(
            "flannel_subnet_len",
            MASTER,
            "/24 subnets of flannel_network 10.20.0.0/23 leave 1 to lease \\(flannel skips the "
            "first\\) for 3 hosts",
            data={"flannel_network": "10.20.0.0/23"},
        ),
        id="too-few-flannel-subnets",
    ),
    # Profiles
    pytest.param(
        Case(
            "profile",
            MASTER,
            "'el8' is not a profile: el7 \\(CentOS/RHEL 7\\) or modern",
            data={"profile": "el8"},
        ),
        id="unknown-profile",
    ),
    pytest.param(
        Case(
            "profile",
            MASTER,
            "'el7' does not fit the host's OS debian 12, which takes 'modern'",
            data={"profile": "el7"},
            machines=dict.fromkeys(HOSTS, debian12),
        ),
        id="el7-pinned-on-debian",
    ),
    pytest.param(
        Case(
            "profile",
            MASTER,
            "'modern' does not fit the host's OS centos 7, which takes 'el7'",
            data={"profile": "modern"},
        ),
        id="modern-pinned-on-centos7",
    ),
    pytest.param(
        Case(
            "profile",
            MINION1,
            f"the host \\(debian 12\\) takes 'modern' but the master {MASTER} takes 'el7': every "
            "host of a cluster needs the same profile",
            machines={MASTER: centos7, MINION1: debian12, MINION2: debian12},
        ),
        id="mixed-profiles",
    ),
    pytest.param(
        Case(
            "profile",
            MINION2,
            "unsupported OS debian 11 \\(supported: CentOS/RHEL 7",
            machines={
                MASTER: centos7,
                MINION1: centos7,
                MINION2: lambda: fakehosts.modern("debian", 11),
            },
        ),
        id="unsupported-os",
    ),
    # Ports
    pytest.param(
        Case(
            "etcd_peer_port",
            MASTER,
            "2379 is also etcd_client_port \\(both listen on the master\\)",
            data={"etcd_peer_port": 2379},
        ),
        id="etcd-ports-clash",
    ),
    pytest.param(
        Case(
            "apiserver_insecure_port",
            MASTER,
            "2379 is also etcd_client_port",
            data={"apiserver_insecure_port": 2379},
        ),
        id="apiserver-port-clashes-with-etcd",
    ),
    # Kinds: every value checked for what it is (DNS names, URLs, ports, CIDRs, versions,
    # paths, timeouts), each with a case of its own.
    # DNS names and domains
    kind_case("cluster_domain", "cluster..local", "it has an empty label", "domain-empty-label"),
    kind_case(
        "cluster_domain",
        "-cluster.local",
        "it has a label starting or ending with '-' \\('-cluster'\\)",
        "domain-label-starts-with-hyphen",
    ),
    kind_case(
        "cluster_domain",
        "a" * 64 + ".local",
        "it has a label of 64 characters \\(aaaaaaaaaaaa...; at most 63\\)",
        "domain-label-too-long",
    ),
    kind_case(
        "cluster_domain",
        "cluster_local",
        "it has a label with a character other than letters, digits and '-' \\('cluster_local'\\)",
        "domain-underscore",
    ),
    kind_case(
        "cluster_domain",
        "Cluster.Local",
        "it has upper case letters \\(Kubernetes names are lower case\\)",
        "domain-upper-case",
    ),
    kind_case(
        "cluster_domain",
        ".".join(["a" * 63] * 4),
        "it is 255 characters long \\(at most 253\\)",
        "domain-too-long",
    ),
    kind_case(
        "cluster_name",
        "my_cluster",
        "'my_cluster' is not a DNS name: it has a label with a character other than letters",
        "cluster-name-underscore",
    ),
    kind_case("cluster_name", "kubelab.", "it has an empty label", "cluster-name-trailing-dot"),
    pytest.param(
        Case(
            "node_name",
            MINION1,
            "'Worker-1' is not a Kubernetes node name \\(a DNS name in lower case\\): it has upper "
            "case letters",
            inventory=minions_with({"node_name": "Worker-1"}),
        ),
        id="node-name-upper-case",
    ),
    pytest.param(
        Case(
            "node_name",
            MINION2,
            "'worker-' is not a Kubernetes node name .*: it has a label starting or ending with "
            "'-'",
            inventory=minions_with({}, {"node_name": "worker-"}),
        ),
        id="node-name-ends-with-hyphen",
    ),
    pytest.param(
        Case(
            "name",
            "kube_minion1.traininglab.com",
            "the host's name 'kube_minion1.traininglab.com' is not a DNS name: it has a label with "
            "a character other than letters, digits and '-' \\('kube_minion1'\\)",
            inventory=hosts_line(
                "minions",
                ("kube_minion1.traininglab.com", "192.168.122.131"),
                (MINION2, "192.168.122.132"),
            ),
            machines={MASTER: centos7, "kube_minion1.traininglab.com": centos7, MINION2: centos7},
        ),
        id="host-name-underscore",
    ),
    pytest.param(
        Case(
            "node_name",
            "KubeMinion1.traininglab.com",
            "unset, and the host's name 'KubeMinion1.traininglab.com' is no Kubernetes node name: "
            "it has upper case letters \\(Kubernetes names are lower case\\); set node_name$",
            inventory=hosts_line(
                "minions",
                ("KubeMinion1.traininglab.com", "192.168.122.131"),
                (MINION2, "192.168.122.132"),
            ),
            machines={MASTER: centos7, "KubeMinion1.traininglab.com": centos7, MINION2: centos7},
        ),
        id="host-name-upper-case-as-node-name",
    ),
    # URLs: http and https only, reported under the setting that holds them
    pytest.param(
        Case(
            "artifact_mirror",
            MASTER,
            "'ftp://mirror/pub' is not an http\\(s\\) URL like 'http://mirror:8080': it has the "
            "scheme 'ftp', not http:// or https://$",
            data={"artifact_mirror": "ftp://mirror/pub"},
            machines=dict.fromkeys(HOSTS, debian12),
        ),
        id="mirror-ftp",
    ),
    kind_case(
        "artifact_mirror",
        "192.168.122.1:8080",
        "it has no scheme, not http:// or https://",
        "mirror-without-scheme",
    ),
    kind_case(
        "artifact_mirror",
        "http://mirror:99999",
        "it has a port that is not a number 1-65535",
        "mirror-port-out-of-range",
    ),
    kind_case(
        "artifact_mirror",
        "http://mirror:0",
        "it has the port 0 \\(ports are 1-65535\\)",
        "mirror-port-0",
    ),
    kind_case(
        "artifact_mirror",
        "http://mirror_1:8080",
        "it names the host 'mirror_1', which has a label with a character other than letters",
        "mirror-host-underscore",
    ),
    kind_case("artifact_mirror", "http://mirror:8080/ pub", "it holds white space", "mirror-space"),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'nginx', 'https://mirror:70000/nginx.tar', is not an http\\(s\\) URL: "
            "it has a port that is not a number 1-65535$",
            data={"image_archives": {"nginx": "https://mirror:70000/nginx.tar"}},
        ),
        id="image-archive-url-port",
    ),
    pytest.param(
        Case(
            "image_archives",
            MASTER,
            "the archive of 'nginx', 'http://-mirror/nginx.tar', is not an http\\(s\\) URL: it "
            "names the host '-mirror', which has a label starting or ending with '-'",
            data={"image_archives": {"nginx": "http://-mirror/nginx.tar"}},
        ),
        id="image-archive-url-host",
    ),
    # Ports: 1-65535, and distinct where they listen on one host
    kind_case("apiserver_port", 0, "0 is out of range 1-65535$", "apiserver-port-zero"),
    kind_case("etcd_client_port", -1, "-1 is out of range 1-65535$", "etcd-port-negative"),
    pytest.param(
        Case(
            "etcd_client_port",
            MASTER,
            "10257 is also kube-controller-manager's port \\(both listen on the master\\)",
            data={"etcd_client_port": 10257},
            machines=dict.fromkeys(HOSTS, debian12),
        ),
        id="modern-etcd-port-clashes-with-controller-manager",
    ),
    kind_case(
        "apiserver_port",
        10251,
        "10251 is also kube-scheduler's port \\(both listen on the master\\)",
        "el7-apiserver-port-clashes-with-scheduler",
    ),
    kind_case(
        "apiserver_insecure_port",
        6443,
        "6443 is also apiserver_port \\(both listen on the master\\)",
        "el7-plain-port-clashes-with-tls-port",
    ),
    # CIDRs
    kind_case(
        "flannel_network",
        "fd00::/48",
        "'fd00::/48' is not an IPv4 network in CIDR form",
        "pod-network-ipv6",
    ),
    kind_case(
        "service_cluster_ip_range",
        "10.254.0.0/16/8",
        "'10.254.0.0/16/8' is not an IPv4 network in CIDR form",
        "service-range-two-prefixes",
    ),
    kind_case(
        "service_cluster_ip_range",
        "10.254.0.1/16",
        "has host bits set",
        "service-range-host-bits",
    ),
    kind_case(
        "service_cluster_ip_range",
        "10.254.0.1/32",
        "10.254.0.1/32 holds 1 address\\(es\\), too few for the cluster's Services \\(the "
        "apiserver's own takes the first host address\\): at most /28$",
        "service-range-of-one-address",
    ),
    kind_case(
        "service_cluster_ip_range",
        "10.254.0.0/29",
        "10.254.0.0/29 holds 8 address\\(es\\), too few",
        "service-range-of-eight-addresses",
    ),
    kind_case(
        "service_account_key_file",
        "/etc/kubernetes/sa.key;reboot",
        "'/etc/kubernetes/sa.key;reboot' is not a file path on the master like "
        "'/etc/kubernetes/serviceaccount.key': it holds a character a shell would read",
        "service-account-key-with-semicolon",
    ),
    kind_case(
        "service_account_key_file",
        "/etc/kubernetes/$(id).key",
        "it holds a character a shell would read \\(only letters, digits and _./@\\+=:,-\\)$",
        "service-account-key-with-command-substitution",
    ),
    kind_case(
        "flannel_network",
        "10.20.0.0/-1",
        "'10.20.0.0/-1' is not an IPv4 network in CIDR form",
        "pod-network-negative-prefix",
    ),
    kind_case("flannel_network", 10, "10 is not a string$", "pod-network-a-number"),
    # Versions: v + semantic version; flannel's CNI plugin with its -flannelN suffix
    kind_case(
        "kube_version",
        "v1.35",
        "'v1.35' is not a release tag like 'v1.35.8' \\(v, then major.minor.patch\\)$",
        "version-without-patch",
    ),
    kind_case("kube_version", "v1.35.8.1", "is not a release tag", "version-four-numbers"),
    kind_case(
        "etcd_version",
        "latest",
        "'latest' is not a release tag like 'v3.6.14'",
        "version-latest",
    ),
    kind_case("etcd_version", "v3.06.14", "is not a release tag", "version-leading-zero"),
    kind_case(
        "containerd_version", "v2.2.9+dirty", "is not a release tag", "version-build-metadata"
    ),
    kind_case("runc_version", "v1.3.6-dev", "is not a release tag", "version-unknown-pre-release"),
    kind_case(
        "flannel_cni_plugin_version",
        "v1.9.1-flannel",
        "'v1.9.1-flannel' is not a release tag like 'v1.9.1-flannel3'",
        "cni-plugin-suffix-without-number",
    ),
    kind_case(
        "flannel_cni_plugin_version",
        "v1.9.1-flanel3",
        "is not a release tag like 'v1.9.1-flannel3'",
        "cni-plugin-suffix-misspelt",
    ),
    kind_case(
        "cni_plugins_version",
        "v1.7.1-flannel1",
        "'v1.7.1-flannel1' is not a release tag like 'v1.7.1'",
        "flannel-suffix-on-another-version",
    ),
    # Paths: absolute where the path is on a host
    kind_case(
        "service_account_key_file",
        "etc/kubernetes/sa.key",
        "it is not an absolute path \\(it starts with '/' on the host\\)$",
        "key-file-relative",
    ),
    kind_case(
        "service_account_key_file",
        "/etc/kubernetes/../sa.key",
        "it is not in normal form \\('/etc/sa.key' is\\)$",
        "key-file-dot-dot",
    ),
    kind_case(
        "service_account_key_file",
        "/etc/kubernetes/",
        "it ends with '/' \\(it names a file, not a directory\\)$",
        "key-file-directory",
    ),
    kind_case(
        "service_account_key_file",
        "/etc/kubernetes/service account.key",
        "it holds white space$",
        "key-file-space",
    ),
    kind_case("pki_dir", "", "'' is not a directory", "pki-dir-empty"),
    # Timeouts
    kind_case("network_timeout", 0, "0 is out of range 1-3600$", "network-timeout-zero"),
    kind_case(
        "network_timeout",
        "30",
        "'30' is a string, not a whole number \\(write 30 without quotes\\)",
        "network-timeout-as-string",
    ),
    kind_case(
        "operation_timeout",
        86401,
        "86401 is out of range 1-86400$",
        "operation-timeout-too-long",
    ),
    pytest.param(
        Case(
            "operation_timeout",
            MASTER,
            "10 is shorter than network_timeout 30: an operation may wait that long for each "
            "connection$",
            data={"operation_timeout": 10},
        ),
        id="operation-timeout-below-network-timeout",
    ),
    # secure: True, False or unset, the same on every host
    kind_case(
        "secure",
        "yes",
        "'yes' is a string, not True or False \\(write True or False without quotes\\)",
        "secure-as-string",
    ),
    pytest.param(
        Case(
            "secure",
            MINION1,
            f"False differs from None on the master {MASTER}: a cluster-wide setting",
            group_data={"minions": "secure = False\n"},
        ),
        id="secure-only-on-the-minions",
    ),
    # Other strings
    kind_case(
        "admission_control",
        "NamespaceLifecycle, ServiceAccount",
        "is not a list of admission plugin names joined by ','",
        "admission-list-with-space",
    ),
    kind_case(
        "pod_infra_container_image",
        "registry.access.redhat.com/rhel7/pod-infrastructure latest",
        "is not an image reference like",
        "pod-infra-image-with-space",
    ),
    kind_case(
        "smoke_image",
        "docker.io/library/Nginx:1.27",
        "'docker.io/library/Nginx:1.27' is not an image reference like "
        "'docker.io/library/nginx:1.27'$",
        "smoke-image-upper-case",
    ),
    kind_case(
        "artifact_sha256", {5: "0" * 64}, "the pin 5 does not name a file$", "pin-not-a-name"
    ),
]


def write_inventory(tmp_path, case: Case) -> str:
    """The case's inventory file (the standard groups where it names none), relative to REPO."""
    text = case.inventory
    if text is None:
        text = MASTER_LINE + MINIONS_LINE
    else:
        if not re.search(r"^masters\b", text, re.M) and not re.search(r"^master\b", text, re.M):
            text = MASTER_LINE + text
        if not re.search(r"^minions\b", text, re.M):
            text += MINIONS_LINE
    (tmp_path / "inventory.py").write_text(text)
    if case.group_data:
        (tmp_path / "group_data").mkdir()
        for group, body in case.group_data.items():
            (tmp_path / "group_data" / f"{group}.py").write_text(body)
    return os.path.relpath(tmp_path / "inventory.py", REPO)


@pytest.fixture
def io_log(monkeypatch):
    """Every command run and file uploaded through the simulated connector."""
    log = []
    run, put = SimulatedConnector.run_shell_command, SimulatedConnector.put_file

    def run_shell_command(self, command, *args, **kwargs):
        log.append((self.host.name, "command", str(command)))
        return run(self, command, *args, **kwargs)

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        log.append((self.host.name, "upload", remote_filename))
        return put(self, filename_or_io, remote_filename, *args, **kwargs)

    monkeypatch.setattr(SimulatedConnector, "run_shell_command", run_shell_command)
    monkeypatch.setattr(SimulatedConnector, "put_file", put_file)
    return log


def expected_message(case: Case) -> str:
    where = "in the inventory" if case.where == INVENTORY else f"on {re.escape(case.where)}"
    return f"kubelab: setting '{re.escape(case.setting)}' {where}: .*{case.phrase}"


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    monkeypatch.setitem(
        fakehosts.RELEASE_FILES,
        ("debian", 11),
        'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="11"\n',
    )
    factories = case.machines or dict.fromkeys(HOSTS, centos7)
    machines = {name: factory() for name, factory in factories.items()}
    inventory = write_inventory(tmp_path, case)
    assert_refused(
        machines,
        kubelab.deploy_cluster,
        expected_message(case),
        io_log,
        inventory=inventory,
        data=case.data,
    )


def assert_refused(machines, deploy_func, pattern, io_log, **run):
    """``deploy_func`` stops with one line matching ``pattern`` before any host is touched."""
    before = copy.deepcopy(machines)
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, deploy_func, **run)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message
    assert re.match(pattern, message), message
    assert io_log == []
    assert machines == before


def refusal(setting: str, where: str, phrase: str) -> str:
    """The pattern of a SettingError for ``setting`` on ``where`` that says ``phrase``."""
    return f"kubelab: setting '{re.escape(setting)}' on {re.escape(where)}: .*{phrase}"


def test_corpus_is_large_enough():
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


def test_the_cli_prints_a_setting_error_as_its_one_line(tmp_path):
    """pyinfra's CLI prints a SettingError (a CliError too) without the file and line of the
    raise: just the kubelab line."""
    (tmp_path / "inventory.py").write_text('masters = ["@local"]\n')
    (tmp_path / "deploy.py").write_text("from kubelab import deploy_cluster\n\ndeploy_cluster()\n")
    pyinfra = Path(sys.executable).with_name("pyinfra")
    result = subprocess.run(
        [str(pyinfra), "inventory.py", "deploy.py", "-y"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 1
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    error = [line for line in output.splitlines() if "kubelab:" in line]
    assert error == [
        "--> pyinfra error: kubelab: setting 'minions' in the inventory: the group must hold at "
        "least one host, it holds none"
    ], output


def test_the_first_problem_found_is_reported(io_log):
    """A misspelt name comes before a wrong type, which comes before a bad network."""
    machines = {name: centos7() for name in HOSTS}
    data = {"flannel_network": "nonsense", "flannel_vni": "1", "flannel_bakend": "udp"}
    with pytest.raises(SettingError, match="'flannel_bakend' on .*did you mean 'flannel_backend'"):
        run_deploy(machines, kubelab.deploy_cluster, data=data)
    del data["flannel_bakend"]
    with pytest.raises(SettingError, match="'flannel_vni' on .*'1' is a string"):
        run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert io_log == []


def test_a_valid_inventory_passes_and_the_deploy_runs(tmp_path, io_log):
    case = Case(
        "",
        "",
        "",
        inventory=minions_with({"kube_address": "10.0.0.31", "node_name": "worker-1"}),
        group_data={"all": 'flannel_backend = "host-gw"\nflannel_subnet_len = 26\n'},
    )
    machines = {name: centos7() for name in HOSTS}
    run = run_deploy(machines, kubelab.deploy_cluster, inventory=write_inventory(tmp_path, case))
    assert run.changed_hosts() == HOSTS
    assert io_log


def test_image_archives_of_local_files_and_urls_pass(tmp_path, io_log):
    archive = tmp_path / "pause.tar"
    archive.write_bytes(b"an archive")
    data = {
        "image_archives": {
            "registry.k8s.io/pause:3.10.1": str(archive),
            "docker.io/library/nginx:1.27": "http://192.168.122.1:8080/lab/images/nginx.tar",
        },
        "kube_proxy_conntrack_max_per_core": 0,
    }
    machines = {name: centos7() for name in HOSTS}
    run = run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert run.changed_hosts() == HOSTS


def test_consumer_data_and_pyinfra_settings_are_not_flagged(io_log):
    machines = {name: centos7() for name in HOSTS}
    data = {
        "my_app_port": 8080,
        "my_app_name": "shop",
        "monitoring": True,
        "_sudo": True,
        "ssh_connect_retries": 2,
        "ssh_paramiko_connect_kwargs": {},
    }
    run = run_deploy(machines, kubelab.deploy_cluster, data=data)
    assert run.changed_hosts() == HOSTS


# SSH settings: checked only for hosts pyinfra reaches over ssh, which the simulated hosts are not.


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id_test"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    return str(key)


def validate_over_ssh(monkeypatch, data: dict):
    """validate_inventory() on the lab inventory with pyinfra's ssh connector, never connecting:
    facts are answered by simulated CentOS 7 hosts."""
    machines = {name: centos7() for name in HOSTS}
    monkeypatch.setattr(
        Host,
        "get_fact",
        lambda self, cls, *args, **kwargs: fakehosts.answer_fact(machines[self.name], cls, kwargs),
    )
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory(
            str(REPO / "inventory.py"),
            override_data=data,
            cwd=str(REPO),
            group_data_directories=[str(REPO / "group_data")],
        )
        for target in inventory:
            assert validation.uses_ssh(target)
            assert not target.connected
        with ctx_host.use(inventory.get_host(MASTER)):
            validation.validate_inventory()
    return inventory


SSH_CASES = [
    pytest.param({"ssh_port": 0}, "ssh_port", "0 is out of range 1-65535", id="ssh-port-zero"),
    pytest.param(
        {"ssh_port": 70000}, "ssh_port", "70000 is out of range 1-65535", id="ssh-port-too-large"
    ),
    pytest.param(
        {"ssh_port": "22"},
        "ssh_port",
        "'22' is a string, not a port number",
        id="ssh-port-as-string",
    ),
    pytest.param({"ssh_user": ""}, "ssh_user", "'' is not a user name", id="empty-ssh-user"),
    pytest.param(
        {"ssh_key": "/nonexistent/id_kubelab"},
        "ssh_key",
        "the key file '/nonexistent/id_kubelab' does not exist",
        id="missing-ssh-key",
    ),
    pytest.param({"ssh_key": "/tmp"}, "ssh_key", "'/tmp' is not a file", id="ssh-key-directory"),
    pytest.param(
        {"ssh_hostname": ""},
        "ssh_hostname",
        "'' is not a host name or address",
        id="empty-ssh-hostname",
    ),
    pytest.param(
        {"ssh_hostname": "kube_master.lan"},
        "ssh_hostname",
        "'kube_master.lan' is neither an IP address nor a DNS name: it has a label with a "
        "character other than letters, digits and '-' ('kube_master')",
        id="ssh-hostname-not-a-dns-name",
    ),
]


@pytest.mark.parametrize(("data", "name", "phrase"), SSH_CASES)
def test_bad_ssh_setting_stops_before_connecting(monkeypatch, ssh_key, data, name, phrase):
    with pytest.raises(SettingError) as raised:
        validate_over_ssh(monkeypatch, {"ssh_key": ssh_key, **data})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"kubelab: setting '{name}' on {MASTER}: {phrase}"), message


def test_valid_ssh_settings_pass(monkeypatch, ssh_key):
    inventory = validate_over_ssh(monkeypatch, {"ssh_key": ssh_key, "ssh_port": 2222})
    assert not any(target.connected for target in inventory)


@pytest.mark.parametrize(
    ("data", "name"),
    [({"apiserver_port": 22}, "apiserver_port"), ({"ssh_port": 2379}, "etcd_client_port")],
    ids=["apiserver-on-sshd", "sshd-on-etcd"],
)
def test_a_master_port_on_sshd_stops_before_connecting(monkeypatch, ssh_key, data, name):
    with pytest.raises(SettingError) as raised:
        validate_over_ssh(monkeypatch, {"ssh_key": ssh_key, **data})
    port = data.get("apiserver_port") or data["ssh_port"]
    assert str(raised.value) == (
        f"kubelab: setting '{name}' on {MASTER}: {port} is also the master's SSH port "
        "(ssh_port) (both listen on the master)"
    )


def test_ssh_checks_skip_hosts_of_other_connectors(monkeypatch):
    """The simulated hosts (a fake connector) are not reached over ssh: no ssh check fires."""
    state = State(check_for_changes=False)
    with ctx_state.use(state):
        inventory = make_inventory(
            str(REPO / "inventory.py"),
            override_data={"ssh_port": 0, "ssh_key": "/nonexistent/key"},
            cwd=str(REPO),
        )
    target = inventory.get_host(MASTER)
    target.connector_cls = SimulatedConnector
    assert not validation.uses_ssh(target)
    validation.check_ssh(target)  # raises nothing


# Day two: deploys/remove_node.py and deploys/reset.py stop with one line before any host is
# touched, on simulated Debian 12 hosts (CentOS 7 for the el7 refusals).


def api_down() -> fakehosts.Machine:
    machine = debian12()
    machine.kube_error = "The connection to the server 192.168.122.130:6443 was refused"
    return machine


def etcd_down() -> fakehosts.Machine:
    machine = debian12()
    machine.kube_nodes = set(MINIONS)
    machine.etcd_error = "context deadline exceeded"
    return machine


class DayTwoCase(NamedTuple):
    deploy: str  # "remove" (deploy_remove_node) or "reset" (deploy_reset)
    setting: str
    phrase: str  # what the message says after "on <master>: " (a regex)
    data: dict
    master: object = debian12  # the master's Machine factory (the minions: Debian 12)
    el7: bool = False  # every host CentOS 7


MINION_LIST = f"\\(its minions: {MINION1}, {MINION2}\\)"
DAY_TWO_CASES = (
    [
        pytest.param(DayTwoCase("remove", "remove_nodes", *args), id=case_id)
        for case_id, *args in (
            ("remove-unset", "unset: name the minions to remove, remove_nodes=NAME\\[,NAME\\]", {}),
            ("remove-empty", "'': name the minions to remove", {"remove_nodes": ""}),
            ("remove-only-commas", "' , ': name the minions to remove", {"remove_nodes": " , "}),
            (
                "remove-the-master",
                f"'{MASTER}' is the master: only minions can be removed \\(deploys/reset.py",
                {"remove_nodes": MASTER},
            ),
            (
                "remove-the-master-by-short-name",
                "'kubemaster' is the master: only minions can be removed",
                {"remove_nodes": "kubeminion1,kubemaster"},
            ),
            (
                "remove-an-unknown-host",
                f"'kubeminion9' is not a minion of the inventory {MINION_LIST}$",
                {"remove_nodes": "kubeminion9"},
            ),
            (
                "remove-a-known-and-an-unknown-host",
                "'kubeminion9.traininglab.com' is not a minion of the inventory",
                {"remove_nodes": "kubeminion1,kubeminion9.traininglab.com"},
            ),
            (
                "remove-by-node-name-prefix",
                "'kubeminion' is not a minion of the inventory",
                {"remove_nodes": "kubeminion"},
            ),
            (
                "remove-every-minion",
                f"{MINION1}, {MINION2} would remove every minion of the cluster, leaving no node "
                "for its pods: set remove_last_minion=True to do it anyway$",
                {"remove_nodes": f"kubeminion1, {MINION2}"},
            ),
            (
                "remove-every-minion-named-twice",
                "would remove every minion of the cluster",
                {"remove_nodes": f"kubeminion1,{MINION1},kubeminion2"},
            ),
            (
                "remove-every-minion-told-false",
                "would remove every minion of the cluster",
                {"remove_nodes": "kubeminion1,kubeminion2", "remove_last_minion": False},
            ),
            ("remove-a-number", "5 is not a name or a list of names", {"remove_nodes": 5}),
            (
                "remove-a-list-with-a-number",
                "\\['kubeminion1', 5\\] is not a name or a list of names",
                {"remove_nodes": ["kubeminion1", 5]},
            ),
            (
                "remove-api-down",
                "kubectl on the master cannot list the Nodes \\(The connection to the server "
                "192.168.122.130:6443 was refused\\): the apiserver must answer",
                {"remove_nodes": "kubeminion2"},
                api_down,
            ),
            (
                "remove-etcd-down",
                "etcdctl on the master cannot read flannel's leases under "
                "/atomic.io/network/subnets/ from etcd at https://192.168.122.130:2379 \\(context "
                "deadline exceeded; 5 s to connect, 10 s to answer\\)",
                {"remove_nodes": "kubeminion2"},
                etcd_down,
            ),
            (
                "remove-on-el7",
                "removing nodes is supported on the modern profile only \\(this cluster is el7",
                {"remove_nodes": "kubeminion2"},
                debian12,
                True,
            ),
        )
    ]
    + [
        pytest.param(DayTwoCase(deploy, setting, phrase, data), id=case_id)
        for case_id, deploy, setting, phrase, data in (
            (
                "remove-last-minion-as-string",
                "remove",
                "remove_last_minion",
                "'yes' is a string, not True or False",
                {"remove_nodes": "kubeminion1", "remove_last_minion": "yes"},
            ),
            (
                "drain-timeout-zero",
                "remove",
                "drain_timeout",
                "0 is out of range 1-86400",
                {"remove_nodes": "kubeminion1", "drain_timeout": 0},
            ),
            (
                "drain-timeout-as-string",
                "remove",
                "drain_timeout",
                "'300' is a string, not a whole number",
                {"remove_nodes": "kubeminion1", "drain_timeout": "300"},
            ),
            (
                "drain-force-as-string",
                "remove",
                "drain_force",
                "'true' is a string, not True or False",
                {"remove_nodes": "kubeminion1", "drain_force": "true"},
            ),
            (
                "remove-nodes-misspelt",
                "remove",
                "remove_node",
                "unknown setting, did you mean 'remove_nodes'\\?",
                {"remove_node": "kubeminion1"},
            ),
            (
                "reset-unset",
                "reset",
                "reset_cluster",
                "unset: a reset removes the cluster 'kubelab' from every host, its etcd data with "
                "it; confirm with reset_cluster=kubelab$",
                {},
            ),
            (
                "reset-another-name",
                "reset",
                "reset_cluster",
                "'kubelab2' is not this cluster's name 'kubelab' \\(cluster_name\\): nothing "
                "reset$",
                {"reset_cluster": "kubelab2"},
            ),
            (
                "reset-name-in-other-case",
                "reset",
                "reset_cluster",
                "'KubeLab' is not this cluster's name 'kubelab'",
                {"reset_cluster": "KubeLab"},
            ),
            (
                "reset-empty",
                "reset",
                "reset_cluster",
                "'' is not this cluster's name 'kubelab'",
                {"reset_cluster": ""},
            ),
            (
                "reset-as-bool",
                "reset",
                "reset_cluster",
                "True is not a string",
                {"reset_cluster": True},
            ),
            (
                "reset-of-the-default-name-on-a-renamed-cluster",
                "reset",
                "reset_cluster",
                "'kubelab' is not this cluster's name 'lab2'",
                {"reset_cluster": "kubelab", "cluster_name": "lab2"},
            ),
            (
                "reset-pki-another-name",
                "reset",
                "reset_pki",
                "'yes' is not this cluster's name 'kubelab' \\(cluster_name\\): set "
                "reset_pki=kubelab to delete the local PKI too, or leave it unset to keep it$",
                {"reset_cluster": "kubelab", "reset_pki": "yes"},
            ),
            (
                "reset-pki-as-bool",
                "reset",
                "reset_pki",
                "True is not a string",
                {"reset_cluster": "kubelab", "reset_pki": True},
            ),
            (
                "reset-misspelt",
                "reset",
                "reset_clsuter",
                "unknown setting, did you mean 'reset_cluster'\\?",
                {"reset_clsuter": "kubelab"},
            ),
        )
    ]
    + [
        pytest.param(
            DayTwoCase(
                "reset",
                "reset_cluster",
                "resetting is supported on the modern profile only \\(this cluster is el7",
                {"reset_cluster": "kubelab"},
                el7=True,
            ),
            id="reset-on-el7",
        )
    ]
)


@pytest.mark.parametrize("case", DAY_TWO_CASES)
def test_day_two_bad_input_stops_before_any_host_is_touched(case, io_log):
    if case.el7:
        machines = {name: centos7() for name in HOSTS}
    else:
        machines = {name: debian12() for name in MINIONS}
        machines[MASTER] = case.master()
    deploy = kubelab.deploy_remove_node if case.deploy == "remove" else kubelab.deploy_reset
    pattern = refusal(case.setting, MASTER, case.phrase)
    assert_refused(machines, deploy, pattern, io_log, data=case.data)


def test_day_two_corpus_is_large_enough():
    assert len(DAY_TWO_CASES) >= 30


# Upgrading: deploys/upgrade.py stops with one line before any host is touched, on simulated
# Debian 12 hosts that run the releases each case names (CentOS 7 for the el7 refusal).


def running_at(api="v1.34.4", kubelets=("v1.34.4", "v1.34.4"), etcd="v3.6.14", runtime="v2.2.9"):
    """Machines whose master runs kube-apiserver ``api`` and holds etcd ``etcd``, whose minions
    run the ``kubelets`` and containerd ``runtime``, all registered as Nodes."""
    machines = {name: debian12() for name in HOSTS}
    master = machines[MASTER]
    binaries = {
        "/usr/local/bin/etcd": f"https://github.com/etcd-io/etcd/releases/download/{etcd}/etcd",
        "/usr/local/bin/kube-apiserver": f"https://dl.k8s.io/{api}/bin/linux/amd64/x",
    }
    for path, url in binaries.items():
        master.files[path] = fakehosts.FileState(url.encode(), 0o755)
    master.units["kube-apiserver.service"] = {"active": True, "enabled": True}
    master.started["kube-apiserver.service"] = binaries["/usr/local/bin/kube-apiserver"].encode()
    master.kube_nodes = set(MINIONS)
    for name, kubelet in zip(MINIONS, kubelets, strict=True):
        minion = machines[name]
        for unit, url in (
            ("kubelet.service", f"https://dl.k8s.io/{kubelet}/bin/linux/amd64/kubelet"),
            ("containerd.service", f"https://github.com/c/releases/download/{runtime}/c.tgz"),
        ):
            minion.units[unit] = {"active": True, "enabled": True}
            minion.started[unit] = url.encode()
    return machines


class UpgradeCase(NamedTuple):
    setting: str
    where: str  # the host the line names
    phrase: str  # what the message says after "on <host>: " (a regex)
    data: dict
    running: dict  # running_at's arguments
    el7: bool = False


UPGRADE_CASES = [
    pytest.param(UpgradeCase(*args), id=case_id)
    for case_id, *args in (
        (
            "skipped-minor",
            "kube_version",
            MASTER,
            "v1.33.5 -> v1.35.8 skips a minor version of the apiserver: upgrade one minor at a "
            "time \\(1.33 -> 1.34 first\\)$",
            {},
            {"api": "v1.33.5", "kubelets": ("v1.33.5", "v1.33.5")},
        ),
        (
            "skipped-minor-asked",
            "kube_version",
            MASTER,
            "v1.34.4 -> v1.36.1 skips a minor version",
            {"kube_version": "v1.36.1"},
            {},
        ),
        (
            "patch-downgrade",
            "kube_version",
            MASTER,
            "v1.35.8 is older than v1.35.9, which the apiserver runs: a downgrade \\(set "
            "upgrade_allow_downgrade=True to install an older patch release\\)$",
            {},
            {"api": "v1.35.9", "kubelets": ("v1.35.9", "v1.35.9")},
        ),
        (
            "minor-downgrade",
            "kube_version",
            MASTER,
            "v1.35.8 is older than v1.36.0, which the apiserver runs: a downgrade",
            {},
            {"api": "v1.36.0", "kubelets": ("v1.35.8", "v1.35.8")},
        ),
        (
            "minor-downgrade-allowed",
            "kube_version",
            MASTER,
            "v1.35.8 would take the apiserver back a minor version from v1.36.0 \\(1.36 -> "
            "1.35\\), which upstream does not support even with upgrade_allow_downgrade",
            {"upgrade_allow_downgrade": True},
            {"api": "v1.36.0", "kubelets": ("v1.35.8", "v1.35.8")},
        ),
        (
            "major-change",
            "kube_version",
            MASTER,
            "v1.35.8 -> v2.0.0 changes the major version of the apiserver: not supported$",
            {"kube_version": "v2.0.0"},
            {"api": "v1.35.8", "kubelets": ("v1.35.8", "v1.35.8")},
        ),
        (
            "kubelet-newer-than-apiserver",
            "kube_version",
            MINION2,
            f"the kubelet of Node {MINION2} is v1.36.0, newer than the apiserver would be "
            "\\(v1.35.8\\): the version skew policy allows no kubelet newer than the apiserver$",
            {},
            {"api": "v1.35.8", "kubelets": ("v1.35.8", "v1.36.0")},
        ),
        (
            "kubelet-patch-newer",
            "kube_version",
            MINION1,
            f"v1.35.8 is older than v1.35.9, which the kubelet of Node {MINION1} runs: a downgrade",
            {},
            {"api": "v1.35.8", "kubelets": ("v1.35.9", "v1.35.8")},
        ),
        (
            "kubelet-too-old",
            "kube_version",
            MINION1,
            f"the kubelet of Node {MINION1} is v1.31.2, more than 3 minor versions older than "
            "v1.35.8: the version skew policy allows a kubelet at most 3 minors behind",
            {},
            {"api": "v1.34.4", "kubelets": ("v1.31.2", "v1.34.4")},
        ),
        (
            "etcd-skipped-minor",
            "etcd_version",
            MASTER,
            "v3.4.30 -> v3.6.14 skips a minor version of etcd: upgrade one minor at a time "
            "\\(3.4 -> 3.5 first\\)$",
            {},
            {"etcd": "v3.4.30"},
        ),
        (
            "etcd-downgrade",
            "etcd_version",
            MASTER,
            "v3.6.14 is older than v3.6.15, which etcd runs: a downgrade",
            {},
            {"etcd": "v3.6.15"},
        ),
        (
            "etcd-minor-downgrade-allowed",
            "etcd_version",
            MASTER,
            "back a minor version from v3.6.14 \\(3.6 -> 3.5\\)",
            {"etcd_version": "v3.5.21", "upgrade_allow_downgrade": True},
            {},
        ),
        (
            "containerd-downgrade",
            "containerd_version",
            MINION1,
            f"v2.2.9 is older than v2.2.10, which containerd on Node {MINION1} runs: a downgrade",
            {},
            {"runtime": "v2.2.10"},
        ),
        (
            "allow-downgrade-as-string",
            "upgrade_allow_downgrade",
            MASTER,
            "'yes' is a string, not True or False",
            {"upgrade_allow_downgrade": "yes"},
            {},
        ),
        (
            "upgrade-timeout-zero",
            "upgrade_timeout",
            MASTER,
            "0 is out of range 1-86400",
            {"upgrade_timeout": 0},
            {},
        ),
        (
            "upgrade-timeout-as-string",
            "upgrade_timeout",
            MASTER,
            "'300' is a string, not a whole number",
            {"upgrade_timeout": "300"},
            {},
        ),
        (
            "allow-downgrade-misspelt",
            "upgrade_allow_downgrades",
            MASTER,
            "unknown setting, did you mean 'upgrade_allow_downgrade'\\?",
            {"upgrade_allow_downgrades": True},
            {},
        ),
        (
            "kube-version-not-a-tag",
            "kube_version",
            MASTER,
            "'1.35.8' is not a release tag like 'v1.35.8' \\(did you mean 'v1.35.8'\\?\\)",
            {"kube_version": "1.35.8"},
            {},
        ),
    )
]


def api_down_cluster():
    machines = running_at()
    machines[MASTER].kube_error = "The connection to the server 192.168.122.130:6443 was refused"
    return machines


def node_missing_cluster():
    machines = running_at()
    machines[MASTER].kube_nodes = {MINION1}
    return machines


def no_etcd_cluster():
    machines = running_at()
    del machines[MASTER].files["/usr/local/bin/etcd"]
    return machines


UPGRADE_SPECIAL_CASES = [
    pytest.param(
        "kube_version",
        MASTER,
        "kubectl on the master cannot read the apiserver's /version and the Nodes \\(The "
        "connection to the server 192.168.122.130:6443 was refused\\): the apiserver must answer",
        api_down_cluster,
        id="api-down",
    ),
    pytest.param(
        "kube_version",
        MINION2,
        f"the cluster has no Node '{MINION2}' \\(its Nodes: {MINION1}\\): build the cluster with "
        "deploys/cluster.py before upgrading it$",
        node_missing_cluster,
        id="node-missing",
    ),
    pytest.param(
        "etcd_version",
        MASTER,
        "/usr/local/bin/etcd --version on the master names no version",
        no_etcd_cluster,
        id="no-etcd-binary",
    ),
    pytest.param(
        "kube_version",
        MASTER,
        "upgrading is supported on the modern profile only \\(this cluster is el7",
        lambda: {name: centos7() for name in HOSTS},
        id="upgrade-on-el7",
    ),
]


def check_upgrade_refused(machines, data, setting, where, phrase, io_log, inventory=None):
    run = {"data": data, **({"inventory": inventory} if inventory else {})}
    assert_refused(machines, kubelab.deploy_upgrade, refusal(setting, where, phrase), io_log, **run)


@pytest.mark.parametrize("case", UPGRADE_CASES)
def test_upgrade_bad_input_stops_before_any_host_is_touched(case, io_log):
    check_upgrade_refused(
        running_at(**case.running), case.data, case.setting, case.where, case.phrase, io_log
    )


@pytest.mark.parametrize(("setting", "where", "phrase", "machines"), UPGRADE_SPECIAL_CASES)
def test_upgrade_refuses_a_cluster_it_cannot_read(setting, where, phrase, machines, io_log):
    check_upgrade_refused(machines(), {}, setting, where, phrase, io_log)


def test_upgrade_refuses_minions_at_another_kube_version(tmp_path, io_log):
    case = Case(
        "kube_version",
        MINION2,
        "",
        inventory=MASTER_LINE + minions_with({}, {"kube_version": "v1.35.7"}),
    )
    check_upgrade_refused(
        running_at(),
        {},
        "kube_version",
        MINION2,
        f"'v1.35.7' differs from 'v1.35.8' on the master {MASTER}: an upgrade takes every host "
        "to one Kubernetes release$",
        io_log,
        inventory=write_inventory(tmp_path, case),
    )


def test_upgrade_corpus_is_large_enough():
    assert len(UPGRADE_CASES) + len(UPGRADE_SPECIAL_CASES) + 1 >= 20
