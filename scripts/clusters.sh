#!/usr/bin/env bash
# Starts and stops the two distributed setups dbop is tested on, beside the
# main servers, on loopback:
#
#   galera  a 3-node MariaDB Galera cluster (ports 3311-3313)
#   pgha    a PostgreSQL primary (5441) and a streaming standby (5442)
#
# Usage:
#   scripts/clusters.sh start [galera|pgha|all]   start (idempotent), wait until ready
#   scripts/clusters.sh stop  [galera|pgha|all]   stop and delete the data
#   scripts/clusters.sh status                    one line per node
#   scripts/clusters.sh env                       the test variables, for eval
#   scripts/clusters.sh node galera N start|kill|stop|pause|resume
#   scripts/clusters.sh node pgha primary|standby start|kill|stop|promote
#
# Everything lives under $DBOP_CLUSTER_DIR (default /tmp/dbop-clusters). The
# nodes run as the users mysql and postgres, which own their directories:
# rsync state transfer fails as root over root-owned datadirs, and initdb
# refuses root (docs/backends.md §7, §8). Needs galera-4, rsync and the
# PostgreSQL server binaries; .ci/run installs the first two if missing.
set -euo pipefail

BASE="${DBOP_CLUSTER_DIR:-/tmp/dbop-clusters}"
PGBIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)}"
GALERA_LIB="${GALERA_LIB:-/usr/lib/galera/libgalera_smm.so}"

GALERA_PORTS=(3311 3312 3313)   # client ports
GROUP_PORTS=(4567 4577 4587)    # gcomm
IST_PORTS=(4568 4578 4588)
SST_PORTS=(4444 4454 4464)
PG_PRIMARY=5441
PG_STANDBY=5442

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

galera_ready() { # galera_ready N: the node is Synced in a Primary component
	local d
	d=$(gdir "$1")
	[ "$(mariadb --socket="$d/mysqld.sock" -uroot -N -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='wsrep_local_state_comment'" 2>/dev/null)" = Synced ]
}

galera_node_start() { # galera_node_start N [--wsrep-new-cluster]
	local n=$1 d
	d=$(gdir "$n")
	if [ -f "$d/mysqld.pid" ] && kill -0 "$(cat "$d/mysqld.pid")" 2>/dev/null; then return 0; fi
	mkdir -p "$d/data"
	galera_cnf "$n"
	if [ "$n" = 1 ] && [ ! -d "$d/data/mysql" ]; then
		mariadb-install-db --defaults-file="$d/my.cnf" --user=mysql --auth-root-authentication-method=normal >"$d/install.log" 2>&1 ||
			{ cat "$d/install.log" >&2; die "mariadb-install-db failed"; }
	fi
	chown -R mysql:mysql "$d"
	shift
	# mariadbd drops to user=mysql itself; started in the background.
	setsid /usr/sbin/mariadbd --defaults-file="$d/my.cnf" "$@" </dev/null >>"$d/stdout.log" 2>&1 &
	wait_for 120 "galera node $n" galera_ready "$n"
}

galera_start() {
	command -v mariadbd >/dev/null && [ -f "$GALERA_LIB" ] || die "galera-4 is not installed ($GALERA_LIB)"
	command -v rsync >/dev/null || die "rsync is not installed"
	local fresh=""
	[ -d "$(gdir 1)/data/mysql" ] || fresh=1
	if [ -n "$fresh" ] || ! galera_ready 1; then
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
	galera_node_start 2
	galera_node_start 3
	log "galera: 3 nodes synced on ports ${GALERA_PORTS[*]}"
}

galera_node() { # galera_node N start|kill|stop|pause|resume
	local n=$1 d pid
	d=$(gdir "$n")
	pid=$(cat "$d/mysqld.pid" 2>/dev/null || true)
	case $2 in
	start) galera_node_start "$n" ;;
	kill) [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -f "$d/mysqld.pid" ;;
	stop) [ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done || true ;;
	pause) kill -STOP "$pid" ;;
	resume) kill -CONT "$pid" ;;
	*) die "galera node: unknown action $2" ;;
	esac
}

galera_stop() {
	for n in 3 2 1; do
		[ -d "$(gdir $n)" ] || continue
		galera_node "$n" resume 2>/dev/null || true
		galera_node "$n" stop
	done
	rm -rf "$BASE/galera"
}

# --- PostgreSQL primary and standby -------------------------------------

pgdir() { echo "$BASE/pgha/$1"; }

pg_ready() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$1"; }

pg_node() { # pg_node primary|standby start|kill|stop|promote
	local name=$1 d port
	d=$(pgdir "$name")
	port=$PG_PRIMARY
	[ "$name" = standby ] && port=$PG_STANDBY
	case $2 in
	start) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 start >/dev/null ;;
	stop) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null || true ;;
	kill) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null || true ;;
	promote) as_user postgres "$PGBIN/pg_ctl" -D "$d/data" -w promote >/dev/null ;;
	*) die "pgha node: unknown action $2" ;;
	esac
	if [ "$2" = start ]; then wait_for 60 "postgres $name" pg_ready "$port"; fi
}

