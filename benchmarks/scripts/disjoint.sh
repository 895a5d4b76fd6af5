#!/bin/sh
# disjoint.sh measures dbop.HotSpot on work that hardly conflicts: 16
# workers on 1000 accounts, READ COMMITTED with the accounts locked in a
# random order (the deadlock variant; with 1000 accounts a lock cycle is
# rare), against the same retry without a HotSpot, on PostgreSQL (the lock
# tables created) and MariaDB. A HotSpot must cost little here: it starts
# limiting when it is built, and must let such work through.
#
#   sh scripts/disjoint.sh    results/disjoint.txt (OUT overrides)
#
# Run it from benchmarks/ with DBOP_TEST_POSTGRES and DBOP_TEST_MYSQL set.
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
out=${OUT:-results/disjoint.txt}
common="-variant deadlock -accounts 1000 -workers 16 -strategies dbop,dbop+hotspot -duration 5s -rounds 3"
{
	echo "command (from benchmarks/): sh scripts/disjoint.sh"
	echo "$(nproc) CPUs"
	for backend in postgres mariadb; do
		echo
		echo "== go run ./cmd/contention -backend $backend $common"
		uptime
		"$bin" -backend "$backend" $common 2>&1 | grep -E '^(\||median of)' | sed -n '/median of/,$p'
	done
	echo
	uptime
} > "$out"
cat "$out"
