#!/bin/sh
# workers.sh runs dbop+hotspot with few workers as well as many: 2, 4 and
# 16 workers, in one process and split between two, on PostgreSQL and
# MariaDB, both SERIALIZABLE variants, and lock cycles on the Galera
# cluster when DBOP_TEST_GALERA is set (scripts/clusters.sh env). With few
# workers nobody waits for a slot, so the HotSpot keeps asking itself
# whether to stop limiting; the latency bounds must hold all the same.
# Shorter rounds than the matrix (4 s, 2 rounds): this is about bounds.
#
#   sh scripts/workers.sh    results/workers.txt
#
# Run it from benchmarks/ with DBOP_TEST_POSTGRES and DBOP_TEST_MYSQL set.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/workers.txt
common="-strategies dbop+hotspot,reference -duration 4s -rounds 2"
run() {
	echo
	echo "== go run ./cmd/contention $* $common"
	"$bin" "$@" $common 2>&1 | grep -E '^\| dbop\+hotspot .*PASS [0-9]+/[0-9]+ \|$'
}
{
	echo "command (from benchmarks/): sh scripts/workers.sh"
	echo "$(nproc) CPUs; each line: the dbop+hotspot row of the median table (columns as in hotspot-*.txt:"
	echo "strategy, workers, processes, goodput tx/s, x reference, attempts/commit, attempts max, give-ups,"
	echo "p50, p99 median, p99 worst, max, > 250 ms, invariants)"
	uptime
	for backend in postgres mariadb; do
		for variant in serializable lockcycle; do
			for p in 1 2; do
				for w in 2 4 16; do
					run -backend "$backend" -variant "$variant" -processes "$p" -workers "$w"
				done
			done
		done
	done
	if [ -n "${DBOP_TEST_GALERA:-}" ]; then
		for p in 1 2; do
			run -backend galera -galera "$DBOP_TEST_GALERA" -variant lockcycle -processes "$p" -workers 2
		done
	fi
	echo
	uptime
} > "$out"
cat "$out"
