# ssh_hosts: the ssh suite (tests/e2e/ssh.sh: ssh con<C>@host through
# khd's own sshd, keys, transfers, readers) against a facility of 3 hosts
# (examples/cluster.sh, through lib.sh's KH_HOSTS), as well as against
# one host.
KH_HOSTS=3 exec bash "$(dirname "$0")/ssh.sh"
