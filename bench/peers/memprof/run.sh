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
[ $# -ge 1 ] || { echo "usage: $0 <system> [harness flags]" >&2; exit 2; }
SYSTEM=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
[ -x "$PEERS_DIR/run.sh" ] || { echo "memprof/run.sh: no harness at $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }
COPY=$(mktemp -d /tmp/peers-memprof.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp "$PEERS_DIR"/*.go "$PEERS_DIR"/go.mod "$PEERS_DIR"/go.sum "$PEERS_DIR"/run.sh "$COPY/"
cp "$HERE/adapter_memprof.go" "$HERE/../headers/adapter_natsjs_headers.go" "$COPY/"
chmod -R u+w "$COPY"
PEERS_MEMPROF_SYSTEM=$SYSTEM PLBA_DIR=${PLBA_DIR:-$ROOT} GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=plbamemprof,plbaheaders" \
  "$COPY/run.sh" -systems memprof "$@"
