/*
 * alarm_api_fixture.h — what the `vigie alarms` tests share
 * (tests/unit/cli_alarms_test.c, cli_alarm_names_test.c): the real alarm
 * engine (a temporary alarms.db) and its SSE hub behind the real API on a
 * loopback port with an administrator's token, and a `vigie alarms watch`
 * run on a thread of its own while the test feeds the engine.
 *
 * Design: header-only, static inline, on top of api_fixture.h (its
 * struct fx_api, fx_token, fx_api_stop). No cmocka here: functions return
 * an error or what they saw (the hub's subscribers) and the test asserts.
 *
 * Invariants: fx_alarm_api_start has its undo (fx_alarm_api_stop), which
 * stops the API before it closes the engine the API calls into;
 * fx_watch_start has its undo (fx_watch_end, which joins the thread). The
 * waits poll an observable state (the hub's subscribers, the watch's end)
 * every 50 ms, with a bound generous enough for a loaded machine.
 */
#ifndef VIGIE_TEST_ALARM_API_FIXTURE_H
#define VIGIE_TEST_ALARM_API_FIXTURE_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vigie/alarm_engine.h"
#include "vigie/alarm_stream.h"

#include "api_fixture.h"

/* How long the watch helpers wait for what they wait for, at most. */
#define FX_WATCH_WAIT_MS 30000

struct fx_alarm_api {
	struct fx_api srv; /* dir (made by the test), store (or NULL), API */
	struct vg_alarm_hub *hub;
	struct vg_alarm_engine *e;
	char tok[VG_TOKEN_LEN + 1]; /* an administrator's */
};

/* Open the hub (64 events kept) and the engine (srv.dir's alarms.db, a
 * 10 s agent interval), make an administrator's token, start the API
 * with them over srv.dir and srv.store. srv.dir must exist (fx_tmpdir);
 * data the API reads is written before (fx_data_*). 0, or -1 after
 * printing why. */
static inline int fx_alarm_api_start(struct fx_alarm_api *a)
{
	struct vg_alarm_engine_options eo = {0};
	struct vg_api_options ao = {0};
	char err[256];

	if (vg_alarm_hub_new(64, 0, &a->hub))
		return -1;
	eo.data_dir = a->srv.dir;
	eo.agent_interval_s = 10;
	eo.hub = a->hub;
	if (vg_alarm_engine_open(&eo, &a->e, err, sizeof(err))) {
		fprintf(stderr, "fixture: engine: %s\n", err);
		return -1;
	}
	if (fx_token(a->srv.dir, NULL, "admin", a->tok))
		return -1;
	ao.alarms = a->e;
	ao.alarm_hub = a->hub;
	return fx_api_start(&a->srv, &ao);
}

/* Stop the hub's streams and the API, close the engine, free the hub,
 * close the store, remove the directory. 0, or -1 if the directory
 * could not be removed. */
static inline int fx_alarm_api_stop(struct fx_alarm_api *a)
{
	char dir[sizeof(a->srv.dir)];

	snprintf(dir, sizeof(dir), "%s", a->srv.dir);
	vg_alarm_hub_shutdown(a->hub);
	vg_api_stop(a->srv.api);
	a->srv.api = NULL;
	vg_alarm_engine_close(a->e);
	vg_alarm_hub_free(a->hub);
	vg_store_close(a->srv.store);
	a->srv.store = NULL;
	a->e = NULL;
	a->hub = NULL;
	return fx_rm_tree(dir) ? -1 : 0;
}

/* ---- `vigie alarms watch` on a thread ------------------------------------------ */

struct fx_watch {
	pthread_t th;
	struct fx_run (*cmd)(void); /* runs the watch command, returns its run */
	struct fx_run r;            /* what it printed, when done */
	int done;
};

static inline void *fx_watch_main(void *arg)
{
	struct fx_watch *w = arg;

	w->r = w->cmd();
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static inline void fx_nap_50ms(void)
{
	struct timespec ts = {0, 50 * 1000000L};

	nanosleep(&ts, NULL);
}

/* Run cmd (a `vigie alarms watch ...` that ends by itself, e.g. --count)
 * on a thread, then wait until hub has a subscriber (the watch's stream)
 * or FX_WATCH_WAIT_MS have passed; *hs gets the hub's stats then. 0, or
 * -1 if the thread could not start. */
static inline int fx_watch_start(struct fx_watch *w, struct fx_run (*cmd)(void),
				 struct vg_alarm_hub *hub, struct vg_alarm_hub_stats *hs)
{
	memset(w, 0, sizeof(*w));
	w->cmd = cmd;
	if (pthread_create(&w->th, NULL, fx_watch_main, w))
		return -1;
	for (int i = 0; i < FX_WATCH_WAIT_MS / 50; i++) {
		vg_alarm_hub_get_stats(hub, hs);
		if (hs->subscribers > 0)
			break;
		fx_nap_50ms();
	}
	return 0;
}

/* Wait until the watch ended by itself, or FX_WATCH_WAIT_MS have passed
 * (then SIGINT: watch's handler ends it), and join its thread; w->r has
 * its run (fx_run_free). */
static inline void fx_watch_end(struct fx_watch *w)
{
	for (int i = 0; i < FX_WATCH_WAIT_MS / 50 && !__atomic_load_n(&w->done, __ATOMIC_SEQ_CST);
	     i++)
		fx_nap_50ms();
	if (!__atomic_load_n(&w->done, __ATOMIC_SEQ_CST))
		kill(getpid(), SIGINT); /* watch's handler ends it */
	pthread_join(w->th, NULL);
}

#endif
