#!/bin/sh
# hotspot.sh runs the contention cases of docs/contention.md (issue 15) and
# saves each one's output, charts and load in results/hotspot-*.
# Run it from benchmarks/ with the databases' variables set
# (DBOP_TEST_POSTGRES, DBOP_TEST_MYSQL; DBOP_TEST_GALERA from
# `eval "$(../scripts/clusters.sh env)"` for the Galera cases, which are
# skipped without it). Arguments select cases by name (default: all).
set -eu
# CONTENTION_BIN runs a binary built from ./cmd/contention instead of
# building one.
. scripts/bin.sh
common="-duration 10s -rounds 3"
# On PostgreSQL, pgxdb.ShareCommits too (dbop+share), which only pgxdb has.
strategies() {
	case $1 in
	postgres) echo "-strategies dbop+share,dbop+hotspot,dbop+bulkhead,reference" ;;
	*) echo "-strategies dbop+hotspot,dbop+bulkhead,reference" ;;
	esac
}
run() {
	name=$1
	shift
	if [ -n "$want" ] && ! echo " $want " | grep -q " $name "; then
		return 0
	fi
	out=results/hotspot-$name
	echo "== $name"
	{
		echo "command (from benchmarks/): go run ./cmd/contention $* $(strategies "$2") $common -charts $out"
		echo
	} > "$out.txt"
	uptime > "$out.load"
	"$bin" "$@" $(strategies "$2") $common -charts "$out" >> "$out.txt" 2>&1 || true
	uptime >> "$out.load"
	sed -n '/against the goal/,$p' "$out.txt"
}
want="$*"
for backend in postgres mariadb; do
	for variant in serializable lockcycle; do
		for p in 1 2; do
			run "$backend-$variant-${p}p" -backend "$backend" -variant "$variant" -processes "$p"
		done
		run "$backend-$variant-32w2a" -backend "$backend" -variant "$variant" -workers 32 -accounts 2
	done
done
if [ -n "${DBOP_TEST_GALERA:-}" ]; then
	for variant in serializable lockcycle; do
		for p in 1 2; do
			run "galera-$variant-${p}p" -backend galera -variant "$variant" -processes "$p"
		done
	done
fi
