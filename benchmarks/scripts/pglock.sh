#!/bin/sh
# pglock.sh runs, on PostgreSQL, the yardstick of taking turns through the
# database (the pglock strategy: every attempt of every worker locks one of
# dbop.HotSpot's lock tables in its BEGIN round trip and waits for it in
# place) beside dbop+hotspot, dbop+bulkhead and the single worker, in one
# process and in two, serializable and with lock cycles, and saves the tables
# in results/pglock-fleet.txt. Then it runs dbop+hotspot and pglock once more
# in two processes with scripts/lockqueue.sh sampling the lock from 3 s into
# the run, into results/pglock-fleet-queue.txt (docs/contention.md, Limits).
# Run it from benchmarks/ with DBOP_TEST_POSTGRES (or DBOP_BENCH_POSTGRES)
# set, on a machine with nothing else running. A run that fails leaves its
# output's last lines in the results file, and the script exits 1 at the end.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/pglock-fleet.txt
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
common="-backend postgres -strategies pglock,dbop+hotspot,dbop+bulkhead,reference -duration 10s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/pglock.sh"
	echo "$(nproc) CPUs, $(go version 2>/dev/null || echo 'go: not on PATH')"
} > "$out"
for variant in serializable lockcycle; do
	for p in 1 2; do
		echo "== go run ./cmd/contention -variant $variant -processes $p $common" | tee -a "$out"
		uptime >> "$out"
		if "$bin" -variant "$variant" -processes "$p" $common > "$log" 2>&1; then
			sed -n '/^median of/,/^invariants hold/p' "$log" >> "$out"
		else
			failed=1
			{ echo "FAILED:"; tail -20 "$log"; } | tee -a "$out"
		fi
		uptime >> "$out"
		echo >> "$out"
		grep -E '^\| (pglock|dbop\+hotspot|dbop\+bulkhead|reference) ' "$log" | tail -4 || true
	done
done

queue=results/pglock-fleet-queue.txt
echo "command (from benchmarks/): sh scripts/pglock.sh; sh scripts/lockqueue.sh 800 started 3 s into each run below, on its database" > "$queue"
echo >> "$queue"
for s in dbop+hotspot pglock; do
	echo "== go run ./cmd/contention -backend postgres -variant serializable -processes 2 -strategies $s -duration 10s" | tee -a "$queue"
	(sleep 3 && sh scripts/lockqueue.sh 800 > "$log.q") &
	sampler=$!
	if "$bin" -backend postgres -variant serializable -processes 2 -strategies "$s" -duration 10s > "$log" 2>&1; then
		grep -F "| $s |" "$log" | head -1 >> "$queue"
	else
		failed=1
		{ echo "FAILED:"; tail -20 "$log"; } | tee -a "$queue"
	fi
	if wait "$sampler"; then
		{ echo "count holders waiters:"; cat "$log.q"; } | tee -a "$queue"
	else
		failed=1
		echo "FAILED: lockqueue.sh" | tee -a "$queue"
	fi
	rm -f "$log.q"
	echo >> "$queue"
done
exit "$failed"
