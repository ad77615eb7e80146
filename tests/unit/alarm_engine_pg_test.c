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

static int fresh_pg(char *url, size_t len)
{
	return dbe_fresh(&DBE_PG, url, len) ? -1 : 0;
}

int main(void)
{
	int rc;

	if (dbe_group_setup(NULL))
		return 1;
	if (!DBE_PG.ready) {
		printf("# SKIP %s: %s\n", DBE_PG.name, DBE_PG.why);
		dbe_group_teardown(NULL);
		return DBE_PG.broken ? 1 : 0;
	}
	g_fresh_url = fresh_pg;
	rc = alarm_engine_test_main();
	dbe_group_teardown(NULL);
	return rc;
}
