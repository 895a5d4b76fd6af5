#!/usr/bin/env bash
# Starts and stops the two distributed setups dbop is tested on, beside the
# main servers, on loopback (docs/clusters.md):
#
#   galera  a 3-node MariaDB Galera cluster (client ports 3311-3313)
#   pgha    two PostgreSQL servers (5441, 5442): a primary and a standby it
#           replicates to synchronously; which is which changes at a failover
#
# Usage:
#   scripts/clusters.sh start [galera|pgha|all]   start (idempotent), wait until ready
#   scripts/clusters.sh stop  [galera|pgha|all]   stop and delete the data
#   scripts/clusters.sh repair [galera|pgha|all]  bring every node back: restart dead
#                                                 Galera nodes (IST), rebuild a dead or
#                                                 demoted PostgreSQL node as a standby
#   scripts/clusters.sh status                    one line per node
#   scripts/clusters.sh diagnose [galera|pgha|all] states and the ends of the logs
#   scripts/clusters.sh env                       the test variables, for eval
#   scripts/clusters.sh node galera N start|kill|stop|pause|resume|pid|state|size
#   scripts/clusters.sh node pgha N|primary|standby start|kill|stop|promote|port
#
# "node pgha primary kill" stops whichever server is the primary now with
# -m immediate (a crash); "node pgha standby promote" promotes the one in
# recovery. A Galera node restarted after kill -9 first recovers its
# position with --wsrep-recover, so it rejoins by IST, not a full SST.
#
# Everything lives under $DBOP_CLUSTER_DIR (default /tmp/dbop-clusters). The
# nodes run as the users mysql and postgres, which own their directories:
# rsync state transfer fails as root over root-owned datadirs, and initdb
# refuses root (docs/backends.md §7.8, §8.1). Needs galera-4, rsync and the
# PostgreSQL server binaries; .ci/run installs the first two if missing.
set -euo pipefail

BASE="${DBOP_CLUSTER_DIR:-/tmp/dbop-clusters}"
PGBIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)}"
GALERA_LIB="${GALERA_LIB:-/usr/lib/galera/libgalera_smm.so}"

GALERA_PORTS=(3311 3312 3313)   # client ports
GROUP_PORTS=(4567 4577 4587)    # gcomm
IST_PORTS=(4568 4578 4588)
SST_PORTS=(4444 4454 4464)
PG_PORTS=(5441 5442)

