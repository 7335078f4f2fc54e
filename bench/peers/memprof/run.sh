#!/usr/bin/env bash
# Runs one system of the peers harness (../shared/peers from the project
# root) with allocation profiles of its child: the harness is copied, the
# memprof adapter of this directory (and the natsjs variants of
# ../headers) added, and the system given first run as "memprof". The
# profiles go to PEERS_MEMPROF_DIR (default /tmp), three per child run:
# memprof-<system>-<pid>.{setup,enqueue,work}. Further arguments go to the
# harness:
#
#   bench/peers/memprof/run.sh plba-jetstream -n 20000 -c 8 -r 1
#   go tool pprof -sample_index=alloc_objects -base /tmp/memprof-plba-jetstream-<pid>.enqueue -top /tmp/memprof-plba-jetstream-<pid>.work
#
# Every allocation is sampled, so the run is several times slower: read
# allocation counts from the profiles (divided by -n), not throughput.
# PEERS_DIR names the harness when it is not at ../shared/peers.
set -euo pipefail
. "$(dirname "$0")/../harness.sh"
peers_profile memprof "$@"
