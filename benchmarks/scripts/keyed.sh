#!/bin/sh
# keyed.sh measures what running disjoint transfers side by side gains:
# dbop+hotspot+keys (HotSpot told each transfer's accounts with
# dbop.HotSpotKeys) and the keyed strategy (a yardstick: one attempt per
# transfer, admitted once neither of its accounts is in use in the
# process, unfairly) against dbop+hotspot and the reference, on PostgreSQL
# and MariaDB, both SERIALIZABLE variants.
#
#   sh scripts/keyed.sh        one process, the 4 hot accounts alone in
#                              their table: results/keyed.txt
#   sh scripts/keyed.sh cold   the 4 hot accounts among 1000 cold ones
#                              (-cold 1000: PostgreSQL reads them by index,
#                              docs/backends.md §1.15), one process and two:
#                              results/keyed-cold.txt
#
# docs/contention.md reads both. Run it from benchmarks/ with
# DBOP_TEST_POSTGRES and DBOP_TEST_MYSQL set.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/keyed.txt
cold=""
processes=1
if [ "${1:-}" = cold ]; then
	out=results/keyed-cold.txt
	cold="-cold 1000"
	processes="1 2"
fi
common="-strategies dbop+hotspot+keys,keyed,dbop+hotspot,reference -duration 10s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/keyed.sh ${1:-}"
	echo "$(nproc) CPUs"
	for backend in postgres mariadb; do
		for variant in serializable lockcycle; do
			for p in $processes; do
				echo
				echo "== go run ./cmd/contention -backend $backend -variant $variant -processes $p $cold $common"
				uptime
				"$bin" -backend "$backend" -variant "$variant" -processes "$p" $cold $common 2>&1 | grep -E '^(\||median of|invariants hold)'
			done
		done
	done
	echo
	uptime
} > "$out"
cat "$out"
