#!/usr/bin/env bash
# migrate_lock_test.sh — a real vigie-collector whose start-up migrates
# the billing schema while another session holds a lock on the table the
# migration's step needs (issue 15).
#
# Why. A migration's step waited for table locks with no bound: a
# collector started while another was stopped inside a billing
# transaction waited in its start-up until that one resumed, and every
# other collector's writes to the table queued behind its waiting step.
# Now the migration waits at most [state] migrate_lock_timeout_ms per
# try, rolls back (the queued writes go on), names the holding sessions
# and tries again, for [state] migrate_wait in all.
#
# The fault. The holder is a psql session named stopped_collector, in a
# transaction that took the write lock of vigie_billing.resources
# (ROW EXCLUSIVE, as a collector stopped after a batch's writes holds
# it), never committing: a stopped collector as the server sees it. The
# older schema is billing at version 5: step 6 (CREATE INDEX IF NOT
# EXISTS on resources) runs again at the next start and needs a SHARE
# lock on the table, which conflicts.
#
# Steps. A first start makes the schema; then billing's version is set
# back to 5 and the holder takes its lock.
#   - start-up with migrate_wait = 3s: it stops (exit 1), its log names
#     the holder (table, mode, pid, application_name) and
#     pg_terminate_backend(pid), warned once; the version stays 5;
#   - start-up with migrate_wait = 2m: while its migration waits, another
#     session takes the same write lock three times (each with its own
#     lock_timeout of 10 s): granted, not queued behind the migration;
#   - the holder is ended as the error says (pg_terminate_backend): the
#     migration completes, the collector answers /v1/health, billing is
#     at its version again.
# Without the bound the first start-up never stops and the writes wait
# behind the migration ("another session takes ..." fails after its 10 s).
# SKIP, with the reason, only when PostgreSQL cannot run here.
source "$(dirname "$0")/lib.sh"

require psql
start_shared_state
sql() { psql "$STATE" -X -q -A -t -c "$1" 2>/dev/null; }
version() { sql "SELECT version FROM vigie_billing.vg_schema WHERE component = 'billing'"; }

free_ports CP CH
conf() { # WAIT: the configuration with [state] migrate_wait = WAIT
  state_conf "$TMP/c.conf" "$CP" "$CH" "$TMP/c" "$TMP/tokens.key" <<CONF
migrate_lock_timeout_ms = 300
migrate_wait = $1
CONF
}
conf 3s
mkdir -p "$TMP/c"

# ---- a first start makes the schema ----
start_collector c0 --config "$TMP/c.conf"
C=$COLLECTOR_PID
check "the collector starts on the fresh state" wait_for 60 answers_health "$CH"
stop_pid "$C"
V=$(version)
check "billing's schema is at version 6 or later ($V)" test "${V:-0}" -ge 6
sql "UPDATE vigie_billing.vg_schema SET version = 5 WHERE component = 'billing'"
eq "billing set back to version 5 (an older collector's database)" "$(version)" 5

# ---- the holder: a transaction holding the table's write lock ----
mkfifo "$TMP/hold.in"
psql "$STATE application_name=stopped_collector" -X -q <"$TMP/hold.in" >"$TMP/hold.out" 2>&1 &
_pids+=("$!")
exec 7>"$TMP/hold.in"
echo "BEGIN; LOCK TABLE vigie_billing.resources IN ROW EXCLUSIVE MODE;" >&7
holder() {
  sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'stopped_collector'
       AND state = 'idle in transaction'"
}
has_holder() { [[ -n $(holder) ]]; }
check "the holder's transaction holds the lock" wait_for 30 has_holder
HPID=$(holder)
diag "holder pid $HPID"

# ---- never released: start-up stops after migrate_wait, naming it ----
start_collector c1 --config "$TMP/c.conf"
C=$COLLECTOR_PID
wait_for 120 bash -c "! kill -0 $C 2>/dev/null"
if kill -0 "$C" 2>/dev/null; then rc=running; stop_pid "$C"; else wait "$C"; rc=$?; fi
eq "start-up stops after [state] migrate_wait" "$rc" 1
check "its error names the holder's table, lock, pid and application_name" \
  grep -qF "vigie_billing.resources (RowExclusiveLock) held by pid $HPID \"stopped_collector\"" "$TMP/c1.log"
check "... that it gave up after its wait" grep -qF "migrating billing: gave up after" "$TMP/c1.log"
check "... and the remedy, pg_terminate_backend($HPID)" \
  grep -qF "SELECT pg_terminate_backend($HPID) ends it" "$TMP/c1.log"
eq "the first lock timeout is warned once" \
  "$(grep -c 'a lock was not granted within 300 ms' "$TMP/c1.log")" 1
eq "billing is still at version 5" "$(version)" 5

# ---- while a migration waits, others' writes are not held behind it ----
conf 2m
start_collector c2 --config "$TMP/c.conf"
C=$COLLECTOR_PID
waiting() { [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") -ge 1 ]]; }
for i in 1 2 3; do
  check "write $i: the migration waits for the lock" wait_for 60 waiting
  out=$(psql "$STATE" -X -q -v ON_ERROR_STOP=1 2>&1 <<SQL
BEGIN;
SET LOCAL lock_timeout = '10s';
LOCK TABLE vigie_billing.resources IN ROW EXCLUSIVE MODE;
COMMIT;
SQL
  ); wr=$?
  [[ $wr == 0 ]] || diag "$out"
  eq "write $i: another session takes the table's write lock meanwhile" "$wr" 0
done
check "the collector is still in its start-up" kill -0 "$C"
! answers_health "$CH"; eq "... and does not answer yet" "$?" 0

# ---- the holder ended as the error says: the migration completes ----
eq "pg_terminate_backend ends the holder" "$(sql "SELECT pg_terminate_backend($HPID)")" t
exec 7>&-
check "the collector then starts" wait_for 60 answers_health "$CH"
eq "billing is at its version again" "$(version)" "$V"
check "its log says the migration went through after waiting" \
  grep -q "migrating billing: done at try" "$TMP/c2.log"
stop_pid "$C"
done_testing
