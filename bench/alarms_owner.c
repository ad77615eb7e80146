/*
 * alarms_owner.c — the node that should own each alarm, for alarm tests.
 *
 *   alarms_owner NODE... < alarm ids, one a line
 *
 * For every alarm id read, prints the node that the lease rounds give it
 * when NODE... are the live nodes (vg_alarm_lease_pick, the rendezvous
 * hash of alarms/lease.c), one a line. Alarm ids are random, so a test
 * that needs its alarms on several nodes computes where they go instead
 * of hoping (tests/integration/stream_key_rotation_test.sh).
 */
#include <stdio.h>
#include <string.h>

#include "vigie/alarm_lease.h"

int main(int argc, char **argv)
{
	char line[256];

	if (argc < 2) {
		fprintf(stderr, "usage: alarms_owner NODE... < alarm ids\n");
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!*line)
			continue;
		size_t i = vg_alarm_lease_pick(line, (const char *const *)argv + 1, (size_t)argc - 1);
		printf("%s\n", argv[i + 1]);
	}
	return ferror(stdin) ? 1 : 0;
}
