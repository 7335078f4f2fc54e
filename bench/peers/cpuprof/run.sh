#!/usr/bin/env bash
# Runs one system of the peers harness (../shared/peers from the project
# root) with CPU profiles (and, with PEERS_CPUPROF_CONTENTION=1, mutex and
# block profiles) of its child: the harness is
# copied, the cpuprof adapter of this directory (and the natsjs variants
# of ../headers) added, and the system given first run as "cpuprof". The
# profiles go to PEERS_CPUPROF_DIR (default /tmp), per child run:
# cpuprof-<system>-<pid>.{enqueue,work,mutex,block}. Further arguments go
# to the harness:
#
#   bench/peers/cpuprof/run.sh plba-jetstream -n 50000 -c 64 -r 1
#   go tool pprof -top /tmp/cpuprof-plba-jetstream-<pid>.work
#
# PEERS_DIR names the harness when it is not at ../shared/peers.
set -euo pipefail
. "$(dirname "$0")/../harness.sh"
peers_profile cpuprof "$@"
