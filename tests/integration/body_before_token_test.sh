#!/usr/bin/env bash
# body_before_token_test.sh — a request body is taken only from a client
# whose token holds. The server keeps a body whole until the request is
# complete (up to the route's limit: 16 MiB for POST /v1/measures, 1 MiB
# for remote read), and it checked the token only then: 32 connections
# without a token, each 8 MiB into a 16 MiB body, held 256 MB of the
# collector's memory (1,024 connections, 16 GiB). Now the token (and the
# route and its parameters) is checked once the headers are in: such a
# request is answered 401 at once and its body dropped. A valid token's
# body is received in a place of its tenant's cap
# (http_max_concurrent_per_project): one tenant's slow uploads hold at
# most that many bodies, its next request is a 429 at once, and another
# tenant is served meanwhile. With the queue in front of the cap
# (http_queue_per_project), a request over the cap waits in it before its
# body: not one byte of it is read until it has its place, so the queue
# adds no body to the bound; a request that got its place that way is
# then received and answered.
#
# Measured by the collector's resident size (VmRSS in /proc/PID/status)
# while the connections are open: a bound, not a timing.
source "$(dirname "$0")/lib.sh"
require python3 curl
san_no_quarantine # the checks below measure the collector's VmRSS

collector_ports
DATA=$TMP/data
P=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project b 2>/dev/null)
Q=$("$BIN/vigie-collector" --data-dir "$DATA" token create --project c 2>/dev/null)
# the queue's wait short: the uploads over the cap wait in the queue (the
# default 64 per project) and are answered 429 after it
printf '[collector]\nhttp_queue_wait = 3\n' >"$TMP/c.conf"
check "collector answers /v1/health" start_api_collector collector --config "$TMP/c.conf" --data-dir "$DATA"

# CONNS connections send a 16 MiB Content-Length and 8 MiB of it, each
# with AUTH as its Authorization header (none if empty); prints the
# collector's VmRSS growth in kB while they are all open, then the first
# status code each got (or "none"), then the status of a GET with OTHER
# (a token) made while they are open
hold() { # AUTH [OTHER]
  python3 - "$HPORT" "$COLLECTOR_PID" "$1" "${2:-}" <<'EOF'
import socket, sys, time, urllib.request, urllib.error
port, pid, auth, other = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def rss():
    for l in open('/proc/%s/status' % pid):
        if l.startswith('VmRSS:'):
            return int(l.split()[1])
before = rss()
chunk = b'x' * (1 << 20)
socks = []
for i in range(32):
    s = socket.create_connection(('127.0.0.1', port))
    # a connection whose body is not read (answered, or waiting in the
    # queue) blocks its sender: 0.3 s, and the next is opened
    s.settimeout(0.3)
    h = 'POST /v1/measures HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n' % (16 << 20)
    if auth:
        h += 'Authorization: %s\r\n' % auth
    s.sendall((h + '\r\n').encode())
    try:
        for _ in range(8):
            s.sendall(chunk)
    except OSError:
        pass  # answered and closed: the body is not wanted
    socks.append(s)
time.sleep(1)
grown = rss() - before
other_code = '-'
if other:
    rq = urllib.request.Request('http://127.0.0.1:%d/v1/resources' % port,
                                headers={'Authorization': 'Bearer ' + other})
    try:
        other_code = str(urllib.request.urlopen(rq, timeout=20).status)
    except urllib.error.HTTPError as e:
        other_code = str(e.code)
codes = []
for s in socks:
    s.settimeout(2)
    try:
        line = s.recv(64).split(b'\r\n')[0].decode()
        codes.append(line.split()[1] if line.startswith('HTTP/') else 'none')
    except OSError:
        codes.append('none')
    s.close()
print(grown)
print(' '.join(sorted(set(codes))))
print(other_code)
print(codes.count('none'), codes.count('429'))
EOF
}

out=$(hold "")
grown=$(sed -n 1p <<<"$out")
diag "VmRSS +${grown} kB with 32 tokenless 8 MiB uploads open"
eq "each connection without a token is answered 401 before its body" "$(sed -n 2p <<<"$out")" 401
if ((grown < 64 * 1024)); then ok "their bodies are not kept (+${grown} kB)"
else nok "their bodies are not kept (+${grown} kB, want < 64 MB)"; fi

out=$(hold "Bearer vgt_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
eq "an unknown token too" "$(sed -n 2p <<<"$out")" 401
grown=$(sed -n 1p <<<"$out")
if ((grown < 64 * 1024)); then ok "... whose bodies are not kept either (+${grown} kB)"
else nok "... whose bodies are not kept either (+${grown} kB, want < 64 MB)"; fi

# a valid token: three bodies (the cap: http_threads 4 - 1) are
# received, the other 29 connections wait in the project's queue before
# theirs and are answered 429 after http_queue_wait (their bodies never
# read: the growth stays that of 3 bodies); another project is served
# meanwhile
out=$(hold "Bearer $P" "$Q")
grown=$(sed -n 1p <<<"$out")
diag "VmRSS +${grown} kB with 32 uploads of one project open"
eq "3 uploads of one project wait for their bodies, 29 are a 429 (after the queue)" "$(sed -n 4p <<<"$out")" "3 29"
eq "another project is served meanwhile" "$(sed -n 3p <<<"$out")" 200
if ((grown < 64 * 1024)); then ok "one project holds at most 3 bodies (+${grown} kB)"
else nok "one project holds at most 3 bodies (+${grown} kB, want < 64 MB)"; fi

# a request that waits in the queue gets its place when one is given back
# (an upload's client leaves), and then its body is received and answered
code=$(python3 - "$HPORT" "$P" <<'EOF'
import socket, sys, time
port, tok = int(sys.argv[1]), sys.argv[2]
def conn(length, body):
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(('POST /v1/measures HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
               'Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n' % (tok, length)).encode() + body)
    return s
held = [conn(16 << 20, b'x' * (1 << 20)) for _ in range(3)]
time.sleep(0.2)
body = b'{"measures":[{"resource":"q","metric":"m","value":2}]}'
s = conn(len(body), body)
time.sleep(0.3)
held[0].close()
s.settimeout(20)
try:
    line = s.recv(64).split(b'\r\n')[0].decode()
    print(line.split()[1] if line.startswith('HTTP/') else 'none')
except OSError:
    print('none')
for h in held[1:]:
    h.close()
EOF
)
eq "a request queued before its body is answered once it has a place" "$code" 200

# a request with a valid token still sends its body and is answered
# (the places of the uploads above, whose clients left, given back)
code=$(curl -q -s -o "$TMP/answer" -w '%{http_code}' --max-time 20 -H "Authorization: Bearer $P" \
  -X POST --data-binary '{"measures":[{"resource":"q","metric":"m","value":1}]}' "$API/v1/measures")
eq "a body with a valid token is taken" "$code" 200
# a body to a route with a bad parameter: refused before the body too
code=$(curl -q -s -o /dev/null -w '%{http_code}' --max-time 20 -H "Authorization: Bearer $P" \
  -X POST --data-binary '{}' "$API/v1/measures?x=1")
eq "a bad parameter with a body is a 400" "$code" 400
check "the collector is still up" answers_health "$HPORT"
done_testing
