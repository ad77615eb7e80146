/*
 * alarm_outbox_record_test.c — a record of deliveries that fails without
 * a crash (alarms/outbox.c) never makes the delivery thread send the
 * same notification again: the receiver (a real HTTP server on loopback,
 * libmicrohttpd) breaks the record for real while it answers the first
 * request 200, and must still get every notification exactly once, the
 * outbox ending empty.
 *
 * How the record fails, on each engine:
 *  - PostgreSQL: the receiver terminates the worker's connection
 *    (pg_terminate_backend) before it answers, as a server restart does:
 *    the first statement of the record after the answer fails;
 *  - sqlite: the receiver takes the write lock of alarms.db (BEGIN
 *    IMMEDIATE on a connection of its own) and keeps it until a record
 *    failed busy (the store's busy timeout, about 5 s, ran out).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "vigie/alarm_outbox.h"
#include "vigie/alarm_store.h"
#include "vigie/clock.h"

#include "../support/db_engines.h"

#define NOTES 8
#define LOCK_MAX_MS 30000 /* sqlite: the lock is let go at the latest then */

struct fx {
	const struct dbe *e;
	char where[700]; /* a directory (sqlite) or a PostgreSQL conninfo */
	struct vg_alarm_store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];
	int rc;

	f->e = *state;
	*state = f;
	if ((rc = dbe_fresh(f->e, f->where, sizeof(f->where))))
		return rc < 0 ? -1 : 0;
	if (f->e->kind == VG_DB_SQLITE) { /* the store takes the directory */
		char *slash = strrchr(f->where, '/');
		*slash = '\0';
		strcat(f->where, "/");
		snprintf(slash + 1, sizeof(f->where) - (size_t)(slash + 1 - f->where), "d%d",
			 dbe_ncase);
		assert_int_equal(mkdir(f->where, 0700), 0);
	}
	if (vg_alarm_store_open(f->where, &f->s, err, sizeof(err)))
		fail_msg("%s", err);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vg_alarm_store_close(f->s);
	free(f);
	return 0;
}

struct receiver {
	struct MHD_Daemon *d;
	const struct fx *f;
	pthread_mutex_t lock;
	int count[NOTES];
	int other, spoiled;
	char why[300]; /* the record could not be broken: why */
	struct vg_alarm_outbox *ob;
	sqlite3 *held;
	pthread_t unlock;
	int unlock_started;
};

/* sqlite: let the write lock go once a record failed on it (the busy
 * timeout counts its sleeps, so its length in time varies with the load),
 * or after LOCK_MAX_MS at the latest. */
