#!/bin/bash
# Run every benchmark (make bench).  Figures go to bench/results/ (JSON)
# and to standard output; bench/RESULTS.md records them with the machine.
set -eu
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%F)"
for b in bench/alloc.sh bench/state.sh bench/boot.sh bench/net.sh bench/vxlan.sh bench/bcast.sh bench/meter.sh bench/rdma.sh \
	bench/vmboot.sh bench/ebb.sh bench/ebbgrow.sh bench/khfs.sh bench/adopt.sh bench/hosts.sh; do
	echo "== $b"
	"$b"
done
