"""Bad values stop the run with one line before any host is touched: flannel's backend and etcd
prefix, images and their archives, artifact sources, names, paths, timeouts.
"""

import pytest
from conftest import HOSTS, MASTER, MINIONS
from fakehosts import centos7, run_deploy
from refusal_cases import Case, minions_with, refuse_case

import kubelab

MINION1 = MINIONS[0]

CASES = [
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
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_before_any_host_is_touched(case, tmp_path, monkeypatch, io_log):
    refuse_case(case, tmp_path, monkeypatch, io_log)


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
