#!/usr/bin/env bash
# alarm_bytes_pg_test.sh — alarm_bytes_test.sh with the alarm store in
# PostgreSQL, which refuses text that is not UTF-8.
ALARMS_ENGINE=postgresql exec bash "$(dirname "$0")/alarm_bytes_test.sh" "$@"
