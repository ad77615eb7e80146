#!/usr/bin/env bash
# alarm_groups_pg_test.sh — alarm_groups_test.sh with the alarm store
# (groups, members, the outbox) in a PostgreSQL server the test starts:
# a group waiting across kill -9 is sent once with every member (skipped
# with the reason when PostgreSQL cannot run here).
ALARMS_ENGINE=postgresql exec bash "$(dirname "$0")/alarm_groups_test.sh" "$@"
