#!/usr/bin/env bash
# alarms_pg_test.sh — alarms_test.sh with the collector's alarm store
# (definitions, states, history, the outbox) in a PostgreSQL server the
# test starts ([state] url): transitions, SSE, exec, webhooks and the
# exactly-once delivery across a kill -9 must behave the same (skipped
# with the reason when PostgreSQL cannot run here).
ALARMS_ENGINE=postgresql exec bash "$(dirname "$0")/alarms_test.sh" "$@"
