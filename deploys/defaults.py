"""Every kubelab setting, its default and what it means: the one place defaults live.

Any of them can be overridden like any pyinfra data: in the inventory, in group_data/, or with
``--data name=value`` on the command line. ``DEFAULTS`` is what each ``@deploy`` passes to pyinfra
as ``data_defaults``; the README's settings table is generated from ``SETTINGS``.
"""

from typing import Any, NamedTuple

from pyinfra.api.exceptions import PyinfraError
from pyinfra_cli.exceptions import CliError


class Setting(NamedTuple):
    name: str
    default: Any
    doc: str
    profiles: str = "both"  # "both", "el7" or "modern"


SETTINGS = [
    # The cluster
    Setting("profile", None, "`el7` or `modern`; unset: chosen from each host's OS facts."),
    Setting("cluster_name", "kubelab", "Name of the cluster (kubeconfigs, local PKI directory)."),
    Setting(
        "kube_address",
        None,
        "Per host: the IP address the cluster uses for the host. Unset: `ssh_hostname`.",
    ),
    Setting(
        "node_name",
        None,
        "Per minion: the name the kubelet registers (`--hostname-override`). Unset: the "
        "inventory name.",
    ),
    Setting(
        "manage_etc_hosts",
        False,
        "No DNS for the cluster's names: write every host's FQDN and short name into "
        "/etc/hosts on every host.",
    ),
    Setting(
        "secure",
        None,
        "etcd serves TLS and answers only clients with a certificate of its own CA "
        "(apiserver, flanneld); el7: the apiserver's plain HTTP port listens on localhost only, "
        "minions use its TLS port with client certificates. Off: the reference setup's open "
        "etcd and (el7) open API port. Unset: on for modern, off for el7 (each run then warns "
        "of what is open); True or False sets it for both.",
    ),
    Setting("etcd_client_port", 2379, "etcd client port on the master."),
    Setting("etcd_peer_port", 2380, "etcd peer port (listens on localhost only: one member)."),
    Setting(
        "service_cluster_ip_range",
        "10.254.0.0/16",
        "Service cluster IPs (`--service-cluster-ip-range`).",
    ),
    # flannel
    Setting("flannel_network", "10.20.0.0/16", "The pod overlay network flannel leases from."),
    Setting("flannel_subnet_len", 24, "Prefix length of each host's flannel subnet."),
    Setting("flannel_backend", "vxlan", "flannel backend type."),
    Setting("flannel_vni", 1, "VXLAN network identifier of the flannel backend."),
    Setting(
        "flannel_etcd_prefix",
        "/atomic.io/network",
        "etcd prefix of flannel's config (`<prefix>/config`) and leases.",
    ),
    # el7: the CentOS 7 packages
    Setting("kube_log_level", 0, "`--v` of every kube service (KUBE_LOG_LEVEL).", "el7"),
    Setting(
        "kube_allow_privileged",
        False,
        "Allow privileged containers (KUBE_ALLOW_PRIV).",
        "el7",
    ),
    Setting("apiserver_insecure_port", 8080, "The apiserver's plain HTTP port.", "el7"),
    Setting(
        "apiserver_insecure_bind_address",
        "0.0.0.0",
        "Where the apiserver's plain HTTP port listens. Minions reach the API through it, as "
        "in the reference setup: anyone who reaches this port is cluster admin.",
        "el7",
    ),
    Setting(
        "admission_control",
        "NamespaceLifecycle,NamespaceExists,LimitRanger,SecurityContextDeny,ServiceAccount,"
        "ResourceQuota",
        "The apiserver's `--admission-control` list (the package's own default).",
        "el7",
    ),
    Setting(
        "pod_infra_container_image",
        "registry.access.redhat.com/rhel7/pod-infrastructure:latest",
        "The kubelet's pod infrastructure image (the package's own default).",
        "el7",
    ),
    Setting(
        "service_account_key_file",
        "/etc/kubernetes/serviceaccount.key",
        "The service-account signing key on the master (RSA 2048, generated once).",
        "el7",
    ),
    # modern: upstream binaries
    Setting("kube_version", "v1.35.8", "Kubernetes release of the binaries.", "modern"),
    Setting("flannel_version", "v0.28.9", "flannel release.", "modern"),
    Setting(
        "etcd_version",
        "v3.6.14",
        "etcd release, on every modern master (distributions package none that Kubernetes "
        "1.35 supports), run as the system user `etcd` by kubelab's unit.",
        "modern",
    ),
    Setting("cni_plugins_version", "v1.7.1", "containernetworking/plugins release.", "modern"),
    Setting(
        "containerd_version",
        "v2.2.9",
        "containerd release, on every modern minion (Kubernetes 1.35 supports 2.2.0+, 2.1.5+, "
        "1.7.28+; Debian 12 packages 1.6, Debian 13 1.7.24), run by kubelab's unit.",
        "modern",
    ),
    Setting("runc_version", "v1.3.6", "runc release, with containerd_version.", "modern"),
    Setting(
        "flannel_cni_plugin_version",
        "v1.9.1-flannel3",
        "flannel-io/cni-plugin release (the `flannel` CNI plugin).",
        "modern",
    ),
    Setting(
        "artifact_mirror",
        None,
        "Base URL of a mirror holding the artifacts under `<host>/<path>` of their upstream "
        "URL (what `wget -x` saves). Unset: download from upstream.",
        "modern",
    ),
    Setting(
        "artifact_sha256",
        {},
        "Pinned sha256 per artifact file name (e.g. `{'flanneld-amd64': '...'}`), or per file "
        "name and release (`{'kubelet@v1.35.8': '...'}`, preferred to the plain name: several "
        "releases' files share a name); without a pin the checksum upstream publishes beside "
        "the artifact is used (flannel publishes none: pin it, or use a mirror).",
        "modern",
    ),
    Setting(
        "pki_dir",
        "~/.kubelab/{cluster_name}/pki",
        "Local directory (mode 0700) holding the cluster's CA, certificates and keys "
        "(modern, and el7 with `secure`); kept across runs, it is the cluster's identity.",
    ),
    Setting("apiserver_port", 6443, "The apiserver's HTTPS port (el7: with `secure`)."),
    Setting("cluster_domain", "cluster.local", "DNS domain of the cluster's services.", "modern"),
    # modern: the container runtime and kube-proxy
    Setting(
        "sandbox_image",
        "registry.k8s.io/pause:3.10.1",
        "containerd's pinned sandbox (pause) image, the one kubeadm 1.35 pins; without a "
        "registry, import it with `image_archives`.",
        "modern",
    ),
    Setting(
        "image_archives",
        {},
        "Images for air-gapped sites, `{reference: archive}`: each minion imports every image "
        "its containerd does not hold yet (pinned, linux/amd64) from the archive, a path on "
        "the machine running pyinfra (uploaded) or an http(s) URL (fetched with curl).",
        "modern",
    ),
    Setting(
        "kube_proxy_conntrack_max_per_core",
        None,
        "kube-proxy's `conntrack.maxPerCore`. Unset: kube-proxy's own default; 0: leave "
        "nf_conntrack_max alone (where kube-proxy runs in a container whose /proc/sys is not "
        "the host's).",
        "modern",
    ),
    Setting(
        "containerd_restrict_oom_score_adj",
        False,
        "containerd keeps every container's oom_score_adj at or above its own (for hosts that "
        "may not lower it, such as containers without CAP_SYS_RESOURCE: runc fails there).",
        "modern",
    ),
    # modern: add-ons, applied from the master (deploys/cluster.py)
    Setting(
        "cluster_dns_ip",
        None,
        "The cluster DNS service's address (the `kube-dns` Service, every kubelet's "
        "`clusterDNS`). Unset: the 10th address of `service_cluster_ip_range` (kubeadm's rule).",
        "modern",
    ),
    Setting(
        "dns_image",
        "registry.k8s.io/coredns/coredns:v1.13.1",
        "CoreDNS's image, the release kubeadm 1.35 pins (without a registry, import it with "
        "`image_archives`).",
        "modern",
    ),
    Setting("dns_replicas", 2, "CoreDNS replicas, spread over the minions.", "modern"),
    Setting(
        "dns_upstream",
        None,
        "Where CoreDNS forwards names outside `cluster_domain`: resolver addresses "
        "(`IP` or `IP:port`) separated by commas. Unset: the minions' /etc/resolv.conf, when "
        "every minion has a nameserver there that is not a loopback address; else no "
        "forwarding (those names fail at once; a warning says so).",
        "modern",
    ),
    Setting(
        "metrics_server",
        True,
        "metrics-server behind the apiserver's aggregation layer (`kubectl top`, the "
        "HorizontalPodAutoscaler); it verifies the kubelets' serving certificates.",
        "modern",
    ),
    Setting(
        "metrics_server_image",
        "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
        "metrics-server's image (without a registry, import it with `image_archives`).",
        "modern",
    ),
    Setting(
        "addons_timeout",
        120,
        "Seconds the master waits for the apiserver to accept a request before it applies the "
        "add-ons' manifests or rewrites the Secrets (each try bounded by kubectl's "
        "`--request-timeout`).",
        "modern",
    ),
    Setting(
        "secrets_encryption",
        True,
        "Secrets encrypted at rest in etcd (aescbc; the key, made once, in `pki_dir`: "
        "`secrets-encryption.keys`). Turned on or off for a running cluster, the Secrets "
        "already stored are rewritten. Off on a cluster whose key exists: Secrets are written "
        "in plaintext and the key is kept to read those still encrypted.",
        "modern",
    ),
    # Bounded time
    Setting(
        "network_timeout",
        30,
        "Seconds any remote fetch may wait for a connection or go without data before it "
        "fails: apt (`Acquire::http(s)::Timeout`, 2 retries), yum (`timeout`, 2 retries), "
        "curl (`--connect-timeout`, `--speed-time` below 1 KiB/s, 3 retries), the checksums "
        "fetched on this machine.",
    ),
    Setting(
        "operation_timeout",
        900,
        "Seconds one package operation (apt, yum: pyinfra's `_timeout`) or one download "
        "(curl's `--max-time`, and no retry starts after it) may take in all.",
    ),
    # The smoke test (deploys/smoke.py)
    Setting(
        "smoke_image",
        "docker.io/library/nginx:1.27",
        "Image of the smoke test's pods, nginx (`imagePullPolicy: IfNotPresent`: without a "
        "registry, the minions must hold it, e.g. through `image_archives`).",
    ),
    Setting(
        "smoke_timeout",
        300,
        "Seconds each wait of the smoke test may take (nodes Ready, pods Running, answers) "
        "before it fails naming what is not ready.",
    ),
    Setting(
        "smoke_cleanup",
        False,
        "At the end of the smoke test, delete what it created: its namespace `kubelab-smoke` "
        "(where all its objects live) and its manifests. Off: they stay, and a re-run reuses "
        "them.",
    ),
    # Day two: removing minions (deploys/remove_node.py) and resetting (deploys/reset.py)
    Setting(
        "remove_nodes",
        None,
        "deploys/remove_node.py: the minions to remove, `NAME[,NAME]` (inventory name or short "
        "name): drained, their Node deleted, the hosts cleaned of everything kubelab put there, "
        "their flannel leases and their certificates in the local PKI deleted.",
        "modern",
    ),
    Setting(
        "remove_last_minion",
        False,
        "deploys/remove_node.py may remove every minion of the inventory (the cluster is then "
        "left without a node for its pods).",
        "modern",
    ),
    Setting(
        "drain_timeout",
        300,
        "Seconds `kubectl drain` of a removed or upgraded minion may take (`--timeout`) before "
        "the run stops naming the pods that were not evicted.",
        "modern",
    ),
    Setting(
        "drain_force",
        False,
        "Drain a removed or upgraded minion even of pods that cannot be evicted: kubectl "
        "drain's `--force` "
        "(pods without a controller) and `--disable-eviction` (deleted past their "
        "PodDisruptionBudget).",
        "modern",
    ),
    # Day two: upgrading (deploys/upgrade.py)
    Setting(
        "upgrade_allow_downgrade",
        False,
        "deploys/upgrade.py may install an older patch release than the one running (of "
        "Kubernetes, etcd or containerd). A minor version is never downgraded (upstream "
        "supports none): restore the etcd snapshot the upgrade saved instead.",
        "modern",
    ),
    Setting(
        "upgrade_timeout",
        300,
        "Seconds each wait of deploys/upgrade.py may take: the apiserver's `/readyz` after the "
        "master's upgrade, each upgraded minion's Node Ready at the new kubelet version.",
        "modern",
    ),
    Setting(
        "reset_cluster",
        None,
        "deploys/reset.py runs only when this equals `cluster_name`: it then removes from every "
        "host everything kubelab put there (services, units, binaries, configuration, etcd's "
        "data, the kubelet's and containerd's state, CNI, interfaces, iptables chains).",
        "modern",
    ),
    Setting(
        "reset_pki",
        None,
        "With deploys/reset.py: set to `cluster_name` to delete the local PKI (`pki_dir`) and "
        "the admin kubeconfig beside it too. Unset: they stay, and a rebuild reuses the CA.",
        "modern",
    ),
]

