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
	rc = alarm_silence_test_main();
	dbe_group_teardown(NULL);
	return rc;
}
