#!/bin/sh
# pglease.sh runs, on PostgreSQL in two processes, the yardstick of taking
# turns through the database by process (pglease: a lease transaction holds
# one of dbop.HotSpot's lock tables while its process runs its transfers one
# at a time) beside taking them by transaction (pglock), dbop+hotspot and
# the single worker, serializable and with lock cycles, and saves the tables
# in results/pglease-fleet.txt (docs/contention.md, Limits). Run it from
# benchmarks/ with DBOP_TEST_POSTGRES (or DBOP_BENCH_POSTGRES) set, on a
# machine with nothing else running. A run that fails leaves its output's
# last lines in the results file, and the script exits 1 at the end.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/pglease-fleet.txt
log=$(mktemp)
failed=0
common="-backend postgres -processes 2 -strategies pglease,pglock,dbop+hotspot,reference -duration 10s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/pglease.sh"
	echo "$(nproc) CPUs, $(go version 2>/dev/null || echo 'go: not on PATH')"
} > "$out"
for variant in serializable lockcycle; do
	echo "== go run ./cmd/contention -variant $variant $common" | tee -a "$out"
	uptime >> "$out"
	if "$bin" -variant "$variant" $common > "$log" 2>&1; then
		sed -n '/^median of/,/^invariants hold/p' "$log" >> "$out"
	else
		failed=1
		{ echo "FAILED:"; tail -20 "$log"; } | tee -a "$out"
	fi
	uptime >> "$out"
	echo >> "$out"
	grep -E '^\| (pglease|pglock|dbop\+hotspot|reference) ' "$log" | tail -4 || true
done
rm -f "$log"
exit "$failed"
