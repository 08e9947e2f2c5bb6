#!/bin/bash
# A throw-away PostgreSQL server for the driver tests (tests/test_patches_drivers.py).
#
#   tools/pg_server.sh start DIR [PORT]   initdb in DIR, start on 127.0.0.1:PORT
#                                         (default 54329), print the libpq DSN
#   tools/pg_server.sh stop DIR           stop it (DIR can then be removed)
#
# Needs Debian's `postgresql` package (initdb, pg_ctl under
# /usr/lib/postgresql/N/bin).  As root the server runs as the `postgres`
# user (DIR is handed to it); otherwise as the calling user.  It listens on
# 127.0.0.1 only, its Unix socket is in DIR, authentication is `trust`,
# fsync is off: for tests only.
set -euo pipefail
cmd=${1:?usage: pg_server.sh start|stop DIR [PORT]}
dir=${2:?usage: pg_server.sh start|stop DIR [PORT]}
port=${3:-54329}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "pg_server.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 2
fi
as_server() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
case "$cmd" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$dir"
    fi
    as_server "$bindir/initdb" -D "$dir/data" -A trust -U postgres \
        --no-sync >"$dir/initdb.log" 2>&1
    as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" \
        start >/dev/null
    echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
    ;;
stop)
    as_server "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "pg_server.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
