"""The three-node lab of the reference setup (traininglab.com).

Each host is named by its FQDN; ``ssh_hostname`` is the address pyinfra connects to and the
address the cluster uses for the host unless ``kube_address`` says otherwise. SSH user, key and
port come from group_data/all.py. Every host here is in the group ``lab`` too, whose SSH host
keys are not checked (group_data/lab.py): for your own machines write an inventory of your own
with the groups ``masters`` and ``minions`` (README: "Your own machines").
"""

masters = [
    ("kubemaster.traininglab.com", {"ssh_hostname": "192.168.122.130"}),
]

minions = [
    ("kubeminion1.traininglab.com", {"ssh_hostname": "192.168.122.131"}),
    ("kubeminion2.traininglab.com", {"ssh_hostname": "192.168.122.132"}),
]

# The local lab's machines (group_data/lab.py): every host above.
lab = [name for name, _ in masters + minions]
