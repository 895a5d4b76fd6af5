#!/bin/sh
# stagger.sh: a process that starts while another is busy with the rows.
# Two workers in each of two processes on PostgreSQL under SERIALIZABLE,
# the second process starting 6 s after the first, 8 rounds of 12 s. Under
# SERIALIZABLE the process whose short transactions commit first wins every
# conflict, so it learns of the other only from its HotSpot's lock; the
# latecomer's transfers must not lose to it again and again.
#
#   sh scripts/stagger.sh    results/stagger.txt (OUT overrides)
#
# Run it from benchmarks/ with DBOP_TEST_POSTGRES set.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=${OUT:-results/stagger.txt}
{
	echo "command (from benchmarks/): sh scripts/stagger.sh; at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- .. ':!results' || echo ' with uncommitted changes')"
	echo "$(nproc) CPUs; each line: one round's dbop+hotspot row (strategy, workers, processes, committed,"
	echo "goodput tx/s, attempts/commit, attempts p99/max, give-ups, p50, p99, max, > 250 ms, invariants)"
	uptime
	for i in 1 2 3 4 5 6 7 8; do
		"$bin" -backend postgres -variant serializable -processes 2 -workers 4 -stagger 6s -duration 12s -strategies dbop+hotspot 2>&1 | grep -E '^\| dbop\+hotspot .*PASS \|$|FAIL'
	done
	uptime
} | tee "$out"