log() { printf 'clusters: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

as_user() { # as_user USER CMD...: run as USER (we are root in CI)
	local user=$1; shift
	if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

wait_for() { # wait_for SECONDS WHAT CMD...
	local secs=$1 what=$2; shift 2
	for _ in $(seq 1 "$((secs * 5))"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	die "$what not ready after ${secs}s"
}

# --- Galera ----------------------------------------------------------------

gdir() { echo "$BASE/galera/node$1"; }

galera_cnf() { # galera_cnf N
	local i=$(($1 - 1)) d
	d=$(gdir "$1")
	local members="gcomm://127.0.0.1:${GROUP_PORTS[0]},127.0.0.1:${GROUP_PORTS[1]},127.0.0.1:${GROUP_PORTS[2]}"
	cat >"$d/my.cnf" <<EOF
[mariadbd]
user=mysql
datadir=$d/data
socket=$d/mysqld.sock
pid-file=$d/mysqld.pid
log-error=$d/error.log
port=${GALERA_PORTS[$i]}
bind-address=127.0.0.1
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
max_connections=300
wsrep_on=ON
wsrep_provider=$GALERA_LIB
wsrep_cluster_name=dbop
wsrep_cluster_address=$members
wsrep_node_name=node$1
wsrep_node_address=127.0.0.1:${GROUP_PORTS[$i]}
wsrep_provider_options=base_port=${GROUP_PORTS[$i]};ist.recv_addr=127.0.0.1:${IST_PORTS[$i]};gcache.size=32M
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:${SST_PORTS[$i]}
EOF
}

galera_status() { # galera_status N VARIABLE: a wsrep status variable of node N, or nothing
	mariadb --socket="$(gdir "$1")/mysqld.sock" --connect-timeout=2 -uroot -N -e \
		"SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='$2'" 2>/dev/null || true
}

galera_state() { galera_status "$1" wsrep_local_state_comment; } # Synced, Joined, … or nothing

galera_ready() { [ "$(galera_state "$1")" = Synced ]; } # Synced in a Primary component

galera_pid() { # galera_pid N: the pid of a live node, or nothing
	local f
	f="$(gdir "$1")/mysqld.pid"
	if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then cat "$f"; fi
}

galera_node_start() { # galera_node_start N [--wsrep-new-cluster]
	local n=$1 d pos=()
	d=$(gdir "$n")
	shift
	if [ -n "$(galera_pid "$n")" ]; then
		wait_for 180 "galera node $n" galera_ready "$n"
		return 0
	fi
	mkdir -p "$d/data"
	galera_cnf "$n"
	if [ "$n" = 1 ] && [ ! -d "$d/data/mysql" ]; then
		mariadb-install-db --defaults-file="$d/my.cnf" --user=mysql --auth-root-authentication-method=normal >"$d/install.log" 2>&1 ||
			{ cat "$d/install.log" >&2; die "mariadb-install-db failed"; }
	fi
	chown -R mysql:mysql "$d"
	# After a crash (kill -9) grastate.dat says seqno -1: recover the last
	# committed position from InnoDB, as galera_recovery does, so that the
	# node asks for the write-sets it missed (IST) instead of a full copy.
	if [ $# = 0 ] && [ -f "$d/data/grastate.dat" ] && grep -q '^seqno: *-1' "$d/data/grastate.dat"; then
		/usr/sbin/mariadbd --defaults-file="$d/my.cnf" --wsrep-recover --log-error="$d/recover.log" >/dev/null 2>&1 || true
		local p
		p=$(sed -n 's/.*WSREP: Recovered position: \([0-9a-f-]*:[0-9-]*\).*/\1/p' "$d/recover.log" | tail -n1)
		[ -n "$p" ] && pos=(--wsrep_start_position="$p")
	fi
	local logsize=0
	[ -f "$d/error.log" ] && logsize=$(stat -c %s "$d/error.log")
	# mariadbd drops to user=mysql itself; started in the background.
	setsid /usr/sbin/mariadbd --defaults-file="$d/my.cnf" "${pos[@]}" "$@" </dev/null >>"$d/stdout.log" 2>&1 &
	# A node restarted within seconds of a crash waits until the group has
	# evicted its previous incarnation (evs.inactive_timeout, 15 s).
	wait_for 180 "galera node $n" galera_ready "$n"
	# How it got the cluster's state: the joiner's rsync script says which.
	if [ "${1:-}" = --wsrep-new-cluster ]; then
		echo "galera node $n bootstrapped a new cluster"
		return 0
	fi
	local how
	how=$(tail -c +"$((logsize + 1))" "$d/error.log" | sed -n 's/.*rsync \(IST\|SST\) completed on joiner.*/\1/p' | tail -n1)
	if [ -z "$how" ] && tail -c +"$((logsize + 1))" "$d/error.log" | grep -q 'state transfer needed: no'; then
		how="none (nothing was committed while it was away)"
	fi
	[ -n "$how" ] && echo "galera node $n rejoined by $how"
	return 0
}

galera_start() {
	command -v mariadbd >/dev/null && [ -f "$GALERA_LIB" ] || die "galera-4 is not installed ($GALERA_LIB)"
	command -v rsync >/dev/null || die "rsync is not installed"
	local fresh="" n
	[ -d "$(gdir 1)/data/mysql" ] || fresh=1
	if [ -n "$fresh" ] || { ! galera_ready 1 && ! galera_ready 2 && ! galera_ready 3; }; then
		local d
		d=$(gdir 1)
		# A fresh cluster, or node 1 restarted after a full stop, bootstraps.
		[ -f "$d/data/grastate.dat" ] && sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$d/data/grastate.dat"
		galera_node_start 1 --wsrep-new-cluster
	fi
	if [ -n "$fresh" ]; then
		mariadb --socket="$(gdir 1)/mysqld.sock" -uroot -e "
			CREATE DATABASE IF NOT EXISTS dbop_test;
			CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
			GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
	fi
	for n in 1 2 3; do galera_node_start "$n"; done
	log "galera: 3 nodes synced on ports ${GALERA_PORTS[*]}"
}

galera_node() { # galera_node N start|kill|stop|pause|resume|pid
	local n=$1 d pid
	d=$(gdir "$n")
	pid=$(galera_pid "$n")
	case $2 in
	start) galera_node_start "$n" ;;
	kill) [ -n "$pid" ] || die "galera node $n is not running"
		kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; rm -f "$d/mysqld.pid" ;;
	stop) if [ -n "$pid" ]; then kill -CONT "$pid"; kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; fi ;;
	pause) [ -n "$pid" ] || die "galera node $n is not running"; kill -STOP "$pid" ;;
	resume) [ -n "$pid" ] || die "galera node $n is not running"; kill -CONT "$pid" ;;
	pid) [ -n "$pid" ] || die "galera node $n is not running"; echo "$pid" ;;
	state) s=$(galera_state "$n"); echo "${s:-down}" ;;
	size) s=$(galera_status "$n" wsrep_cluster_size); echo "${s:-0}" ;;
	*) die "galera node: unknown action $2" ;;
	esac
}

