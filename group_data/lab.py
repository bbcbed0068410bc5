"""SSH settings for the local lab's machines only (the group ``lab`` of inventory.py and the
inventories the lab derives from it): they are rebuilt with new host keys every time, so their
keys are not checked. Never put your own machines in this group."""

ssh_strict_host_key_checking = "no"
ssh_known_hosts_file = "/dev/null"
