/*
 * rrd_last.h — the last update of an RRD file as librrd reads it from the
 * file itself (no store, no daemon: what a crash or a FLUSH left on disk),
 * for the store and journal tests. Header-only; include after <cmocka.h>
 * (a file librrd cannot read fails the test).
 */
#ifndef VIGIE_TEST_RRD_LAST_H
#define VIGIE_TEST_RRD_LAST_H

#include <stdlib.h>
#include <time.h>

#include <rrd.h>

/* PATH's last update, in seconds. */
static inline time_t fx_rrd_last_s(const char *path)
{
	char **names = NULL, **vals = NULL;
	unsigned long n = 0;
	time_t last = 0;

	assert_int_equal(rrd_lastupdate_r(path, &last, &n, &names, &vals), 0);
	for (unsigned long k = 0; k < n; k++) {
		free(names[k]);
		free(vals[k]);
	}
	free(names);
	free(vals);
	return last;
}

#endif
