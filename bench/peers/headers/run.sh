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
. "$(dirname "$0")/../harness.sh"
peers_copy headers "$PEERS_HERE/headers/adapter_natsjs_headers.go"
[ $# -gt 0 ] || set -- -systems natsjs,natsjs-msgid,natsjs-plbahdr,plba-jetstream -n 50000 -c 8,64 -r 3
peers_run plbaheaders "$@"
