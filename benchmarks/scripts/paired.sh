#!/bin/sh
# paired.sh compares builds of dbop.HotSpot on PostgreSQL with less of the
# machine's noise than one invocation each: on this 2-core VM one
# invocation's ratio to the single worker moves by ±0.15 with the disk and
# the scheduler over seconds. Each pair runs HotSpot (one build) and
# Bulkhead(1) (the first build) at the same time, for 8 s, each on a
# database of its own on the same server, so that both see the same
# machine, and prints HotSpot's goodput over Bulkhead(1)'s; the databases
# swap every pair, and the builds alternate. Absolute rates are lower than
# alone: the two share the cores.
#
# Usage, from benchmarks/ with DBOP_TEST_POSTGRES set (its database is not
# used; dbop_pa and dbop_pb on its server are created if missing):
#
#	sh scripts/paired.sh VARIANT PAIRS BINARY...
#
# VARIANT is serializable or lockcycle, PAIRS the pairs per binary, each
# BINARY built from ./cmd/contention (go build -o …). It ends with each
# binary's mean ratio. PAIRED_ARGS adds flags to both commands (e.g.
# "-processes 2"); PAIRED_PARTNER runs another strategy of the first binary
# beside each build's HotSpot instead of dbop+bulkhead (e.g. dbop+hotspot,
# where Bulkhead(1) varies too much to divide by: across processes).
set -eu
variant=$1
pairs=$2
shift 2
base=${DBOP_TEST_POSTGRES%%\?*}
server=${base%/*}
for db in dbop_pa dbop_pb; do
	psql "$server/postgres" -Atc "select 1 from pg_database where datname = '$db'" | grep -q 1 ||
		psql "$server/postgres" -qc "create database $db"
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
goodput() { # strategy file: the last table row's goodput (tx/s)
	grep "^| $1 " "$2" | tail -1 | awk -F'|' '{gsub(/ /, "", $5); print $5}'
}
partner=${PAIRED_PARTNER:-dbop+bulkhead}
i=0
for r in $(seq "$pairs"); do
	for b in "$@"; do
		i=$((i + 1))
		if [ $((i % 2)) = 0 ]; then a=dbop_pa o=dbop_pb; else a=dbop_pb o=dbop_pa; fi
		"$b" -dsn "$server/$a?sslmode=disable" -backend postgres -variant "$variant" \
			-strategies dbop+hotspot -duration 8s ${PAIRED_ARGS:-} > "$out/h" 2>&1 &
		"$1" -dsn "$server/$o?sslmode=disable" -backend postgres -variant "$variant" \
			-strategies "$partner" -duration 8s ${PAIRED_ARGS:-} > "$out/b" 2>&1 || true
		wait || true
		h=$(goodput dbop+hotspot "$out/h")
		k=$(goodput "$partner" "$out/b")
		echo "$variant $b hotspot=$h $partner=$k ratio=$(awk -v h="$h" -v k="$k" 'BEGIN {if (h == "" || k + 0 == 0) print "NA"; else printf "%.3f", h / k}')"
	done
done | awk '{print} {split($5, r, "=")} r[2] != "NA" {s[$2] += r[2]; n[$2]++}
END {for (b in s) printf "mean %s %s %.3f over %d pairs\n", $1, b, s[b] / n[b], n[b]}'
