#!/bin/sh
# pglock-pgbench.sh measures, with pgbench and no dbop at all, whether
# transactions that wait for a LOCK TABLE in place get more done than one
# client running them one after another (docs/contention.md, "Limits"). It
# prints tps for: one client without a lock; one client with the lock sent
# in the BEGIN round trip; 2 and 4 clients with it, each waiting for the
# lock in the server while another holds it. Run it from benchmarks/ with
# DBOP_TEST_POSTGRES set (a URL pgbench and psql accept); it makes the
# tables pb_acct and pb_lock there and drops them at the end.
set -eu
url=${DBOP_TEST_POSTGRES:?set DBOP_TEST_POSTGRES}
secs=${SECS:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"; psql -X -q "$url" -c "DROP TABLE IF EXISTS pb_acct, pb_lock" >/dev/null 2>&1 || true' EXIT
psql -X -q "$url" -c "DROP TABLE IF EXISTS pb_acct, pb_lock" -c "CREATE TABLE pb_acct (id int PRIMARY KEY, b bigint NOT NULL)" \
	-c "INSERT INTO pb_acct SELECT g, 0 FROM generate_series(1, 4) g" -c "CREATE TABLE pb_lock ()" 2>/dev/null
cat > "$dir/plain.sql" <<'SQL'
\set a random(1, 4)
\set b random(1, 4)
BEGIN ISOLATION LEVEL READ COMMITTED;
UPDATE pb_acct SET b = b - 1 WHERE id = :a;
UPDATE pb_acct SET b = b + 1 WHERE id = :b;
COMMIT;
SQL
cat > "$dir/locked.sql" <<'SQL'
\set a random(1, 4)
\set b random(1, 4)
BEGIN ISOLATION LEVEL READ COMMITTED \; LOCK TABLE pb_lock IN EXCLUSIVE MODE;
UPDATE pb_acct SET b = b - 1 WHERE id = :a;
UPDATE pb_acct SET b = b + 1 WHERE id = :b;
COMMIT;
SQL
echo "pgbench -T $secs, 4 accounts, transfers of one unit; $(nproc) cores; $(psql -X -At "$url" -c 'SHOW server_version')"
for round in 1 2 3; do
	for run in "plain 1" "locked 1" "locked 2" "locked 4"; do
		set -- $run
		tps=$(pgbench -n -c "$2" -T "$secs" -f "$dir/$1.sql" "$url" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
		echo "round $round: $1, $2 client(s): $tps tps"
	done
done
