/*
 * rrdcached_backend_fixture.h — the set-up the rrdcached backend's own
 * tests share: a private directory, one real rrdcached (rrdcached_harness.h)
 * and the collector's rrdcached backend opened on its loopback TCP
 * address, with a one-archive layout (1m:1d, step 60). Each test keeps its
 * series' locations and its checks; only this part was written twice.
 */
#ifndef VIGIE_TEST_RRDCACHED_BACKEND_FIXTURE_H
#define VIGIE_TEST_RRDCACHED_BACKEND_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "vigie/config.h"
#include "collector/backend.h"
#include "rrdcached_harness.h"
#include "tests/support/tmpdir.h"

struct hbf {
	char dir[256];
	struct hrd_daemon d;
	struct vg_archive archives[VG_MAX_ARCHIVES];
	struct vg_rrd_layout lay;
	struct vg_rrd_backend *be;
};

/* Start the daemon (with its -j journal when journal is set; -O -R as the
 * store's tests run it) and open the backend. name names the temporary
 * directory. 0, or -1 with the reason on stderr. */
static inline int hbf_open(struct hbf *f, const char *name, int journal, int heartbeat_s)
{
	static const char *const extra[] = {"-O", "-R", NULL};
	char owners[128], err[256];

	if (fx_tmpdir(f->dir, sizeof(f->dir), name) ||
	    (journal ? hrd_start(&f->d, NULL, extra) : hrd_start_nojournal(&f->d, NULL, extra)))
		return -1;
	f->lay.step_s = 60;
	f->lay.heartbeat_s = heartbeat_s;
	f->lay.archives = f->archives;
	if (vg_config_parse_archives("1m:1d", f->archives, VG_MAX_ARCHIVES, &f->lay.narchives))
		return -1;
	snprintf(owners, sizeof(owners), "%s/owners", f->dir);
	if (vg_rrd_rrdcached_open(f->d.tcp_addr, f->d.base, owners, &f->be, err, sizeof(err))) {
		fprintf(stderr, "# %s\n", err);
		return -1;
	}
	return 0;
}

/* Close the backend, stop the daemon, remove the directory (fx_rm_tree:
 * a test that fails before hbf_close has it removed at exit, both
 * directories kept as KEEP_TMP says). */
static inline void hbf_close(struct hbf *f)
{
	f->be->ops->close(f->be);
	hrd_cleanup(&f->d);
	if (fx_rm_tree(f->dir))
		fprintf(stderr, "cannot remove %s\n", f->dir);
}

#endif