static void *unlock_later(void *arg)
{
	struct receiver *r = arg;
	int64_t end = vg_monotonic_ms() + LOCK_MAX_MS;
	struct vg_alarm_outbox_stats st = {0};

	while (!st.store_errors && vg_monotonic_ms() < end) {
		vg_sleep_ms(10);
		vg_alarm_outbox_get_stats(r->ob, &st);
	}
	sqlite3_exec(r->held, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(r->held);
	return NULL;
}

/* Break the worker's next record (see the header). */
static void spoil(struct receiver *r)
{
	if (r->f->e->kind == VG_DB_SQLITE) {
		char path[800];
		snprintf(path, sizeof(path), "%s/alarms.db", r->f->where);
		/* the worker may be writing (another record): wait for it */
		if (sqlite3_open(path, &r->held) != SQLITE_OK ||
		    sqlite3_busy_timeout(r->held, 5000) != SQLITE_OK ||
		    sqlite3_exec(r->held, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(r->why, sizeof(r->why), "cannot lock %.200s", path);
			return;
		}
		r->unlock_started = !pthread_create(&r->unlock, NULL, unlock_later, r);
		return;
	}
	PGconn *c = PQconnectdb(r->f->where);
	const char *kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
			   "datname = current_database() AND pid <> pg_backend_pid() "
			   "AND backend_type = 'client backend'";
	const char *left = "SELECT count(*) FROM pg_stat_activity WHERE datname = "
			   "current_database() AND pid <> pg_backend_pid() AND "
			   "backend_type = 'client backend'";
	int gone = 0, killed = 0;

	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *res = PQexec(c, kill);
		killed = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
		PQclear(res);
		/* answer only once the worker's backend has gone */
		for (int i = 0; killed && !gone && i < 500; i++) {
			res = PQexec(c, left);
			gone = PQresultStatus(res) == PGRES_TUPLES_OK &&
			       !strcmp(PQgetvalue(res, 0, 0), "0");
			PQclear(res);
			if (!gone)
				vg_sleep_ms(10);
		}
	}
	if (!gone)
		snprintf(r->why, sizeof(r->why), "cannot end the worker's session: %s",
			 PQerrorMessage(c));
	PQfinish(c);
}

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con)
{
	struct receiver *r = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *key;
	int k;

	if (!*con) {
		*con = (void *)1;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	pthread_mutex_lock(&r->lock);
	if (key && sscanf(key, "note-%d", &k) == 1 && k >= 0 && k < NOTES)
		r->count[k]++;
	else
		r->other++;
	if (!r->spoiled) {
		r->spoiled = 1;
		spoil(r);
	}
	pthread_mutex_unlock(&r->lock);
	resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The receiver answers 200 to every notification, and the record of the
 * first answers fails for real: the failed record is tried again, and
 * no notification reaches the receiver twice; the outbox ends empty. */
static void test_failed_record_never_sends_again(void **state)
{
	struct fx *f = *state;
	struct vg_alarm_outbox_options o = {0};
	struct vg_alarm_outbox_stats st;
	struct vg_alarm_outbox *ob;
	struct receiver rx = {0};
	char err[512], action[64];
	int64_t now = vg_now_ms(), end;
	int failed = 0, rc = -1;

	if (!f->s)
		dbe_need(f->e);
	pthread_mutex_init(&rx.lock, NULL);
	rx.f = f;
	rx.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				on_req, &rx, MHD_OPTION_END);
	assert_non_null(rx.d);
	snprintf(action, sizeof(action), "http://127.0.0.1:%u/hook",
		 (unsigned)MHD_get_daemon_info(rx.d, MHD_DAEMON_INFO_BIND_PORT)->port);
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	for (int i = 0; i < NOTES; i++) {
		char nid[32];
		snprintf(nid, sizeof(nid), "note-%d", i);
		assert_int_equal(vg_alarm_store_outbox_add(f->s, nid, "a1", "acme", action,
							   "{\"n\":1}", now),
				 0);
	}
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	/* only the worker's session is in the database while it delivers */
	vg_alarm_store_close(f->s);
	f->s = NULL;
	o.data_dir = f->where;
	o.webhook_timeout_ms = 10000;
	o.webhook_allow = "127.0.0.0/8"; /* rows without a definition: fenced */
	if (vg_alarm_outbox_open(&o, &ob, err, sizeof(err)))
		fail_msg("%s", err);
	rx.ob = ob;
	/* the delivery thread's turns, until every row is recorded */
	end = vg_monotonic_ms() + 30000;
	while (vg_monotonic_ms() < end) {
		rc = vg_alarm_outbox_run_once(ob, NULL);
		if (rc < 0)
			failed++;
		else if (rx.why[0] || (rx.spoiled && rc == 0))
			break; /* nothing left to attempt or record */
		vg_sleep_ms(50);
	}
	if (rx.unlock_started) /* it reads ob's stats */
		pthread_join(rx.unlock, NULL);
	vg_alarm_outbox_get_stats(ob, &st);
	vg_alarm_outbox_close(ob);
	MHD_stop_daemon(rx.d);
	if (rx.why[0])
		fail_msg("%s", rx.why);
	/* the record really failed at least once */
	if (!st.store_errors)
		fail_msg("the record never failed (run_once returned %d)", rc);
	printf("# records that failed: %llu (run_once: %d)\n",
	       (unsigned long long)st.store_errors, failed);
	for (int i = 0; i < NOTES; i++)
		if (rx.count[i] != 1)
			fail_msg("note-%d delivered %d times", i, rx.count[i]);
	assert_int_equal(rx.other, 0);
	assert_int_equal(st.delivered, NOTES);
	/* and the outbox says so */
	if (vg_alarm_store_open(f->where, &f->s, err, sizeof(err)))
		fail_msg("%s", err);
	struct vg_alarm_outbox_item it[4];
	size_t n;
	int64_t next;
	assert_int_equal(vg_alarm_store_outbox_due(f->s, now + 86400000, 0, it, 4, &n, &next), 0);
	assert_int_equal(n, 0);
	/* one history row per attempt: none written twice by the record
	 * tried again, nor alone after the connection was lost */
	struct vg_alarm_history_query q = {.alarm_id = "a1",
					   .type = "notification",
					   .start_ms = 0,
					   .end_ms = now + 86400000,
					   .limit = 100};
	json_t *page;
	assert_int_equal(vg_alarm_store_history(f->s, &q, &page, &next), 0);
	assert_int_equal(json_array_size(page), NOTES);
	json_decref(page);
}

/* Run sql on f's database through a connection of the test's own. */
static void exec_sql(const struct fx *f, const char *sql)
{
	if (f->e->kind == VG_DB_SQLITE) {
		char path[800], *msg = NULL;
		sqlite3 *db;
		snprintf(path, sizeof(path), "%s/alarms.db", f->where);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
			fail_msg("%s: %s", sql, msg);
		sqlite3_close(db);
		return;
	}
	PGconn *c = PQconnectdb(f->where);
	PGresult *res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
}

/* Pending rows, counted through a connection of the test's own (the
 * store's read would claim them on PostgreSQL). */
static size_t pending(const struct fx *f)
{
	const char *sql = "SELECT count(*) FROM outbox WHERE state = 0";
	long n = -1;

	if (f->e->kind == VG_DB_SQLITE) {
		char path[800];
		sqlite3 *db;
		sqlite3_stmt *st;
		snprintf(path, sizeof(path), "%s/alarms.db", f->where);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
	} else {
		PGconn *c = PQconnectdb(f->where);
		PGresult *res = PQexec(c, "SELECT count(*) FROM vigie_alarms.outbox WHERE state = 0");
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			n = atol(PQgetvalue(res, 0, 0));
		PQclear(res);
		PQfinish(c);
	}
	assert_true(n >= 0);
	return (size_t)n;
}

/* The database refuses the outcome of one notification for good (a
 * trigger raises on its delivered mark): the others are recorded all
 * the same, once the record has failed a few times in a row, and that
 * one is still never sent again while the collector lives. */
static void test_refused_outcome_holds_no_other(void **state)
{
	struct fx *f = *state;
	struct vg_alarm_outbox_options o = {0};
	struct vg_alarm_outbox *ob;
	struct receiver rx = {0};
	char err[512], action[64];
	int64_t now = vg_now_ms(), end;

	if (!f->s)
		dbe_need(f->e);
	pthread_mutex_init(&rx.lock, NULL);
	rx.f = f;
	rx.spoiled = 1; /* no spoil: the trigger refuses */
	rx.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				on_req, &rx, MHD_OPTION_END);
	assert_non_null(rx.d);
	snprintf(action, sizeof(action), "http://127.0.0.1:%u/hook",
		 (unsigned)MHD_get_daemon_info(rx.d, MHD_DAEMON_INFO_BIND_PORT)->port);
	assert_int_equal(vg_alarm_store_begin(f->s), 0);
	for (int i = 0; i < NOTES; i++) {
		char nid[32];
		snprintf(nid, sizeof(nid), "note-%d", i);
		assert_int_equal(vg_alarm_store_outbox_add(f->s, nid, "a1", "acme", action,
							   "{\"n\":1}", now),
				 0);
	}
	assert_int_equal(vg_alarm_store_commit(f->s), 0);
	if (f->e->kind == VG_DB_SQLITE)
		exec_sql(f, "CREATE TRIGGER refuse BEFORE UPDATE ON outbox WHEN "
			    "NEW.notice_id = 'note-3' AND NEW.state <> 0 BEGIN "
			    "SELECT RAISE(ABORT, 'refused by the test'); END");
	else
		exec_sql(f, "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF "
			    "NEW.notice_id = 'note-3' AND NEW.state <> 0 THEN RAISE "
			    "EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ "
			    "LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE UPDATE ON "
			    "vigie_alarms.outbox FOR EACH ROW EXECUTE FUNCTION refuse()");
	o.data_dir = f->where;
	o.webhook_timeout_ms = 10000;
	o.webhook_allow = "127.0.0.0/8";
	if (vg_alarm_outbox_open(&o, &ob, err, sizeof(err)))
		fail_msg("%s", err);
	end = vg_monotonic_ms() + 20000;
	while (vg_monotonic_ms() < end && pending(f) > 1) {
		vg_alarm_outbox_run_once(ob, NULL);
		vg_sleep_ms(50);
	}
	/* a few more turns: note-3 is still not attempted again */
	for (int i = 0; i < 2; i++)
		vg_alarm_outbox_run_once(ob, NULL);
	vg_alarm_outbox_close(ob);
	MHD_stop_daemon(rx.d);
	assert_int_equal(pending(f), 1);
	for (int i = 0; i < NOTES; i++)
		if (rx.count[i] != 1)
			fail_msg("note-%d delivered %d times", i, rx.count[i]);
	assert_int_equal(rx.other, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		DBE_BOTH(test_failed_record_never_sends_again, setup, teardown),
		DBE_BOTH(test_refused_outcome_holds_no_other, setup, teardown),
	};
	return cmocka_run_group_tests(tests, dbe_group_setup, dbe_group_teardown);
}
