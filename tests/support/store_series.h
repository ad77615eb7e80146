/*
 * store_series.h — the series the store's rrdcached tests write and read
 * back (tests/unit/store_rrdcached_test.c,
 * tests/unit/store_shared_placement_test.c): a store configured on
 * rrdcached daemons, one minute of many host series per batch, each value
 * telling its series and minute apart (1000 * series + minute), and the
 * check that a series holds every minute once, at its own value: a lost,
 * doubled or misplaced value shows. Header-only; include after
 * <cmocka.h> (failures are cmocka assertions).
 */
#ifndef VIGIE_TEST_STORE_SERIES_H
#define VIGIE_TEST_STORE_SERIES_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "vigie/batch.h"
#include "vigie/config.h"
#include "vigie/rrdcached.h"
#include "vigie/store.h"

#define FXS_T0 1699999980LL /* minute 0, on a minute boundary */
#define FXS_MS(s) ((int64_t)(s)*1000)

/* cfg: the defaults, the rrdcached backend on DAEMONS (a [storage]
 * daemons string) with ARCHIVES, and the state in STATE_URL (NULL: the
 * default, in the data dir). */
static inline void fxs_config(struct vg_config *cfg, const char *archives, const char *daemons,
			      const char *state_url)
{
	vg_config_defaults(cfg);
	assert_int_equal(vg_config_parse_archives(archives, cfg->archives, VG_MAX_ARCHIVES,
						  &cfg->narchives),
			 0);
	snprintf(cfg->storage_backend, sizeof(cfg->storage_backend), "rrdcached");
	if ((size_t)snprintf(cfg->storage_daemons, sizeof(cfg->storage_daemons), "%s", daemons) >=
	    sizeof(cfg->storage_daemons))
		fail_msg("daemon list too long: %s", daemons);
	if (state_url && (size_t)snprintf(cfg->state_url, sizeof(cfg->state_url), "%s",
					  state_url) >= sizeof(cfg->state_url))
		fail_msg("state url too long: %s", state_url);
}

/* NAME (a file as the daemon names it: under its -b, relative or not)
 * FORGOTten on the daemon at ADDR, as a daemon restarted would: its next
 * UPDATE of the file reads it from its disk again. */
static inline void fxs_forget(const char *addr, const char *name)
{
	struct vg_rrdcd *c;

	assert_int_equal(vg_rrdcd_connect(addr, 5000, &c), 0);
	assert_int_equal(vg_rrdcd_forget(c, name), 0);
	vg_rrdcd_close(c);
}

/* vg_store_flush of a store whose daemon FLUSHes, until it passes, up to
 * 10 s: on a loaded machine a wait on the daemon may pass its bound (a
 * quarter of the ack timeout), the daemon then in its back-off, where a
 * sync fails (-EIO; calling again later is safe): seen at load 9-16. For
 * a flush meant to pass in the end, never one whose failure is the
 * point. Its last answer; each -EIO printed. */
static inline int fxs_flush_passes(struct vg_store *s)
{
	int rc = vg_store_flush(s);

	for (int i = 0; i < 100 && rc == -EIO; i++) {
		printf("# flush: -EIO (%s), tried again\n", vg_store_last_error(s));
		usleep(100 * 1000);
		rc = vg_store_flush(s);
	}
	return rc;
}

/* One batch of host h1: minute MINUTE of load.1 of the hosts
 * <prefix><first> .. <prefix><first + n - 1>, host i's value 1000 * i +
 * minute. vg_store_write_batch's answer (its error printed when not 0). */
static inline int fxs_write_minute(struct vg_store *s, const char *prefix, int first, int n,
				   int minute)
{
	struct vg_batch *b = vg_batch_new("h1", 1, 1, FXS_MS(FXS_T0 + 60 * minute));
	int rc;

	assert_non_null(b);
	for (int i = first; i < first + n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "%s%d", prefix, i);
		assert_non_null(vg_batch_resource(b, VG_RT_HOST, id, NULL, NULL,
						  FXS_MS(FXS_T0 + 60 * minute)));
		assert_int_equal(vg_batch_sample(b, "load.1", VG_KIND_GAUGE, 1000.0 * i + minute),
				 0);
	}
	rc = vg_store_write_batch(s, b);
	if (rc)
		fprintf(stderr, "# write: %s\n", vg_store_last_error(s));
	vg_batch_free(b);
	return rc;
}

/* Series node<i> (written by fxs_write_minute for minutes 0..n-1) holds
 * exactly minutes 1..n-1, each once, at its own value (the row after
 * minute 0 is the first: a row covers (t, t+60]). */
static inline void fxs_check_series(struct vg_store *s, int i, int n)
{
	struct vg_series r;
	char id[16];
	int seen = 0;

	snprintf(id, sizeof(id), "node%d", i);
	assert_int_equal(vg_store_fetch(s, VG_RT_HOST, id, "load.1", VG_CF_AVERAGE,
					FXS_MS(FXS_T0), FXS_MS(FXS_T0 + 60 * (n - 1)), 60, 0, &r),
			 0);
	for (size_t k = 0; k < r.n; k++) {
		if (isnan(r.points[k].value))
			continue;
		/* a row covers (t, t+60]: it holds minute t/60 - T0/60 + 1 */
		int minute = (int)((r.points[k].time_ms / 1000 - FXS_T0) / 60) + 1;
		assert_true(fabs(r.points[k].value - (1000.0 * i + minute)) < 1e-9);
		seen++;
	}
	assert_int_equal(seen, n - 1);
	vg_series_free(&r);
}

#endif
