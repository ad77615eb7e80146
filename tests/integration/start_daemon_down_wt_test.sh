#!/usr/bin/env bash
# start_daemon_down_wt_test.sh — start_daemon_down_test.sh with the
# collector writing each batch through to the daemon before its ack
# ([storage] write_through = yes, the mode of collectors sharing daemons):
# its cache holds only what the daemon did not take, and that is what the
# start with the daemon down must hold and later write once.
WRITE_THROUGH=yes
source "$(dirname "$0")/start_daemon_down_test.sh"
