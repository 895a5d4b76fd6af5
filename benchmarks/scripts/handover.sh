#!/bin/sh
# handover.sh measures what running the transfers of 16 workers one at a
# time costs beside a single worker, whatever decides the order: HotSpot,
# against the executor strategy (one goroutine runs every transfer; nothing
# decides admission), at Go's default GOMAXPROCS and at GOMAXPROCS=1, on
# PostgreSQL and MariaDB, one process, the serializable variant. Its output
# goes to results/handover.txt; docs/contention.md reads it. Run it from
# benchmarks/ with DBOP_TEST_POSTGRES and DBOP_TEST_MYSQL set.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=results/handover.txt
common="-variant serializable -strategies dbop+hotspot,executor,reference -duration 10s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/handover.sh"
	echo "$(nproc) CPUs, $(go version 2>/dev/null || echo go)"
	for backend in postgres mariadb; do
		for procs in default 1; do
			echo
			echo "== $backend, GOMAXPROCS=$procs: go run ./cmd/contention -backend $backend $common"
			uptime
			if [ "$procs" = default ]; then
				"$bin" -backend "$backend" $common 2>&1 | sed -n '/^median of/,/^invariants hold/p'
			else
				GOMAXPROCS=$procs "$bin" -backend "$backend" $common 2>&1 | sed -n '/^median of/,/^invariants hold/p'
			fi
		done
	done
	echo
	uptime
} > "$out"
cat "$out"