galera_primary() { [ "$(galera_status "$1" wsrep_cluster_status)" = Primary ]; }

# galera_repair: every node running, synced, in one primary component of
# three. A node that runs but stays out of the group (non-primary after a
# partition, or stuck joining) is killed and restarted; when every running
# node has lost the primary component, the most advanced one bootstraps it
# again (pc.bootstrap, the documented recovery from a lost quorum), and the
# others rejoin it.
galera_repair() {
	local n pid running=() best="" best_seqno=-2 s
	for n in 1 2 3; do
		pid=$(galera_pid "$n")
		[ -n "$pid" ] && { kill -CONT "$pid"; running+=("$n"); }
	done
	[ -d "$(gdir 1)/data/mysql" ] && [ ${#running[@]} -gt 0 ] || { galera_start; return; }
	# A view change may be under way: give the group a moment to form.
	for _ in $(seq 1 100); do
		for n in "${running[@]}"; do galera_primary "$n" && break 2; done
		sleep 0.2
	done
	local primary=""
	for n in "${running[@]}"; do galera_primary "$n" && { primary=$n; break; }; done
	if [ -z "$primary" ]; then
		for n in "${running[@]}"; do
			s=$(galera_status "$n" wsrep_last_committed)
			if [ -n "$s" ] && [ "$s" -gt "$best_seqno" ]; then best=$n best_seqno=$s; fi
		done
		[ -n "$best" ] || die "galera: no running node answers"
		log "galera: no primary component; node $best (seqno $best_seqno) bootstraps it again"
		mariadb --socket="$(gdir "$best")/mysqld.sock" -uroot -e "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"
		wait_for 60 "galera node $best as a primary component" galera_ready "$best"
	fi
	for n in 1 2 3; do
		if [ -z "$(galera_pid "$n")" ]; then galera_node_start "$n" >/dev/null; continue; fi
		for _ in $(seq 1 150); do galera_ready "$n" && break; sleep 0.2; done
		if ! galera_ready "$n"; then
			log "galera: node $n runs but is $(galera_state "$n" || true) outside the group; restarting it"
			galera_node "$n" kill
			galera_node_start "$n" >/dev/null
		fi
	done
	s=$(galera_status 1 wsrep_cluster_size)
	[ "$s" = 3 ] || die "galera: repaired, but node 1 sees a cluster of ${s:-0}"
	log "galera: 3 nodes synced on ports ${GALERA_PORTS[*]}"
}

# galera_diagnose: what each node says of itself and the end of its log,
# for a test or CI run that failed.
galera_diagnose() {
	local n
	for n in 1 2 3; do
		echo "--- galera node $n: pid $(galera_pid "$n" || true), state $(galera_state "$n" || true), cluster $(galera_status "$n" wsrep_cluster_status || true) of $(galera_status "$n" wsrep_cluster_size || true), last committed $(galera_status "$n" wsrep_last_committed || true)"
		[ -f "$(gdir "$n")/error.log" ] || continue
		# Why a write-set could not be applied (the row event, the table,
		# the error code), wherever it is in the log: a node that loses the
		# inconsistency vote leaves, and the end of its log no longer says.
		grep -E 'Slave SQL|Could not execute|Error_code|Failed to apply|[Ii]nconsisten' "$(gdir "$n")/error.log" | head -n 12 | cut -c1-400 || true
		grep -E 'WSREP|ERROR|Warning' "$(gdir "$n")/error.log" | grep -vE 'Aborted connection|^\s*$' | tail -n 25 | cut -c1-240
	done
}

galera_stop() {
	for n in 3 2 1; do
		[ -d "$(gdir $n)" ] || continue
		galera_node "$n" stop
	done
	rm -rf "$BASE/galera"
}

# --- PostgreSQL primary and standby -------------------------------------
# The nodes are numbered; a node's role is what it says it is now
# (pg_is_in_recovery), so that the commands stay right after a failover.

pgdir() { echo "$BASE/pgha/node$1"; }
pgport() { echo "${PG_PORTS[$(($1 - 1))]}"; }
pg_ready() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$(pgport "$1")"; }
pg_sql() { # pg_sql N SQL
	as_user postgres "$PGBIN/psql" -h 127.0.0.1 -p "$(pgport "$1")" -U postgres -d postgres -qtAc "$2"
}
pg_role() { # pg_role N: primary, standby or down
	local r
	r=$(pg_sql "$1" "SELECT pg_is_in_recovery()" 2>/dev/null) || { echo down; return; }
	if [ "$r" = f ]; then echo primary; else echo standby; fi
}

pg_resolve() { # pg_resolve N|primary|standby: a node number
	case $1 in
	1 | 2) echo "$1" ;;
	primary | standby)
		for n in 1 2; do
			if [ "$(pg_role $n)" = "$1" ]; then echo $n; return; fi
		done
		die "pgha: no $1 is running" ;;
	*) die "pgha: no node $1" ;;
	esac
}

