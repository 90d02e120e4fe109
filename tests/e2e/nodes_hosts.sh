# nodes_hosts: the nodes suite (tests/e2e/nodes.sh: monitors, boot,
# consoles, resets, limits, user namespaces) against a facility of 3
# hosts (examples/cluster.sh, through lib.sh's KH_HOSTS), as well as
# against one host.
KH_HOSTS=3 exec bash "$(dirname "$0")/nodes.sh"