DEFAULTS = {setting.name: setting.default for setting in SETTINGS}


def setting(name: str, target=None):
    """A setting's value for ``target`` (default: the current host), falling back to its default."""
    from pyinfra import host

    return (host if target is None else target).data.get(name, DEFAULTS[name])


def secure_for(value, profile: str) -> bool:
    """Whether ``secure`` is on, given its value and the cluster's profile: True or False as
    set, unset (None) on for modern and off for el7 (the reference setup)."""
    return profile == "modern" if value is None else bool(value)


class SettingError(PyinfraError, CliError):
    """A setting or the inventory is wrong; raised before any operation changes a host.

    Also a CliError of pyinfra's CLI, which prints it as its one line (``--> pyinfra error:
    kubelab: setting ...``) rather than as a pyinfra error with the file and line of the
    ``raise``."""


def setting_error(name: str, target, problem: str) -> SettingError:
    where = f"on {target.name}" if target is not None else "in the inventory"
    return SettingError(f"kubelab: setting '{name}' {where}: {problem}")


def fail(name: str, target, problem: str):
    """Stop with one line; a value holding a line break cannot split it."""
    raise setting_error(name, target, problem.replace("\r", "\\r").replace("\n", "\\n"))


def settings_table() -> str:
    """The README's table of settings (tests check the README holds exactly this)."""
    rows = ["| setting | profiles | default | meaning |", "|---|---|---|---|"]
    for item in SETTINGS:
        default = "unset" if item.default is None else f"`{item.default!r}`"
        rows.append(f"| `{item.name}` | {item.profiles} | {default} | {item.doc} |")
    return "\n".join(rows)
