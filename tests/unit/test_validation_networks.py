"""Bad networks and ports stop the run with one line before any host is touched: the pod and
Service networks (CIDRs, overlaps, room for every host), the master's listening ports.
"""

import pytest
from conftest import HOSTS, MASTER
from fakehosts import debian12
from refusal_cases import Case, kind_case, refuse_case

CASES = [
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
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)
