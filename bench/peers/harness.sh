# Sourced by the run.sh scripts of bench/peers/*, not run: the shared part
# of running the peers harness (../shared/peers from the project root, or
# PEERS_DIR) with extra adapters of this directory. The harness is copied
# to a temporary directory (removed on exit) with the adapters added, and
# built with their build tags against PLBA_DIR (default: this checkout).

PEERS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# peers_copy TOOL FILE...: copies the harness and the adapter files given
# to a new temporary directory, PEERS_COPY, which is removed on exit.
peers_copy() {
  local tool=$1; shift
  PEERS_DIR=${PEERS_DIR:-$PEERS_ROOT/../shared/peers}
  [ -x "$PEERS_DIR/run.sh" ] || { echo "$tool/run.sh: no harness at $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }
  PEERS_COPY=$(mktemp -d "/tmp/peers-$tool.XXXXXX")
  trap 'rm -rf "$PEERS_COPY"' EXIT
  cp "$PEERS_DIR"/*.go "$PEERS_DIR"/go.mod "$PEERS_DIR"/go.sum "$PEERS_DIR"/run.sh "$PEERS_COPY/"
  cp "$@" "$PEERS_COPY/"
  chmod -R u+w "$PEERS_COPY"
}

# peers_run TAGS ARG...: runs the copy's run.sh with the arguments given,
# its Go build adding the build tags TAGS (comma-separated) to GOFLAGS.
peers_run() {
  local tags=$1; shift
  PLBA_DIR=${PLBA_DIR:-$PEERS_ROOT} GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=$tags" "$PEERS_COPY/run.sh" "$@"
}

# peers_profile TOOL SYSTEM [harness flags]: runs SYSTEM under the
# profiling adapter TOOL (cpuprof or memprof: TOOL/adapter_TOOL.go, with
# the shared bench/peers/profile.go and the natsjs variants of headers/,
# built with the tag plbaTOOL), as the harness's system TOOL, which
# reads the system's name from PEERS_<TOOL>_SYSTEM.
peers_profile() {
  local tool=$1
  [ $# -ge 2 ] || { echo "usage: $0 <system> [harness flags]" >&2; exit 2; }
  local system=$2; shift 2
  peers_copy "$tool" "$PEERS_HERE/$tool/adapter_$tool.go" "$PEERS_HERE/profile.go" "$PEERS_HERE/headers/adapter_natsjs_headers.go"
  local upper
  upper=$(echo "$tool" | tr '[:lower:]' '[:upper:]')
  export "PEERS_${upper}_SYSTEM=$system"
  peers_run "plba$tool,plbaheaders" -systems "$tool" "$@"
}
