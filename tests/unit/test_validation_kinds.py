"""Every value checked for what it is, each kind with cases of its own: DNS names, URLs,
versions, paths, timeouts, secure, other strings; one line before any host is touched.
"""

import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import centos7, debian12
from refusal_cases import Case, hosts_line, kind_case, minions_with, refuse_case

MINION1, MINION2 = MINIONS

CASES = [
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


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)
