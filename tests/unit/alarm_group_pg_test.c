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
	rc = alarm_group_cases();
	dbe_group_teardown(NULL);
	return rc;
}
