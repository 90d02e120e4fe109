#!/bin/sh
# pgcluster.sh start DIR [PID] | restart DIR | stop DIR: a PostgreSQL
# cluster for the tests and
# benchmarks, in a scratch directory: initdb and pg_ctl of Debian's
# postgresql-15 run as nobody (who owns DIR, mode 0700), the server listens
# on a Unix socket in DIR only (no TCP port, no system service).  start
# prints the libpq conninfo of its database "kh" (user "kh"); a missing
# PostgreSQL is an error, never a skip.  With PID, a watchdog stops the
# cluster and removes DIR once process PID is gone, so a test that was
# killed leaves no server behind.
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGUSER_OS=${PGUSER_OS:-nobody}
set -e
cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] || { echo "usage: pgcluster.sh start DIR [PID] | restart DIR | stop DIR" >&2; exit 2; }
as() { runuser -u "$PGUSER_OS" -- "$@"; }
case "$cmd" in
start)
	for t in initdb pg_ctl; do
		[ -x "$PGBIN/$t" ] || {
			echo "pgcluster: $PGBIN/$t is missing (apt-get install postgresql-15)" >&2
			exit 1
		}
	done
	mkdir -p "$dir"
	chown "$PGUSER_OS" "$dir"
	chmod 700 "$dir"
	fresh=1
	[ -f "$dir/data/PG_VERSION" ] && fresh="" # stopped before: start it again
	[ -z "$fresh" ] || as "$PGBIN/initdb" -D "$dir/data" -U kh --auth=trust -E UTF8 --no-locale \
		--no-instructions >"$dir/initdb.log" 2>&1 || {
		echo "pgcluster: initdb failed: $(tail -n1 "$dir/initdb.log")" >&2
		exit 1
	}
	as "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=200" \
		start >/dev/null || {
		echo "pgcluster: the server did not start: $(tail -n1 "$dir/server.log")" >&2
		exit 1
	}
	[ -z "$fresh" ] || as "$PGBIN/createdb" -h "$dir" -U kh kh
	if [ -n "${3:-}" ]; then
		owner=$3
		(
			while kill -0 "$owner" 2>/dev/null; do sleep 1; done
			if [ -f "$dir/data/postmaster.pid" ]; then
				as "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop
				rm -rf "$dir"
			fi
		) </dev/null >/dev/null 2>&1 &
	fi
	echo "host=$dir dbname=kh user=kh"
	;;
restart)
	as "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
	;;
stop)
	[ -f "$dir/data/postmaster.pid" ] || exit 0
	as "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
	;;
*)
	echo "usage: pgcluster.sh start DIR [PID] | restart DIR | stop DIR" >&2
	exit 2
	;;
esac
