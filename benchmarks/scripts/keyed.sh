#!/bin/sh
# keyed.sh measures what running disjoint transfers side by side gains:
# dbop+hotspot+keys (HotSpot told each transfer's accounts with
# dbop.HotSpotKeys) and the keyed strategy (a yardstick: one attempt per
# transfer, admitted once neither of its accounts is in use in the
# process, unfairly) against dbop+hotspot and the reference, on PostgreSQL
# and MariaDB, one process, both SERIALIZABLE variants. Its output goes to results/keyed.txt; docs/contention.md reads
# it. Run it from benchmarks/ with DBOP_TEST_POSTGRES and DBOP_TEST_MYSQL set.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/keyed.txt
common="-strategies dbop+hotspot+keys,keyed,dbop+hotspot,reference -duration 10s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/keyed.sh"
	echo "$(nproc) CPUs"
	for backend in postgres mariadb; do
		for variant in serializable lockcycle; do
			echo
			echo "== go run ./cmd/contention -backend $backend -variant $variant $common"
			uptime
			"$bin" -backend "$backend" -variant "$variant" $common 2>&1 | grep -E '^(\||median of|invariants hold)'
		done
	done
	echo
	uptime
} > "$out"
cat "$out"
