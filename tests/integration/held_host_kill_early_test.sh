#!/usr/bin/env bash
# held_host_kill_early_test.sh — held_host_kill_test.sh with the killed
# holder started again while the storage daemon is still down. Its start
# replays its journal with the daemon down: it must come up (it used to
# exit and rely on systemd to start it again once the daemon was back),
# show the daemon down in /v1/health, answer reads of its series 503,
# hold the replayed values in its cache and journal and keep its mark,
# the other collector answering the host RETRY; once the daemon is back
# every acknowledged value must be in its file once and its journal go.
HOLDER_FIRST=1
source "$(dirname "$0")/held_host_kill_test.sh"
