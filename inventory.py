"""The three-node lab of the reference setup (traininglab.com).

Each host is named by its FQDN; ``ssh_hostname`` is the address pyinfra connects to and the
address the cluster uses for the host unless ``kube_address`` says otherwise. SSH user, key and
port come from group_data/all.py, so pointing kubelab at other machines means editing the names
and addresses below (or writing your own inventory with the groups ``masters`` and ``minions``).
"""

masters = [
    ("kubemaster.traininglab.com", {"ssh_hostname": "192.168.122.130"}),
]

minions = [
    ("kubeminion1.traininglab.com", {"ssh_hostname": "192.168.122.131"}),
    ("kubeminion2.traininglab.com", {"ssh_hostname": "192.168.122.132"}),
]
