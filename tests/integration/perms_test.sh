#!/usr/bin/env bash
# perms_test.sh — what the daemons create is theirs: started
# from a shell with umask 000, the collector's databases, RRD files,
# journal and tokens and the agent's spool are neither writable by the
# group nor readable, writable or searchable by others, tokens 0600; and
# both daemons warn when started as root, and only then.
source "$(dirname "$0")/lib.sh"

umask 000
NN=$(free_port) HP=$(free_port)
# Not start_collector: its token helper makes the data dir in this shell.
ADMIN_TOKEN=$("$BIN/vigie-collector" --data-dir "$TMP/data" token create --admin --name t)
"$BIN/vigie-collector" --allow-unsigned --data-dir "$TMP/data" --listen "tcp://127.0.0.1:$NN" \
  --http "127.0.0.1:$HP" >"$TMP/coll.log" 2>&1 &
COLLECTOR_PID=$!; _pids+=("$COLLECTOR_PID")
API=http://127.0.0.1:$HP
wait_for 30 api /v1/health || nok "collector up"
start_agent agent --collector "tcp://127.0.0.1:$NN" --libvirt test:///default \
  --spool "$TMP/spool" --interval 0.5 --count 3
wait "$AGENT_PID"; eq "agent sent its 3 polls and stopped" "$?" 0
has_test_instance() { api '/v1/resources?type=instance' | grep -q '"test"'; }
wait_for 30 has_test_instance \
  && ok "an instance reached the collector" || nok "no instance stored"
stop_pid "$COLLECTOR_PID"
check "RRD files were written" bash -c "find '$TMP/data/rrd' -name '*.rrd' | grep -q ."
check "databases were written" test -f "$TMP/data/registry.db"
loose=$(find "$TMP/data" "$TMP/spool" \( -perm /007 -o -perm /020 \) -printf '%m %p\n')
if [[ -z $loose ]]; then ok "nothing under the data dir or the spool is open to others or group-writable"
else nok "loose modes (umask 000 shell)"; echo "$loose" | head -10 | sed 's/^/# /'; fi
eq "tokens.db mode" "$(stat -c %a "$TMP/data/tokens.db")" 600
eq "tokens.key mode" "$(stat -c %a "$TMP/data/tokens.key")" 600
eq "data dir mode" "$(stat -c %a "$TMP/data")" 750

# The root warning: we are root here; nobody gets none.
if [[ $(id -u) == 0 ]]; then
  check "collector warns when run as root" grep -q "running as root" "$TMP/coll.log"
  check "agent warns when run as root" grep -q "running as root" "$TMP/agent.log"
  mkdir -p "$TMP/nobody"; chown nobody "$TMP/nobody"
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$BIN/vigie-agent" --once \
    --libvirt test:///default --spool "$TMP/nobody/spool" >/dev/null 2>"$TMP/nobody.log"
  eq "agent --once as nobody exits 0" "$?" 0
  check "no root warning as nobody" bash -c "! grep -q 'running as root' '$TMP/nobody.log'"
  # token commands as root in a data dir someone else owns
  chown nobody "$TMP/data"
  "$BIN/vigie-collector" --data-dir "$TMP/data" token list >/dev/null 2>"$TMP/tok.err"
  check "token as root in another user's data dir warns" grep -q "runuser -u vigie" "$TMP/tok.err"
  chown root "$TMP/data"
  "$BIN/vigie-collector" --data-dir "$TMP/data" token list >/dev/null 2>"$TMP/tok.err"
  check "token as root in root's data dir does not" bash -c "! grep -q warning '$TMP/tok.err'"
else
  skip "root warning: not root"
fi
done_testing
