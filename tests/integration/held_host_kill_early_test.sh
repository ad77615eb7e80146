#!/usr/bin/env bash
# held_host_kill_early_test.sh — held_host_kill_test.sh with the killed
# holder started again while the storage daemon is still down. Its start
# replays its journal, which needs the daemon: today it exits and is
# started again (as systemd does, Restart=on-failure) once the daemon is
# back. Its mark must stay throughout, the other collector answering the
# host RETRY, and every acknowledged value must be in its file once.
HOLDER_FIRST=1
source "$(dirname "$0")/held_host_kill_test.sh"
