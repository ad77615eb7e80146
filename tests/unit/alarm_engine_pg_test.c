/*
 * alarm_engine_pg_test.c — every case of alarm_engine_test.c again, with
 * the alarm store (definitions, states and their M-of-N windows, history,
 * the outbox) in a fresh database on a PostgreSQL server this test starts
 * (tests/support/db_engines.h): the engine's restart, replay, timers and
 * exactly-once delivery must not depend on the engine under the store.
 * Skipped with the reason when the server cannot run here.
 */
#define main alarm_engine_test_main
#include "alarm_engine_test.c"
#undef main

#include "../support/db_engines.h"

DBE_PG_RERUN_MAIN(alarm_engine_test_main, g_fresh_url)
