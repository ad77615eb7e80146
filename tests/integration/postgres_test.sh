#!/usr/bin/env bash
# postgres_test.sh — start_postgres (lib.sh) gives a private PostgreSQL
# server that the state-database tests can use: reachable on its
# unix socket and on 127.0.0.1 as user vigie, UTF-8, and what it committed
# survives restart_postgres (an immediate stop, a crash as clients see it,
# then a start on the same port); cleanup stops it and removes its dir.
# SKIP, with the reason, only when the server cannot run on this machine.
. "$(dirname "$0")/lib.sh"

need_postgres
ok "PostgreSQL answers on $PG_DIR (port $PG_PORT)"

sql() { psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"; }
eq "unix socket, user vigie" "$(sql "$PG_URL" 'SELECT current_user')" "vigie"
eq "TCP on 127.0.0.1" "$(sql "$PG_TCP_URL" 'SELECT inet_server_addr()')" "127.0.0.1"
eq "UTF-8" "$(sql "$PG_URL" 'SHOW server_encoding')" "UTF8"
check "a table and a row" sql "$PG_URL" "CREATE TABLE kept(x BIGINT); INSERT INTO kept VALUES (42)"
check "restart (immediate stop, start on the same port)" restart_postgres
eq "the committed row survived" "$(sql "$PG_URL" 'SELECT x FROM kept')" "42"
stop_postgres
if sql "$PG_URL" 'SELECT 1' >/dev/null 2>&1; then nok "stopped: refuses"; else ok "stopped: refuses"; fi
check "started again" _pg_start
dir=$PG_DIR
cleanup; trap - EXIT
if [[ -e $dir ]] || pgrep -f "postgres -D $dir/data" >/dev/null; then nok "cleanup stops it and removes $dir"
else ok "cleanup stops it and removes its dir"; fi
done_testing