pg_node() { # pg_node N|primary|standby start|kill|stop|promote|port
	local n d
	n=$(pg_resolve "$1")
	d=$(pgdir "$n")
	case $2 in
	start) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 start >/dev/null
		wait_for 60 "postgres node $n" pg_ready "$n" ;;
	stop) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null || true ;;
	kill) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null || true ;;
	promote) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -w promote >/dev/null ;;
	port) pgport "$n" ;;
	*) die "pgha node: unknown action $2" ;;
	esac
}

pg_clone() { # pg_clone N FROM: make node N a streaming standby of node FROM
	local n=$1 from=$2 d
	d=$(pgdir "$n")
	[ -f "$d/data/PG_VERSION" ] && as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$d"
	mkdir -p "$d"
	chown postgres:postgres "$d"
	as_user postgres "$PGBIN/pg_basebackup" --checkpoint=fast -D "$d/data" -R -h 127.0.0.1 -p "$(pgport "$from")" -U postgres >"$d/basebackup.log" 2>&1 ||
		{ cat "$d/basebackup.log" >&2; die "pg_basebackup failed"; }
	sed -i "s/^port = .*/port = $(pgport "$n")/; s|^unix_socket_directories = .*|unix_socket_directories = '$d'|" "$d/data/postgresql.conf"
	# A standby promoted with no standby of its own must not wait for one.
	sed -i '/^synchronous_standby_names/d' "$d/data/postgresql.auto.conf"
	pg_node "$n" start
}

pg_wait_streaming() { # pg_wait_streaming PRIMARY
	wait_for 30 "streaming replication" sh -c \
		"'$PGBIN/psql' -h 127.0.0.1 -p $(pgport "$1") -U postgres -d postgres -qtAc \"SELECT state FROM pg_stat_replication\" | grep -q streaming"
}

pgha_start() {
	local p
	p=$(pgdir 1)
	mkdir -p "$BASE/pgha"
	if [ ! -f "$p/data/PG_VERSION" ] && [ ! -f "$(pgdir 2)/data/PG_VERSION" ]; then
		mkdir -p "$p"
		chown -R postgres:postgres "$BASE/pgha"
		as_user postgres "$PGBIN/initdb" -D "$p/data" -U postgres --auth=trust >"$p/initdb.log" 2>&1 ||
			{ cat "$p/initdb.log" >&2; die "initdb failed"; }
		cat >>"$p/data/postgresql.conf" <<EOF
port = $(pgport 1)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$p'
wal_level = replica
max_wal_senders = 5
hot_standby = on
shared_buffers = 32MB
max_connections = 200
fsync = off
EOF
		echo "host replication all 127.0.0.1/32 trust" >>"$p/data/pg_hba.conf"
	fi
	pgha_repair
}

