"""Values for every host of the lab. Defaults for every setting live in
kubelab.settings.defaults."""

import json
import os
from pathlib import Path

# How pyinfra reaches the hosts. The local lab (make lab-up) writes its key here.
ssh_user = "root"
ssh_port = 22
ssh_key = os.environ.get("KUBELAB_SSH_KEY", "/var/lib/kubelab-lab/id_lab")
# A host whose key is not in ~/.ssh/known_hosts is refused: the CA's key and the admin's
# credentials go to these hosts (README: "Your own machines" shows how to trust a new one).
# The lab's machines alone are exempt (group_data/lab.py).
ssh_strict_host_key_checking = "yes"

# The lab has no DNS: every host learns the others from /etc/hosts.
manage_etc_hosts = True

# The lab's artifact mirror (upstream's layout, on the lab bridge). Remove this line to
# download from upstream.
artifact_mirror = "http://192.168.122.1:8080"

# The lab's mirror serves programs built on this machine from upstream's Go modules, and
# pins each one's sha256 (tests/lab/mirror.py): kubelab checks every download against it.
_LAB_PINS = Path(os.environ.get("LAB_DIR", "/var/lib/kubelab-lab")) / "mirror/artifact_sha256.json"
artifact_sha256 = json.loads(_LAB_PINS.read_text()) if _LAB_PINS.exists() else {}

# No image registry is reachable from the lab: its mirror serves image archives built from
# Debian's packages (tests/lab/images.py), which kubelab loads into every minion's containerd.
_LAB_IMAGES = f"{artifact_mirror}/lab/images"
sandbox_image = "lab.local/pause:kubelab"
smoke_image = "lab.local/nginx:1.22.1-debian12"
# The cluster add-ons, built here from upstream's Go modules (tests/lab/builds.py).
dns_image = "lab.local/coredns:v1.13.1"
metrics_server_image = "lab.local/metrics-server:v0.8.0"
image_archives = {
    sandbox_image: f"{_LAB_IMAGES}/pause-kubelab.tar",
    smoke_image: f"{_LAB_IMAGES}/nginx-1.22.1-debian12.tar",
    dns_image: f"{_LAB_IMAGES}/coredns-v1.13.1.tar",
    metrics_server_image: f"{_LAB_IMAGES}/metrics-server-v0.8.0.tar",
}

# kube-proxy runs in a container here, where nf_conntrack_max is the host's: leave it alone.
kube_proxy_conntrack_max_per_core = 0
# The lab's machines (like this box) lack CAP_SYS_RESOURCE: nothing there may lower an
# oom_score_adj, which runc does for every pod unless containerd keeps it at its own.
containerd_restrict_oom_score_adj = True
