#!/usr/bin/env bash
# Counts the instructions (Ir), data reads (Dr), and simulated read misses
# of a 32 KB first-level (D1mr) and a 1 MB last-level cache (DLmr) per task
# worked by plba-memory, with valgrind's callgrind: main.go run with and
# without -work, the difference divided by -n. GOGC=off, as in the
# harness's work phase, which usually sees no collection; GODEBUG turns off
# what valgrind cannot run (async preemption's signals, RDTSCP).
#
#   bench/callgrind/run.sh [-n 50000] [-c 8]
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "run.sh: valgrind not found" >&2; exit 2; }
n=50000
args=("$@")
while [ $# -gt 0 ]; do
  case $1 in -n) n=$2; shift 2 ;; *) shift ;; esac
done
out=$(mktemp -d /tmp/plba-callgrind.XXXXXX)
trap 'rm -rf "$out"' EXIT
go build -o "$out/cg" ./bench/callgrind
for w in false true; do
  GOGC=off GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off valgrind --tool=callgrind --cache-sim=yes \
    --D1=32768,8,64 --LL=1048576,16,64 --callgrind-out-file="$out/cg.$w" \
    "$out/cg" -work=$w "${args[@]}" 2>"$out/log.$w" || { cat "$out/log.$w" >&2; exit 1; }
done
# events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
ev() { awk '/^summary:|^totals:/ {print; exit}' "$out/cg.$1" | cut -d' ' -f2-; }
read -r -a a <<<"$(ev false)"
read -r -a b <<<"$(ev true)"
awk -v n="$n" -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
  split(a, x, " "); split(b, y, " ")
  printf "per task worked: Ir %.0f  Dr %.0f  D1mr %.2f  DLmr %.2f  (enqueue: Ir %.0f per task)\n",
    (y[1]-x[1])/n, (y[2]-x[2])/n, (y[5]-x[5])/n, (y[8]-x[8])/n, x[1]/n
}'
