"""The settings of the cluster itself: its names and addresses, flannel, each profile's services
and releases, the add-ons. Each a ``Setting`` (setting_spec.py); defaults.py holds them all."""

from .setting_spec import CLUSTER, DAY, PORT, Setting

CLUSTER_SETTINGS = [
    # The cluster
    Setting(
        "profile", None, "`el7` or `modern`; unset: chosen from each host's OS facts.", kind=str
    ),
    Setting(
        "cluster_name",
        "kubelab",
        "Name of the cluster (kubeconfigs, local PKI directory).",
        scope=CLUSTER,
    ),
    Setting(
        "kube_address",
        None,
        "Per host: the IP address the cluster uses for the host. Unset: `ssh_hostname`.",
        kind=str,
    ),
    Setting(
        "node_name",
        None,
        "Per minion: the name the kubelet registers (`--hostname-override`). Unset: the "
        "inventory name.",
        kind=str,
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
        kind=bool,
        scope=CLUSTER,
    ),
    Setting("etcd_client_port", 2379, "etcd client port on each master.", limits=PORT),
    Setting(
        "etcd_peer_port",
        2380,
        "etcd peer port on each master's address (modern: TLS with `secure`).",
        limits=PORT,
    ),
    Setting(
        "service_cluster_ip_range",
        "10.254.0.0/16",
        "Service cluster IPs (`--service-cluster-ip-range`).",
        scope=CLUSTER,
    ),
    # flannel
    Setting(
        "flannel_network",
        "10.20.0.0/16",
        "The pod overlay network flannel leases from.",
        scope=CLUSTER,
    ),
    Setting(
        "flannel_subnet_len",
        24,
        "Prefix length of each host's flannel subnet.",
        limits=(1, 32),
        scope=CLUSTER,
    ),
    Setting("flannel_backend", "vxlan", "flannel backend type.", scope=CLUSTER),
    Setting(
        "flannel_vni",
        1,
        "VXLAN network identifier of the flannel backend.",
        limits=(0, 2**24 - 1),
        scope=CLUSTER,
    ),
    Setting(
        "flannel_etcd_prefix",
        "/atomic.io/network",
        "etcd prefix of flannel's config (`<prefix>/config`) and leases.",
        scope=CLUSTER,
    ),
    # el7: the CentOS 7 packages
    Setting(
        "kube_log_level", 0, "`--v` of every kube service (KUBE_LOG_LEVEL).", "el7", limits=(0, 10)
    ),
    Setting(
        "kube_allow_privileged",
        False,
        "Allow privileged containers (KUBE_ALLOW_PRIV).",
        "el7",
    ),
    Setting(
        "apiserver_insecure_port",
        8080,
        "The apiserver's plain HTTP port.",
        "el7",
        limits=PORT,
        scope=CLUSTER,
    ),
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
        form="image",
    ),
    Setting(
        "service_account_key_file",
        "/etc/kubernetes/serviceaccount.key",
        "The service-account signing key on the master (RSA 2048, generated once).",
        "el7",
    ),
    # modern: upstream binaries
    Setting(
        "kube_version", "v1.35.8", "Kubernetes release of the binaries.", "modern", form="release"
    ),
    Setting("flannel_version", "v0.28.9", "flannel release.", "modern", form="release"),
    Setting(
        "etcd_version",
        "v3.6.14",
        "etcd release, on every modern master (distributions package none that Kubernetes "
        "1.35 supports), run as the system user `etcd` by kubelab's unit.",
        "modern",
        form="release",
    ),
    Setting(
        "cni_plugins_version",
        "v1.7.1",
        "containernetworking/plugins release.",
        "modern",
        form="release",
    ),
    Setting(
        "containerd_version",
        "v2.2.9",
        "containerd release, on every modern minion (Kubernetes 1.35 supports 2.2.0+, 2.1.5+, "
        "1.7.28+; Debian 12 packages 1.6, Debian 13 1.7.24), run by kubelab's unit.",
        "modern",
        form="release",
    ),
    Setting(
        "runc_version", "v1.3.6", "runc release, with containerd_version.", "modern", form="release"
    ),
    Setting(
        "flannel_cni_plugin_version",
        "v1.9.1-flannel3",
        "flannel-io/cni-plugin release (the `flannel` CNI plugin).",
        "modern",
        form="release",
    ),
    Setting(
        "artifact_mirror",
        None,
        "Base URL of a mirror holding the artifacts under `<host>/<path>` of their upstream "
        "URL (what `wget -x` saves). Unset: download from upstream.",
        "modern",
        kind=str,
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
        scope=CLUSTER,
    ),
    Setting(
        "apiserver_port",
        6443,
        "The apiserver's HTTPS port (el7: with `secure`).",
        limits=PORT,
        scope=CLUSTER,
    ),
    Setting(
        "api_endpoint",
        None,
        "`host:port` (a DNS name or an IPv4 address) of an external load balancer or VIP in "
        "front of every master's apiserver: every kubeconfig points there. Unset: with several "
        "masters each host reaches them through its local balancer (`api_balancer_port`).",
        "modern",
        kind=str,
        scope=CLUSTER,
    ),
    Setting(
        "api_balancer_port",
        6444,
        "With several masters and no `api_endpoint`: the port on 127.0.0.1 of each host's "
        "local load balancer (haproxy) over every apiserver, for its kubelet and kube-proxy.",
        "modern",
        limits=PORT,
        scope=CLUSTER,
    ),
    Setting(
        "cluster_domain",
        "cluster.local",
        "DNS domain of the cluster's services.",
        "modern",
        scope=CLUSTER,
    ),
    # modern: the container runtime and kube-proxy
    Setting(
        "sandbox_image",
        "registry.k8s.io/pause:3.10.1",
        "containerd's pinned sandbox (pause) image, the one kubeadm 1.35 pins; without a "
        "registry, import it with `image_archives`.",
        "modern",
        form="image",
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
        kind=int,
        limits=(0, 2**31 - 1),
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
        kind=str,
        scope=CLUSTER,
    ),
    Setting(
        "dns_image",
        "registry.k8s.io/coredns/coredns:v1.13.1",
        "CoreDNS's image, the release kubeadm 1.35 pins (without a registry, import it with "
        "`image_archives`).",
        "modern",
        form="image",
    ),
    Setting(
        "dns_replicas", 2, "CoreDNS replicas, spread over the minions.", "modern", limits=(1, 100)
    ),
    Setting(
        "dns_upstream",
        None,
        "Where CoreDNS forwards names outside `cluster_domain`: resolver addresses "
        "(`IP` or `IP:port`) separated by commas. Unset: the minions' /etc/resolv.conf, when "
        "every minion has a nameserver there that is not a loopback address; else no "
        "forwarding (those names fail at once; a warning says so).",
        "modern",
        kind=str,
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
        form="image",
    ),
    Setting(
        "addons_timeout",
        120,
        "Seconds the master waits for the apiserver to accept a request before it applies the "
        "add-ons' manifests or rewrites the Secrets (each try bounded by kubectl's "
        "`--request-timeout`).",
        "modern",
        limits=DAY,
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
]
