"""The lab's highly available cluster: three masters and the reference setup's two minions.

The first master and the minions are inventory.py's, so a cluster built from inventory.py
grows into this one by adding kubemaster2 and kubemaster3 and re-running cluster.py. Their
addresses stay clear of those the lab's derived inventories give new minions (.133 on).
"""

masters = [
    ("kubemaster.traininglab.com", {"ssh_hostname": "192.168.122.130"}),
    ("kubemaster2.traininglab.com", {"ssh_hostname": "192.168.122.136"}),
    ("kubemaster3.traininglab.com", {"ssh_hostname": "192.168.122.137"}),
]

minions = [
    ("kubeminion1.traininglab.com", {"ssh_hostname": "192.168.122.131"}),
    ("kubeminion2.traininglab.com", {"ssh_hostname": "192.168.122.132"}),
]

lab = [name for name, _ in masters + minions]
