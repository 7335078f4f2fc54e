#!/usr/bin/env bash
# Runs the peers harness (../shared/peers from the project root) with the
# extra adapters of this directory: natsjs-msgid and natsjs-plbahdr, the
# bare nats.go baseline carrying plba's headers. Arguments go to the
# harness; the default compares the three with plba-jetstream:
#
#   bench/peers/headers/run.sh
#   bench/peers/headers/run.sh -systems natsjs,natsjs-plbahdr -n 50000 -c 8 -r 3
#
# PEERS_DIR names the harness when it is not at ../shared/peers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
[ -x "$PEERS_DIR/run.sh" ] || { echo "headers/run.sh: no harness at $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }
COPY=$(mktemp -d /tmp/peers-headers.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp "$PEERS_DIR"/*.go "$PEERS_DIR"/go.mod "$PEERS_DIR"/go.sum "$PEERS_DIR"/run.sh "$COPY/"
cp "$(dirname "$0")/adapter_natsjs_headers.go" "$COPY/"
chmod -R u+w "$COPY"
[ $# -gt 0 ] || set -- -systems natsjs,natsjs-msgid,natsjs-plbahdr,plba-jetstream -n 50000 -c 8,64 -r 3
PLBA_DIR=${PLBA_DIR:-$ROOT} GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=plbaheaders" "$COPY/run.sh" "$@"
