/*
 * alarm_silence_pg_test.c — every case of alarm_silence_test.c again, with
 * the silences and the alarm store in a fresh database on a PostgreSQL
 * server this test starts (tests/support/db_engines.h): matching, scope,
 * the per-project limit, persistence, the end of a silence handled once
 * across a restart and the silenced transition across SIGKILL must not
 * depend on the engine under the store. Skipped with the reason when the
 * server cannot run here.
 */
#define main alarm_silence_test_main
#include "alarm_silence_test.c"
#undef main

#include "../support/db_engines.h"

DBE_PG_RERUN_MAIN(alarm_silence_test_main, g_fresh_url)
