"""Values for every host of the lab. Defaults for every setting live in kubelab.defaults."""

import os

# How pyinfra reaches the hosts. The local lab (make lab-up) writes its key here.
ssh_user = "root"
ssh_port = 22
ssh_key = os.environ.get("KUBELAB_SSH_KEY", "/var/lib/kubelab-lab/id_lab")
ssh_strict_host_key_checking = "no"  # lab machines are rebuilt with new host keys
ssh_known_hosts_file = "/dev/null"

# The lab has no DNS: every host learns the others from /etc/hosts.
manage_etc_hosts = True

# The lab's artifact mirror (upstream's layout, on the lab bridge). Remove this line to
# download from upstream.
artifact_mirror = "http://192.168.122.1:8080"