# pgha_repair: the running primary stays; every other node is rebuilt as its
# standby (a dead old primary included: it may hold commits the new one
# never received, docs/backends.md §8.7). With no server running, node 1 (or
# the node that has data) starts as it was.
pgha_repair() {
	local primary="" n
	for n in 1 2; do
		if [ "$(pg_role $n)" = primary ]; then
			[ -n "$primary" ] && die "pgha: nodes $primary and $n are both primaries; stop one first"
			primary=$n
		fi
	done
	if [ -z "$primary" ]; then
		for n in 1 2; do
			if [ -f "$(pgdir $n)/data/PG_VERSION" ] && [ ! -f "$(pgdir $n)/data/standby.signal" ]; then primary=$n; break; fi
		done
		[ -n "$primary" ] || die "pgha: no node can be the primary"
		pg_ready "$primary" || pg_node "$primary" start
	fi
	pg_sql "$primary" "SELECT 1 FROM pg_database WHERE datname = 'dbop_test'" | grep -q 1 ||
		pg_sql "$primary" "CREATE DATABASE dbop_test"
	for n in 1 2; do
		[ "$n" = "$primary" ] && continue
		if [ "$(pg_role $n)" != standby ]; then pg_clone "$n" "$primary"; fi
	done
	pg_wait_streaming "$primary"
	# Synchronous replication: a COMMIT is acknowledged once the standby has
	# flushed it, so a failover loses no acknowledged commit (§8.7).
	pg_sql "$primary" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
	pg_sql "$primary" "SELECT pg_reload_conf()" >/dev/null
	wait_for 30 "synchronous replication" sh -c \
		"'$PGBIN/psql' -h 127.0.0.1 -p $(pgport "$primary") -U postgres -d postgres -qtAc \"SELECT sync_state FROM pg_stat_replication\" | grep -q sync"
	log "pgha: node $primary (port $(pgport "$primary")) is the primary, replicating synchronously to the standby"
}

# pgha_diagnose: each node's role and the end of its log.
pgha_diagnose() {
	local n
	for n in 1 2; do
		echo "--- pgha node $n (port $(pgport "$n")): $(pg_role "$n")"
		[ -f "$(pgdir "$n")/log" ] && tail -n 15 "$(pgdir "$n")/log" | cut -c1-240
	done
}

pgha_stop() {
	for n in 1 2; do
		[ -f "$(pgdir $n)/data/PG_VERSION" ] && as_user postgres "$PGBIN/pg_ctl" -D "$(pgdir $n)/data" -m immediate -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$BASE/pgha"
}

# --- commands ------------------------------------------------------------

print_env() {
	cat <<EOF
export DBOP_TEST_GALERA='root@tcp(127.0.0.1:${GALERA_PORTS[0]})/dbop_test,root@tcp(127.0.0.1:${GALERA_PORTS[1]})/dbop_test,root@tcp(127.0.0.1:${GALERA_PORTS[2]})/dbop_test'
export DBOP_TEST_PG_FAILOVER='postgres://postgres@127.0.0.1:${PG_PORTS[0]},127.0.0.1:${PG_PORTS[1]}/dbop_test?sslmode=disable&target_session_attrs=read-write'
export DBOP_CLUSTER_SCRIPT='$(cd "$(dirname "$0")" && pwd)/clusters.sh'
export DBOP_CLUSTER_DIR='$BASE'
EOF
}

status() {
	for n in 1 2 3; do
		local s
		s=$(galera_state $n)
		echo "galera node$n ${GALERA_PORTS[$((n - 1))]} ${s:-down}"
	done
	for n in 1 2; do
		echo "pgha node$n $(pgport $n) $(pg_role $n)"
	done
}

cmd=${1:-}
what=${2:-all}
case $cmd in
start)
	case $what in galera) galera_start ;; pgha) pgha_start ;; all) galera_start; pgha_start ;; *) die "start what? $what" ;; esac ;;
repair)
	case $what in galera) galera_repair ;; pgha) pgha_repair ;; all) galera_repair; pgha_repair ;; *) die "repair what? $what" ;; esac ;;
stop)
	case $what in galera) galera_stop ;; pgha) pgha_stop ;; all) galera_stop; pgha_stop ;; *) die "stop what? $what" ;; esac ;;
status) status ;;
diagnose)
	case $what in galera) galera_diagnose ;; pgha) pgha_diagnose ;; all) galera_diagnose; pgha_diagnose ;; *) die "diagnose what? $what" ;; esac ;;
env) print_env ;;
node)
	case ${2:-} in
	galera) galera_node "${3:?node number}" "${4:?action}" ;;
	pgha) pg_node "${3:?node number, primary or standby}" "${4:?action}" ;;
	*) die "node galera|pgha …" ;;
	esac ;;
*) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
