/*
 * alarm_group_pg_test.c — every case of alarm_group_test.c again, with the
 * alarm store (notification groups and their members, the outbox) in a
 * fresh database on a PostgreSQL server this test starts
 * (tests/support/db_engines.h): a group is sent once with all its members
 * across SIGKILL on either engine. Skipped with the reason when the
 * server cannot run here.
 */
#define ALARM_GROUP_NO_MAIN
#include "alarm_group_test.c"

#include "../support/db_engines.h"

DBE_PG_RERUN_MAIN(alarm_group_cases, g_fresh_url)
