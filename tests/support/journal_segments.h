/*
 * journal_segments.h — how many journal segments (*.vgj) a store keeps
 * in <data dir>/journal, for tests that check the journal is retired
 * once its values are durable (tests/unit/store_test.c,
 * tests/unit/store_rrdcached_crash_test.c). Header-only; include after
 * <cmocka.h> (a failed popen is a cmocka assertion).
 */
#ifndef VIGIE_TEST_JOURNAL_SEGMENTS_H
#define VIGIE_TEST_JOURNAL_SEGMENTS_H

#include <stdio.h>

/* The segments in DIR/journal, or -1 when they cannot be counted. */
static inline int journal_segments(const char *dir)
{
	char cmd[256];
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls '%s/journal' | grep -c '\\.vgj$'", dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

#endif
