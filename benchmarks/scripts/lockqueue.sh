#!/bin/sh
# lockqueue.sh DATABASE SAMPLES samples, about every 5 ms over one psql
# session, the holders and waiters of dbop.HotSpot's PostgreSQL lock tables
# (pgxdb.CreateHotSpotLocks) and prints how often each pair was seen:
# count, holders, waiters. Run it beside a contention run on the same
# database (results/pglock-fleet-queue.txt). Needs psql; connects to
# 127.0.0.1 as postgres unless PGHOST/PGUSER say otherwise.
set -eu
db=$1
n=$2
i=0
while [ "$i" -lt "$n" ]; do
	echo "SELECT count(*) FILTER (WHERE l.granted) || ' ' || count(*) FILTER (WHERE NOT l.granted) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname LIKE 'dbop_hotspot_lock_%' AND l.mode <> 'AccessShareLock';"
	echo "SELECT pg_sleep(0.005);"
	i=$((i + 1))
done | psql -h "${PGHOST:-127.0.0.1}" -U "${PGUSER:-postgres}" -d "$db" -At -q | grep -v '^$' | sort | uniq -c | sort -rn
