"""Each setting's value checked for its kind: names, URLs, versions, paths, images, timeouts.

Part of validation (which checks types, addresses, networks, profiles and ports): every check
reads data only, and the first problem stops the run with one line (``fail``). Release tags and
image references are the settings declared with that ``form`` (setting_spec.Setting).
"""

import difflib
import ipaddress
import os
import re

from ..engine import images
from . import topology
from .api_checks import check_api_settings
from .defaults import DEFAULTS, SETTINGS, fail, setting
from .kinds import (
    ADMISSION_LIST,
    FLANNEL_CNI_VERSION,
    VERSION,
    dns_problem,
    is_ip,
    node_name_problem,
    remote_path_problem,
    url_problem,
)

# Backend types both flannel 0.7.1 (el7) and 0.28 (modern) implement for hosts on one network.
FLANNEL_BACKENDS = ("vxlan", "host-gw", "udp")
EXAMPLE = "registry.k8s.io/pause:3.10.1"  # an image reference, for messages
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _did_you_mean(value, choices) -> str:
    close = difflib.get_close_matches(str(value).lower(), choices, n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


def forms(form: str) -> list[tuple[str, object]]:
    """The settings declared with ``form`` (setting_spec.Setting), with their defaults."""
    return [(item.name, item.default) for item in SETTINGS if item.form == form]


def check_values(target):
    check_names(target)
    check_versions(target)
    check_sources(target)
    check_images(target)
    check_files(target)
    check_timeouts(target)
    check_cluster_details(target)
    check_api_settings(target)


def check_names(target):
    """The host's own name, and the names the cluster gives things: DNS names."""
    if not is_ip(target.name) and dns_problem(target.name):
        fail(
            "name",
            target,
            f"the host's name {target.name!r} is not a DNS name: it {dns_problem(target.name)} "
            "(the cluster writes it into /etc/hosts and certificates; name the host by its "
            "FQDN or address)",
        )
    node = target.data.get("node_name")
    if node and node_name_problem(node):
        fail(
            "node_name",
            target,
            f"{node!r} is not a Kubernetes node name (a DNS name in lower case): it "
            f"{node_name_problem(node)}",
        )
    if not node and topology.is_minion(target) and node_name_problem(target.name):
        fail(
            "node_name",
            target,
            f"unset, and the host's name {target.name!r} is no Kubernetes node name: it "
            f"{node_name_problem(target.name)}; set node_name",
        )
    name = setting("cluster_name", target)
    if dns_problem(name):
        fail(
            "cluster_name",
            target,
            f"{name!r} is not a DNS name: it {dns_problem(name)} (it names the cluster in "
            "kubeconfigs and its CA, and the PKI directory)",
        )
    domain = setting("cluster_domain", target)
    if node_name_problem(domain):
        fail(
            "cluster_domain",
            target,
            f"{domain!r} is not a DNS domain in lower case like 'cluster.local': it "
            f"{node_name_problem(domain)}",
        )


def check_versions(target):
    """Release tags: v and a semantic version (flannel's CNI plugin: its -flannelN suffix)."""
    for name, default in forms("release"):
        value = setting(name, target)
        pattern = FLANNEL_CNI_VERSION if name == "flannel_cni_plugin_version" else VERSION
        if not pattern.fullmatch(value):
            hint = (
                f"did you mean 'v{value}'?"
                if pattern.fullmatch(f"v{value}")
                else "v, then major.minor.patch"
            )
            fail(name, target, f"{value!r} is not a release tag like {default!r} ({hint})")


def check_sources(target):
    """Where artifacts come from: an http(s) mirror, sha256 pins."""
    mirror = setting("artifact_mirror", target)
    if mirror is not None and url_problem(mirror):
        fail(
            "artifact_mirror",
            target,
            f"{mirror!r} is not an http(s) URL like 'http://mirror:8080': it {url_problem(mirror)}",
        )
    for file_name, digest in setting("artifact_sha256", target).items():
        if not isinstance(file_name, str) or not file_name.strip():
            fail("artifact_sha256", target, f"the pin {file_name!r} does not name a file")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            fail(
                "artifact_sha256",
                target,
                f"the pin for {file_name!r} is not a sha256 digest (64 hex digits): {digest!r}",
            )


def check_images(target):
    for name, example in forms("image"):
        value = setting(name, target)
        if not images.REFERENCE.fullmatch(value):
            fail(name, target, f"{value!r} is not an image reference like {example!r}")
    check_image_archives(target)


def check_image_archives(target):
    """Each entry: an image reference -> a local file or an http(s) URL."""
    for reference, archive in setting("image_archives", target).items():
        if not isinstance(reference, str) or not images.REFERENCE.fullmatch(reference):
            fail(
                "image_archives",
                target,
                f"{reference!r} is not an image reference like {EXAMPLE!r}",
            )
        what = f"the archive of {reference!r}"
        if not isinstance(archive, (str, os.PathLike)) or not str(archive).strip():
            fail(
                "image_archives",
                target,
                f"{what} is {archive!r}, not a file name or an http(s) URL",
            )
        archive = str(archive)
        if URL_SCHEME.match(archive):
            if url_problem(archive):
                fail(
                    "image_archives",
                    target,
                    f"{what}, {archive!r}, is not an http(s) URL: it {url_problem(archive)}",
                )
            continue
        path = images.local_path(archive)
        if not path.exists():
            fail("image_archives", target, f"{what}, {archive!r}, does not exist on this machine")
        if not path.is_file():
            fail("image_archives", target, f"{what}, {archive!r}, is not a file")
        if not os.access(path, os.R_OK):
            fail("image_archives", target, f"{what}, {archive!r}, is not readable by this user")


def check_files(target):
    """Paths: the key file on the master (absolute), the PKI directory here."""
    key_file = setting("service_account_key_file", target)
    if remote_path_problem(key_file):
        fail(
            "service_account_key_file",
            target,
            f"{key_file!r} is not a file path on the master like "
            f"{DEFAULTS['service_account_key_file']!r}: it {remote_path_problem(key_file)}",
        )
    pki_dir = setting("pki_dir", target)
    if not pki_dir.strip():
        fail("pki_dir", target, "'' is not a directory (a path on this machine)")
    try:
        pki_dir.format(cluster_name="x")
    except (KeyError, IndexError, ValueError):
        fail(
            "pki_dir", target, f"{pki_dir!r} has a {{...}} placeholder other than {{cluster_name}}"
        )


def check_timeouts(target):
    wait, total = setting("network_timeout", target), setting("operation_timeout", target)
    if total < wait:
        fail(
            "operation_timeout",
            target,
            f"{total} is shorter than network_timeout {wait}: an operation may wait that long "
            "for each connection",
        )


def check_cluster_details(target):
    backend = setting("flannel_backend", target)
    if backend not in FLANNEL_BACKENDS:
        fail(
            "flannel_backend",
            target,
            f"{backend!r} is not a flannel backend kubelab supports "
            f"({', '.join(FLANNEL_BACKENDS)}){_did_you_mean(backend, FLANNEL_BACKENDS)}",
        )
    prefix = setting("flannel_etcd_prefix", target)
    if not prefix.startswith("/") or re.search(r"\s", prefix) or prefix.rstrip("/") == "":
        fail(
            "flannel_etcd_prefix",
            target,
            f"{prefix!r} is not an etcd key prefix like '/atomic.io/network'",
        )
    bind = setting("apiserver_insecure_bind_address", target)
    try:
        ipaddress.IPv4Address(bind)
    except ValueError:
        fail("apiserver_insecure_bind_address", target, f"{bind!r} is not an IPv4 address")
    plugins = setting("admission_control", target)
    if not ADMISSION_LIST.fullmatch(plugins):
        fail(
            "admission_control",
            target,
            f"{plugins!r} is not a list of admission plugin names joined by ',' like "
            "'NamespaceLifecycle,ServiceAccount'",
        )
