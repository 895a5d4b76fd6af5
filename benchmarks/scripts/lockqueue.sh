#!/bin/sh
# lockqueue.sh samples, about every 5 ms over one psql session, the holders
# and waiters of dbop.HotSpot's PostgreSQL lock tables (pgxdb.CreateHotSpotLocks)
# in the database of DBOP_BENCH_POSTGRES or DBOP_TEST_POSTGRES and its current
# schema, and prints how often each pair was seen: count, holders, waiters.
# Run it beside a contention run on the same database; scripts/pglock.sh
# does (results/pglock-fleet-queue.txt).
#
# Usage: sh scripts/lockqueue.sh SAMPLES
set -eu
if [ $# -ne 1 ]; then
	echo "usage: sh scripts/lockqueue.sh SAMPLES (with DBOP_BENCH_POSTGRES or DBOP_TEST_POSTGRES set)" >&2
	exit 2
fi
n=$1
dsn=${DBOP_BENCH_POSTGRES:-${DBOP_TEST_POSTGRES:-}}
if [ -z "$dsn" ]; then
	echo "lockqueue.sh: set DBOP_BENCH_POSTGRES or DBOP_TEST_POSTGRES" >&2
	exit 2
fi
query="SELECT count(*) FILTER (WHERE l.granted) || ' ' || count(*) FILTER (WHERE NOT l.granted)
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
AND c.relnamespace = current_schema()::regnamespace
AND c.relname LIKE 'dbop_hotspot_lock_%' AND l.mode <> 'AccessShareLock';"
samples=$(mktemp)
trap 'rm -f "$samples"' EXIT
i=0
while [ "$i" -lt "$n" ]; do
	echo "$query"
	echo "SELECT pg_sleep(0.005);"
	i=$((i + 1))
done | psql -X -v ON_ERROR_STOP=1 -At -q "$dsn" > "$samples"
grep -v '^$' "$samples" | sort | uniq -c | sort -rn
