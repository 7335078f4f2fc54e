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
[ $# -ge 1 ] || { echo "usage: $0 <system> [harness flags]" >&2; exit 2; }
SYSTEM=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
[ -x "$PEERS_DIR/run.sh" ] || { echo "cpuprof/run.sh: no harness at $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }
COPY=$(mktemp -d /tmp/peers-cpuprof.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp "$PEERS_DIR"/*.go "$PEERS_DIR"/go.mod "$PEERS_DIR"/go.sum "$PEERS_DIR"/run.sh "$COPY/"
cp "$HERE/adapter_cpuprof.go" "$HERE/../headers/adapter_natsjs_headers.go" "$COPY/"
chmod -R u+w "$COPY"
PEERS_CPUPROF_SYSTEM=$SYSTEM PLBA_DIR=${PLBA_DIR:-$ROOT} GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=plbacpuprof,plbaheaders" \
  "$COPY/run.sh" -systems cpuprof "$@"
