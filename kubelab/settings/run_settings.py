"""The settings of kubelab's runs: bounded time, the smoke test, day two (removing minions,
upgrading, resetting). Each a ``Setting`` (setting_spec.py); defaults.py holds them all."""

from .setting_spec import CLUSTER, DAY, Setting

RUN_SETTINGS = [
    # Bounded time
    Setting(
        "network_timeout",
        30,
        "Seconds any remote fetch may wait for a connection or go without data before it "
        "fails: apt (`Acquire::http(s)::Timeout`, 2 retries), yum (`timeout`, 2 retries), "
        "curl (`--connect-timeout`, `--speed-time` below 1 KiB/s, 3 retries), the checksums "
        "fetched on this machine.",
        limits=(1, 3600),
    ),
    Setting(
        "operation_timeout",
        900,
        "Seconds one package operation (apt, yum: pyinfra's `_timeout`) or one download "
        "(curl's `--max-time`, and no retry starts after it) may take in all.",
        limits=DAY,
    ),
    # The smoke test (deploys/smoke.py)
    Setting(
        "smoke_image",
        "docker.io/library/nginx:1.27",
        "Image of the smoke test's pods, nginx (`imagePullPolicy: IfNotPresent`: without a "
        "registry, the minions must hold it, e.g. through `image_archives`).",
        form="image",
    ),
    Setting(
        "smoke_timeout",
        300,
        "Seconds each wait of the smoke test may take (nodes Ready, pods Running, answers) "
        "before it fails naming what is not ready.",
        limits=DAY,
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
        scope=CLUSTER,
    ),
    Setting(
        "remove_last_minion",
        False,
        "deploys/remove_node.py may remove every minion of the inventory (the cluster is then "
        "left without a node for its pods).",
        "modern",
        scope=CLUSTER,
    ),
    Setting(
        "drain_timeout",
        300,
        "Seconds `kubectl drain` of a removed or upgraded minion may take (`--timeout`) before "
        "the run stops naming the pods that were not evicted.",
        "modern",
        limits=DAY,
        scope=CLUSTER,
    ),
    Setting(
        "drain_force",
        False,
        "Drain a removed or upgraded minion even of pods that cannot be evicted: kubectl "
        "drain's `--force` "
        "(pods without a controller) and `--disable-eviction` (deleted past their "
        "PodDisruptionBudget).",
        "modern",
        scope=CLUSTER,
    ),
    # Day two: upgrading (deploys/upgrade.py)
    Setting(
        "upgrade_allow_downgrade",
        False,
        "deploys/upgrade.py may install an older patch release than the one running (of "
        "Kubernetes, etcd or containerd). A minor version is never downgraded (upstream "
        "supports none): restore the etcd snapshot the upgrade saved instead.",
        "modern",
        scope=CLUSTER,
    ),
    Setting(
        "upgrade_timeout",
        300,
        "Seconds each wait of deploys/upgrade.py may take: the apiserver's `/readyz` after the "
        "master's upgrade, each upgraded minion's Node Ready at the new kubelet version.",
        "modern",
        limits=DAY,
        scope=CLUSTER,
    ),
    Setting(
        "reset_cluster",
        None,
        "deploys/reset.py runs only when this equals `cluster_name`: it then removes from every "
        "host everything kubelab put there (services, units, binaries, configuration, etcd's "
        "data, the kubelet's and containerd's state, CNI, interfaces, iptables chains).",
        "modern",
        kind=str,
        scope=CLUSTER,
    ),
    Setting(
        "reset_pki",
        None,
        "With deploys/reset.py: set to `cluster_name` to delete the local PKI (`pki_dir`) and "
        "the admin kubeconfig beside it too. Unset: they stay, and a rebuild reuses the CA.",
        "modern",
        kind=str,
        scope=CLUSTER,
    ),
]