pgha_start() {
	local p s
	p=$(pgdir primary)
	s=$(pgdir standby)
	mkdir -p "$p" "$s"
	chown -R postgres:postgres "$BASE/pgha"
	if [ ! -f "$p/data/PG_VERSION" ]; then
		as_user postgres "$PGBIN/initdb" -D "$p/data" -U postgres --auth=trust >"$p/initdb.log" 2>&1 ||
			{ cat "$p/initdb.log" >&2; die "initdb failed"; }
		cat >>"$p/data/postgresql.conf" <<EOF
port = $PG_PRIMARY
listen_addresses = '127.0.0.1'
unix_socket_directories = '$p'
wal_level = replica
max_wal_senders = 5
hot_standby = on
shared_buffers = 32MB
fsync = off
EOF
		echo "host replication all 127.0.0.1/32 trust" >>"$p/data/pg_hba.conf"
	fi
	pg_ready $PG_PRIMARY || pg_node primary start
	as_user postgres "$PGBIN/psql" -h 127.0.0.1 -p $PG_PRIMARY -U postgres -qtAc \
		"SELECT 1 FROM pg_database WHERE datname = 'dbop_test'" | grep -q 1 ||
		as_user postgres "$PGBIN/psql" -h 127.0.0.1 -p $PG_PRIMARY -U postgres -qc "CREATE DATABASE dbop_test"
	if [ ! -f "$s/data/PG_VERSION" ]; then
		as_user postgres "$PGBIN/pg_basebackup" --checkpoint=fast -D "$s/data" -R -h 127.0.0.1 -p $PG_PRIMARY -U postgres >"$s/basebackup.log" 2>&1 ||
			{ cat "$s/basebackup.log" >&2; die "pg_basebackup failed"; }
		sed -i "s/^port = .*/port = $PG_STANDBY/; s|^unix_socket_directories = .*|unix_socket_directories = '$s'|" "$s/data/postgresql.conf"
	fi
	pg_ready $PG_STANDBY || pg_node standby start
	wait_for 30 "streaming replication" sh -c \
		"'$PGBIN/psql' -h 127.0.0.1 -p $PG_PRIMARY -U postgres -qtAc \"SELECT state FROM pg_stat_replication\" | grep -q streaming"
	log "pgha: primary on $PG_PRIMARY streaming to the standby on $PG_STANDBY"
}

pgha_stop() {
	for n in standby primary; do
		[ -f "$(pgdir $n)/data/PG_VERSION" ] && pg_node "$n" kill
	done
	rm -rf "$BASE/pgha"
}

# --- commands ------------------------------------------------------------

print_env() {
	cat <<EOF
export DBOP_TEST_GALERA='root@tcp(127.0.0.1:${GALERA_PORTS[0]})/dbop_test,root@tcp(127.0.0.1:${GALERA_PORTS[1]})/dbop_test,root@tcp(127.0.0.1:${GALERA_PORTS[2]})/dbop_test'
export DBOP_TEST_PG_FAILOVER='postgres://postgres@127.0.0.1:${PG_PRIMARY},127.0.0.1:${PG_STANDBY}/dbop_test?sslmode=disable&target_session_attrs=read-write'
export DBOP_CLUSTER_SCRIPT='$(cd "$(dirname "$0")" && pwd)/clusters.sh'
export DBOP_CLUSTER_DIR='$BASE'
EOF
}

status() {
	for n in 1 2 3; do
		local d
		d=$(gdir $n)
		if galera_ready $n; then echo "galera node$n ${GALERA_PORTS[$((n - 1))]} synced"; else echo "galera node$n ${GALERA_PORTS[$((n - 1))]} down"; fi
	done
	for n in primary standby; do
		local port=$PG_PRIMARY
		[ $n = standby ] && port=$PG_STANDBY
		if pg_ready $port; then
			echo "pgha $n $port up (in recovery: $("$PGBIN/psql" -h 127.0.0.1 -p $port -U postgres -qtAc 'SELECT pg_is_in_recovery()' 2>/dev/null))"
		else echo "pgha $n $port down"; fi
	done
}

cmd=${1:-}
what=${2:-all}
case $cmd in
start)
	case $what in galera) galera_start ;; pgha) pgha_start ;; all) galera_start; pgha_start ;; *) die "start what? $what" ;; esac ;;
stop)
	case $what in galera) galera_stop ;; pgha) pgha_stop ;; all) galera_stop; pgha_stop ;; *) die "stop what? $what" ;; esac ;;
status) status ;;
env) print_env ;;
node)
	case ${2:-} in
	galera) galera_node "${3:?node number}" "${4:?action}" ;;
	pgha) pg_node "${3:?primary or standby}" "${4:?action}" ;;
	*) die "node galera|pgha …" ;;
	esac ;;
*) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
