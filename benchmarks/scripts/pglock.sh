#!/bin/sh
# pglock.sh runs, on PostgreSQL, the yardstick of taking turns through the
# database (the pglock strategy: every attempt of every worker locks one of
# dbop.HotSpot's lock tables in its BEGIN round trip and waits for it in
# place) beside dbop+hotspot, dbop+bulkhead and the single worker, in one
# process and in two, serializable and with lock cycles, and saves the output
# in results/pglock-fleet.txt (docs/contention.md, Limits). Run it from
# benchmarks/ with DBOP_TEST_POSTGRES (or DBOP_BENCH_POSTGRES) set, on a
# machine with nothing else running.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/pglock-fleet.txt
common="-backend postgres -strategies pglock,dbop+hotspot,dbop+bulkhead,reference -duration 10s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/pglock.sh"
	echo "$(nproc) CPUs, $(go version 2>/dev/null || echo 'go: not on PATH')"
} > "$out"
for variant in serializable lockcycle; do
	for p in 1 2; do
		echo "== go run ./cmd/contention -variant $variant -processes $p $common" | tee -a "$out"
		uptime >> "$out"
		"$bin" -variant "$variant" -processes "$p" $common 2>&1 | sed -n '/^median of/,/^invariants hold/p' >> "$out" || true
		uptime >> "$out"
		echo >> "$out"
		grep -E '^\| (pglock|dbop\+hotspot|dbop\+bulkhead|reference) ' "$out" | tail -4
	done
done
