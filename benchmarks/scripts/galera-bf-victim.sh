#!/bin/sh
# galera-bf-victim.sh: the simplest brute-force abort of a victim that
# waits for another local transaction's lock (docs/backends.md §7.13), with
# the mariadb client, on the cluster of scripts/clusters.sh (node 1: 3311,
# node 2: 3312). On node 1 a holder locks a gate row and sleeps; the victim
# updates a row, then waits for the gate; a second later node 2 updates the
# same row, so node 1's applier must abort the victim. A victim the abort
# did not wake would end only at its innodb_lock_wait_timeout (5 s), or,
# with max_statement_time = 2 (what a dbop attempt deadline sets on
# MariaDB), at 2 s. Printed: how and when the victim ended, and the row.
#
#   sh scripts/galera-bf-victim.sh    results/galera-bf-victim.txt (OUT overrides)
set -eu
out=${OUT:-results/galera-bf-victim.txt}
m1="mysql -h127.0.0.1 -P3311 -uroot"
m2="mysql -h127.0.0.1 -P3312 -uroot"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {
	v="SET SESSION innodb_lock_wait_timeout = 5; $1 BEGIN; UPDATE r SET c = c + 1 WHERE id = 1; SELECT id FROM g WHERE id = 1 FOR UPDATE; COMMIT;"
	$m1 -e "DROP DATABASE IF EXISTS bfvictim; CREATE DATABASE bfvictim; USE bfvictim;
		CREATE TABLE r (id INT PRIMARY KEY, c INT NOT NULL) ENGINE=InnoDB;
		CREATE TABLE g (id INT PRIMARY KEY) ENGINE=InnoDB;
		INSERT INTO r VALUES (1, 0); INSERT INTO g VALUES (1);"
	sleep 1
	($m1 bfvictim -e "BEGIN; SELECT id FROM g WHERE id = 1 FOR UPDATE; SELECT SLEEP(8); ROLLBACK;" >/dev/null 2>&1 &)
	sleep 1
	(
		start=$(now)
		$m1 bfvictim -e "$v" >"$tmp/victim" 2>&1 || true
		since "$start" >>"$tmp/victim"
	) &
	sleep 1
	$m2 bfvictim -e "UPDATE r SET c = c + 10 WHERE id = 1"
	sleep 7
	echo "victim: $(grep -o 'ERROR [0-9]* ([0-9A-Z]*)' "$tmp/victim" || echo committed) after $(tail -n1 "$tmp/victim") s"
	echo "row: $($m1 -N bfvictim -e 'SELECT c FROM r WHERE id = 1') (10: node 2's write alone, the victim's rolled back)"
}
{
	echo "command (from benchmarks/): sh scripts/galera-bf-victim.sh; $(date -u '+%Y-%m-%d %H:%M UTC'), $($m1 -N -e 'SELECT VERSION()')"
	echo
	echo "== the victim with innodb_lock_wait_timeout = 5 only"
	run ""
	echo
	echo "== the same, with max_statement_time = 2"
	run "SET SESSION max_statement_time = 2;"
} | tee "$out"
$m1 -e "DROP DATABASE bfvictim"
