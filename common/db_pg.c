/*
 * db_pg.c — the state database's PostgreSQL driver, over libpq
 * (vigie/db.h).
 *
 * Design: libpq's extended query protocol. A statement's ?N are rewritten
 * $N (vg_db__scan_params) and it is prepared on the server once per
 * connection (PQprepare, named "vg<n>", types inferred by the server);
 * each run is PQexecPrepared with text parameters (numbers printed
 * exactly: %lld, %.17g) except blobs, sent in binary so they need no
 * escaping. Results come back in text format and whole (one PGresult per
 * run), which keeps the getters type-agnostic: db.c parses numbers from
 * text; bytea's "\x..." hex is decoded here, and booleans become 0/1.
 *
 * Connection loss: when a call fails and PQstatus says the connection is
 * gone (or the server said it is shutting down, SQLSTATE 57P01..57P03, or
 * a connection exception, class 08), the call returns -ECONNRESET; db.c
 * marks the handle lost and calls pg_reconnect (PQreset: the same
 * conninfo, so the hosts of a multi-host string are tried again) before
 * the next call. Every statement remembers the connection generation it
 * was prepared in and is prepared again when that changed.
 *
 * Pipeline (vg_db_step_queued): a queued statement is sent with
 * PQsendQueryPrepared (after a PQsendPrepare if the connection has not
 * prepared it yet) in libpq's pipeline mode, entered at the first one;
 * the next call that needs the server's answer sends its own statement
 * too, then a Sync, reads every result in order and leaves pipeline mode
 * (pg_sync): one round trip for all of them. Results are checked in
 * order; after the first error the server skipped the rest
 * (PGRES_PIPELINE_ABORTED), whose prepares are marked undone. The COMMIT
 * of a queued transaction travels in the pipeline too (pg_commit, the
 * driver's own entry point: no SQL text is compared), ROLLBACK and other
 * plain SQL wait for the queue first (an error there is the queue's). A
 * run sent with keep (vg_db_query_queued, and every vg_db_step sent
 * behind a queue) gets its result attached to its statement when the
 * pipeline is read. pg_flush pushes the queue to the server with a flush
 * request and no Sync, so the server runs it while the caller works and
 * sends each result at once; the step of a flushed read then takes the
 * results up to its own (pipe_read) and the pipeline stays open for more
 * commands. A COMMIT sent without waiting (pg_commit, wait = 0) is
 * followed by its Sync at once, so the server ends the pipeline without
 * being woken again, and the next wait only reads.
 *
 * Invariants: the driver never prints (libpq's notices are swallowed);
 * parameter buffers belong to their statement and are freed at clear or
 * finalize; a COMMIT that the server turned into a ROLLBACK (the
 * transaction had failed earlier) is reported as an error, never as 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "vigie/db.h"

#define BOOLOID 16
#define BYTEAOID 17

struct pg_stmt;

/* A command sent in the pipeline, waiting for its result. */
struct pg_sent {
	struct pg_stmt *prep; /* a PQsendPrepare of this statement, else NULL */
	struct pg_stmt *keep; /* a run whose rows its statement keeps */
	int commit;           /* the COMMIT (its tag says whether it rolled back) */
};

struct pg_conn {
	PGconn *c;
	unsigned next_id;
	int64_t changes;
	int open;    /* in pipeline mode: a Sync must end it (nq may be 0) */
	int nq;      /* commands sent whose results were not read yet */
	int flushed; /* q[0..flushed) were followed by a flush request */
	int synced;  /* a Sync follows the whole queue (pg_commit) */
	struct pg_sent q[VG_DB_MAX_QUEUED];
};

struct pg_stmt {
	struct vg_db_stmt base;
	char name[16];
	char *pgsql;
	unsigned gen; /* db->generation it was prepared in */
	int prepared;
	char **vals; /* nparams each: NULL = SQL NULL */
	int *lens, *fmts;
	PGresult *res; /* the running result, or NULL */
	int pending;   /* its kept result is still in the pipeline */
	int opened;    /* row, nrows, ncols and dec set up for res */
	int row, nrows;
	char **dec; /* decoded bytea of the current row, per column */
	size_t *declen;
	int ncols;
};

static struct pg_conn *C(struct vg_db *db)
{
	return db->impl;
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int code_of(const char *state)
{
	if (!state)
		return -EIO;
	if (!strcmp(state, "23505"))
		return -EEXIST;
	/* a foreign key's row deleted by a transaction that committed while
	 * this statement ran (registry.c: a metrics row whose resource was
	 * swept): a retry sees the current state */
	if (!strcmp(state, "23503"))
		return -EBUSY;
	if (!strncmp(state, "23", 2))
		return -EINVAL;
	if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
		return -EBUSY;
	if (!strcmp(state, "55P03")) /* lock_timeout or NOWAIT: waiting again waits as long */
		return -ETIMEDOUT;
	/* query_canceled: statement_timeout (or an operator's cancel) */
	if (!strcmp(state, "57014"))
		return -ETIMEDOUT;
	if (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
	    !strcmp(state, "57P03"))
		return -ECONNRESET;
	if (!strcmp(state, "25006"))
		return -EROFS;
	if (!strcmp(state, "53100"))
		return -ENOSPC;
	if (!strcmp(state, "53200"))
		return -ENOMEM;
	return -EIO;
}

/* Record a failure (r may be NULL) and return its code. */
static int fail(struct vg_db *db, PGresult *r)
{
	PGconn *c = C(db)->c;
	const char *msg = r ? PQresultErrorMessage(r) : NULL;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	int code = code_of(state);

	if (!msg || !*msg)
		msg = PQerrorMessage(c);
	/* An error without SQLSTATE was made by libpq itself, not the
	 * server: the connection is in doubt even when PQstatus still says
	 * OK (libpq 15 reports "server closed the connection unexpectedly"
	 * that way after an immediate shutdown). Reconnecting is cheap. */
	if (PQstatus(c) == CONNECTION_BAD || !state)
		code = -ECONNRESET;
	return vg_db__err(db, code, "%s", msg && *msg ? msg : "unknown PostgreSQL error");
}

static void set_name(struct vg_db *db)
{
	PGconn *c = C(db)->c;
	char buf[256];

	free(db->name);
	snprintf(buf, sizeof(buf), "postgresql %s:%s/%s", PQhost(c) ? PQhost(c) : "?",
		 PQport(c) ? PQport(c) : "?", PQdb(c) ? PQdb(c) : "?");
	db->name = strdup(buf);
}

static int pg_open(struct vg_db *db, const char *target)
{
	/* ours first: a later keyword (from the URL) wins */
	const char *keys[] = {"application_name", "client_encoding", "connect_timeout", "dbname",
			      NULL, NULL};
	const char *vals[] = {"vigie", "UTF8", "10", target, NULL, NULL};
	char opts[160];
	struct pg_conn *pc = calloc(1, sizeof(*pc));

	if (db->pg_schema) {
		/* after dbname, so it wins over the URL's own options: the
		 * component's tables live in its schema (vigie/db.h), and
		 * PQreset keeps it across reconnects */
		snprintf(opts, sizeof(opts), "-c search_path=%s", db->pg_schema);
		keys[4] = "options";
		vals[4] = opts;
	}

	if (!pc)
		return -ENOMEM;
	db->impl = pc;
	db->name = strdup("postgresql");
	pc->c = PQconnectdbParams(keys, vals, 1);
	if (!pc->c)
		return vg_db__err(db, -ENOMEM, "out of memory");
	PQsetNoticeProcessor(pc->c, quiet, NULL);
	if (PQstatus(pc->c) != CONNECTION_OK) {
		vg_db__err(db, -ENOTCONN, "%s", PQerrorMessage(pc->c));
		return -ENOTCONN;
	}
	set_name(db);
	return 0;
}

static void pg_close(struct vg_db *db)
{
	PQfinish(C(db)->c);
	free(C(db));
	db->impl = NULL;
}

static int pg_reconnect(struct vg_db *db)
{
	PGconn *c = C(db)->c;

	/* PQreset leaves pipeline mode with the old connection */
	C(db)->nq = C(db)->open = C(db)->flushed = C(db)->synced = 0;
	PQreset(c);
	if (PQstatus(c) != CONNECTION_OK)
		return vg_db__err(db, -ENOTCONN, "reconnecting: %s", PQerrorMessage(c));
	set_name(db);
	return 0;
}

/* Like sqlite3_changes: only INSERT, UPDATE and DELETE count (a SELECT
 * leaves the last figure alone). */
static void count_changes(struct vg_db *db, PGresult *r)
{
	const char *tag = PQcmdStatus(r);

	if (!strncmp(tag, "INSERT ", 7) || !strncmp(tag, "UPDATE ", 7) ||
	    !strncmp(tag, "DELETE ", 7))
		C(db)->changes = strtoll(PQcmdTuples(r), NULL, 10);
}

static int pipe_wait(struct vg_db *db);

static int pg_exec(struct vg_db *db, const char *sql)
{
	PGresult *r;
	ExecStatusType s;
	int rc = 0;

	if (C(db)->open) {
		rc = pipe_wait(db);
		/* a ROLLBACK ends what failed in the queue */
		if (rc && (strcmp(sql, "ROLLBACK") || rc == -ECONNRESET))
			return rc;
		rc = 0;
	}
	r = PQexec(C(db)->c, sql);
	s = PQresultStatus(r);

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY)
		rc = fail(db, r);
	else
		count_changes(db, r);
	PQclear(r);
	return rc;
}

static void drop_row(struct pg_stmt *st)
{
	for (int i = 0; st->dec && i < st->ncols; i++) {
		free(st->dec[i]);
		st->dec[i] = NULL;
	}
}

static void pg_reset(struct vg_db_stmt *base)
{
	struct pg_stmt *st = (struct pg_stmt *)base;

	drop_row(st);
	free(st->dec);
	free(st->declen);
	st->dec = NULL;
	st->declen = NULL;
	st->ncols = 0;
	PQclear(st->res);
	st->res = NULL;
	st->pending = 0; /* a result still in the pipeline is dropped */
	st->row = st->nrows = st->opened = 0;
}

static void pg_clear(struct vg_db_stmt *base)
{
	struct pg_stmt *st = (struct pg_stmt *)base;

	for (int i = 0; st->vals && i < base->nparams; i++) {
		free(st->vals[i]);
		st->vals[i] = NULL;
		st->lens[i] = st->fmts[i] = 0;
	}
}

static int server_prepare(struct vg_db *db, struct pg_stmt *st)
{
	PGresult *r = PQprepare(C(db)->c, st->name, st->pgsql, st->base.nparams, NULL);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : fail(db, r);

	PQclear(r);
	if (!rc) {
		st->prepared = 1;
		st->gen = db->generation;
	}
	return rc;
}

static int pg_prepare(struct vg_db *db, struct vg_db_stmt *base)
{
	struct pg_stmt *st = (struct pg_stmt *)base;
	int n = base->nparams ? base->nparams : 1;

	snprintf(st->name, sizeof(st->name), "vg%u", C(db)->next_id++);
	st->pgsql = malloc(strlen(base->sql) + 1);
	st->vals = calloc((size_t)n, sizeof(*st->vals));
	st->lens = calloc((size_t)n, sizeof(*st->lens));
	st->fmts = calloc((size_t)n, sizeof(*st->fmts));
	if (!st->pgsql || !st->vals || !st->lens || !st->fmts)
		goto nomem;
	vg_db__scan_params(base->sql, st->pgsql);
	if (C(db)->open) /* no synchronous call in pipeline mode: at its first run */
		return 0;
	return server_prepare(db, st);
nomem:
	free(st->pgsql);
	free(st->vals);
	free(st->lens);
	free(st->fmts);
	st->pgsql = NULL;
	st->vals = NULL;
	st->lens = st->fmts = NULL;
	return -ENOMEM;
}

static void pg_finalize(struct vg_db_stmt *base)
{
	struct pg_stmt *st = (struct pg_stmt *)base;

	pg_reset(base);
	pg_clear(base);
	/* the server drops prepared statements with the connection */
	free(st->pgsql);
	free(st->vals);
	free(st->lens);
	free(st->fmts);
}

static int pg_bind(struct vg_db_stmt *base, int i, const struct vg_db_value *v)
{
	struct pg_stmt *st = (struct pg_stmt *)base;
	char num[40], *p = NULL;
	int len = 0, fmt = 0;

	switch (v->type) {
	case VG_DB_INT:
		snprintf(num, sizeof(num), "%lld", (long long)v->i);
		p = strdup(num);
		break;
	case VG_DB_REAL:
		if (v->d > 1.7976931348623157e308)
			p = strdup("Infinity");
		else if (v->d < -1.7976931348623157e308)
			p = strdup("-Infinity");
		else {
			snprintf(num, sizeof(num), "%.17g", v->d);
			p = strdup(num);
		}
		break;
	case VG_DB_TEXT:
		p = strdup(v->p);
		break;
	case VG_DB_BLOB:
		if (v->len > 0x7fffffff)
			return vg_db__err(base->db, -EINVAL, "blob of %zu bytes", v->len);
		p = malloc(v->len ? v->len : 1);
		if (p)
			memcpy(p, v->p, v->len);
		len = (int)v->len;
		fmt = 1;
		break;
	default:
		break;
	}
	if (v->type != VG_DB_NULL && !p)
		return -ENOMEM;
	free(st->vals[i - 1]);
	st->vals[i - 1] = p;
	st->lens[i - 1] = len;
	st->fmts[i - 1] = fmt;
	return 0;
}

/* ---- the pipeline --------------------------------------------------------- */

/* A send that libpq refused: the connection is in doubt (a refused send
 * is a broken socket, or a state this driver never creates). */
static int send_failed(struct vg_db *db)
{
	C(db)->nq = C(db)->open = C(db)->flushed = C(db)->synced = 0;
	return vg_db__err(db, -ECONNRESET, "sending in pipeline mode: %s",
			  PQerrorMessage(C(db)->c));
}

/* Room for n more commands in the pipeline, in pipeline mode. */
static int pipe_room(struct vg_db *db, int n)
{
	struct pg_conn *pc = C(db);
	int rc;

	/* the queue is full, or ends with a Sync: read it first */
	if ((pc->synced || pc->nq + n > VG_DB_MAX_QUEUED) && (rc = pipe_wait(db)))
		return rc;
	if (!pc->open) {
		if (!PQenterPipelineMode(pc->c))
			return send_failed(db);
		pc->open = 1;
	}
	return 0;
}

/* Send st's run (and its prepare if needed) in the pipeline; keep: its
 * result becomes st->res when it arrives (st->pending until then). */
static int pipe_send(struct vg_db *db, struct pg_stmt *st, int keep)
{
	struct pg_conn *pc = C(db);
	int rc;

	if ((rc = pipe_room(db, 2)))
		return rc;
	if (!st->prepared || st->gen != db->generation) {
		if (!PQsendPrepare(pc->c, st->name, st->pgsql, st->base.nparams, NULL))
			return send_failed(db);
		pc->q[pc->nq++] = (struct pg_sent){st, NULL, 0};
		st->prepared = 1; /* undone by pipe_wait if it fails */
		st->gen = db->generation;
	}
	if (!PQsendQueryPrepared(pc->c, st->name, st->base.nparams,
				 (const char *const *)st->vals, st->lens, st->fmts, 0))
		return send_failed(db);
	pc->q[pc->nq++] = (struct pg_sent){NULL, keep ? st : NULL, 0};
	st->pending = keep;
	return 0;
}

static int pg_queue(struct vg_db_stmt *base, int keep)
{
	struct pg_stmt *st = (struct pg_stmt *)base;

	pg_reset(base); /* one statement, one result */
	return pipe_send(base->db, st, keep);
}

/* Send parameterless sql in the pipeline (commit: it is the COMMIT). */
static int queue_cmd(struct vg_db *db, const char *sql, int commit)
{
	struct pg_conn *pc = C(db);
	int rc;

	if ((rc = pipe_room(db, 1)))
		return rc;
	if (!PQsendQueryParams(pc->c, sql, 0, NULL, NULL, NULL, NULL, 0))
		return send_failed(db);
	pc->q[pc->nq++] = (struct pg_sent){NULL, NULL, commit};
	return 0;
}

static int pg_queue_exec(struct vg_db *db, const char *sql)
{
	return queue_cmd(db, sql, 0);
}

/* Send the queue now, with a flush request: the server runs it and sends
 * its results back at once (not at the next Sync), so pipe_read can take
 * them without a Sync's round trip. */
static int pg_flush(struct vg_db *db)
{
	struct pg_conn *pc = C(db);

	if (!pc->nq || pc->synced) /* a Sync flushed it */
		return 0;
	if (!PQsendFlushRequest(pc->c) || PQflush(pc->c) != 0)
		return send_failed(db);
	pc->flushed = pc->nq;
	return 0;
}

/* One result r of the pipeline, for the command e (NULL: none known).
 * Returns the first error so far (*rc), and frees or keeps r. */
static void take(struct vg_db *db, PGresult *r, const struct pg_sent *e, int *rc)
{
	ExecStatusType s = PQresultStatus(r);

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		if (e && e->prep)
			e->prep->prepared = 0;
		if (e && e->keep)
			e->keep->pending = 0;
		if (!*rc && s != PGRES_PIPELINE_ABORTED)
			*rc = fail(db, r);
		PQclear(r);
		return;
	}
	if (e && !e->prep) {
		count_changes(db, r);
		if (!*rc && e->commit && !strcmp(PQcmdStatus(r), "ROLLBACK"))
			*rc = vg_db__err(db, -EIO, "COMMIT of a transaction that had "
						   "failed: rolled back");
		if (e->keep && e->keep->pending) {
			e->keep->pending = 0;
			if (!*rc) {
				e->keep->res = r;
				r = NULL;
			}
		}
	}
	PQclear(r);
}

/* Read the results of the first n commands of the queue, which a flush
 * request followed (pg_flush), without a Sync: the pipeline stays open
 * for more commands. Returns the first error among them (the server then
 * skips the rest until the Sync that pipe_wait sends). */
static int pipe_read(struct vg_db *db, int n)
{
	struct pg_conn *pc = C(db);
	int rc = 0;

	for (int k = 0; k < n; k++) {
		PGresult *r = PQgetResult(pc->c);

		if (!r) {
			pc->nq = pc->open = pc->flushed = pc->synced = 0;
			return rc == -ECONNRESET ? rc : fail(db, NULL);
		}
		take(db, r, &pc->q[k], &rc);
		while ((r = PQgetResult(pc->c))) /* up to the command's end */
			PQclear(r);
		if (rc == -ECONNRESET) {
			pc->nq = pc->open = pc->flushed = pc->synced = 0;
			return rc;
		}
	}
	memmove(pc->q, pc->q + n, (size_t)(pc->nq - n) * sizeof(pc->q[0]));
	pc->nq -= n;
	pc->flushed -= n;
	return rc;
}

/* Send a Sync, read every result of the pipeline in order, leave pipeline
 * mode. Returns the first error (the commands after it were skipped by
 * the server). A kept run's result (pipe_send) becomes its statement's,
 * unless the statement was reset meanwhile. */
static int pipe_wait(struct vg_db *db)
{
	struct pg_conn *pc = C(db);
	int rc = 0, i = 0, nulls = 0;

	if (!pc->open)
		return 0;
	if (!pc->synced && !PQpipelineSync(pc->c))
		return send_failed(db);
	for (;;) {
		PGresult *r = PQgetResult(pc->c);
		ExecStatusType s;
		const struct pg_sent *e;

		if (!r) { /* between two commands' results; twice: nothing comes */
			if (++nulls > 1 || PQstatus(pc->c) == CONNECTION_BAD)
				goto broken;
			continue;
		}
		nulls = 0;
		s = PQresultStatus(r);
		if (s == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		e = i < pc->nq ? &pc->q[i] : NULL;
		i++;
		take(db, r, e, &rc);
		if (rc == -ECONNRESET)
			goto broken;
	}
	pc->nq = pc->open = pc->flushed = pc->synced = 0;
	if (!PQexitPipelineMode(pc->c) && !rc)
		rc = send_failed(db);
	return rc;
broken:
	pc->nq = pc->open = pc->flushed = pc->synced = 0;
	return rc == -ECONNRESET ? rc : fail(db, NULL);
}

static int pg_sync(struct vg_db *db)
{
	return pipe_wait(db);
}

/* COMMIT, with the queued statements if any; !wait: queued and sent, its
 * outcome at the next pipe_wait. A COMMIT that the server turned into a
 * ROLLBACK is an error either way. */
static int pg_commit(struct vg_db *db, int wait)
{
	PGresult *r;
	int rc;

	if (C(db)->open || !wait) {
		if ((rc = queue_cmd(db, "COMMIT", 1)))
			return rc;
		if (wait)
			return pipe_wait(db);
		/* the Sync now, so the server ends the pipeline right after the
		 * COMMIT without being woken again for it */
		if (!PQpipelineSync(C(db)->c))
			return send_failed(db);
		C(db)->synced = 1;
		return 0;
	}
	r = PQexec(C(db)->c, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = fail(db, r);
	else if (!strcmp(PQcmdStatus(r), "ROLLBACK"))
		rc = vg_db__err(db, -EIO, "COMMIT of a transaction that had failed: rolled back");
	else
		rc = 0;
	PQclear(r);
	return rc;
}

static int pg_step(struct vg_db_stmt *base)
{
	struct pg_stmt *st = (struct pg_stmt *)base;
	struct vg_db *db = base->db;
	int rc;

	if (!st->res) {
		if (st->pending || C(db)->open) {
			/* its result is in the pipeline (vg_db_query_queued):
			 * read up to it if it was flushed, else with a Sync;
			 * or the queue and this in one round trip */
			struct pg_conn *pc = C(db);
			int j = pc->nq - 1;

			while (st->pending && j >= 0 && pc->q[j].keep != st)
				j--;
			if (st->pending && j >= 0 && j < pc->flushed)
				rc = pipe_read(db, j + 1);
			else if (!st->pending && (rc = pipe_send(db, st, 1)))
				return rc;
			else
				rc = pipe_wait(db);
			st->pending = 0;
			if (rc)
				return rc;
			if (!st->res)
				return vg_db__err(db, -EIO, "no result in the pipeline");
		} else {
			ExecStatusType s;

			if ((!st->prepared || st->gen != db->generation) &&
			    (rc = server_prepare(db, st)))
				return rc;
			st->res = PQexecPrepared(C(db)->c, st->name, base->nparams,
						 (const char *const *)st->vals, st->lens,
						 st->fmts, 0);
			s = PQresultStatus(st->res);
			if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
				rc = fail(db, st->res);
				PQclear(st->res);
				st->res = NULL;
				return rc;
			}
			count_changes(db, st->res);
		}
	}
	/* a kept result may have come with another statement's wait (take):
	 * its rows are set up here, at its own first step, either way */
	if (!st->opened) {
		st->opened = 1;
		st->nrows = PQntuples(st->res);
		st->ncols = PQnfields(st->res);
		st->row = -1;
		if (st->ncols) {
			st->dec = calloc((size_t)st->ncols, sizeof(*st->dec));
			st->declen = calloc((size_t)st->ncols, sizeof(*st->declen));
			if (!st->dec || !st->declen) {
				pg_reset(base);
				return -ENOMEM;
			}
		}
	}
	drop_row(st);
	if (++st->row < st->nrows)
		return 1;
	pg_reset(base);
	return 0;
}

static int pg_column_count(struct vg_db_stmt *base)
{
	struct pg_stmt *st = (struct pg_stmt *)base;

	return st->res && st->row >= 0 && st->row < st->nrows ? st->ncols : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* bytea text output ("\x" + hex, PostgreSQL's default bytea_output) to
 * bytes, NUL-terminated; the older escape format through libpq. */
static char *unbytea(const char *s, size_t *len)
{
	char *out;

	if (s[0] == '\\' && s[1] == 'x') {
		size_t n = strlen(s + 2) / 2;
		if (!(out = malloc(n + 1)))
			return NULL;
		for (size_t i = 0; i < n; i++)
			out[i] = (char)(hexval(s[2 + 2 * i]) << 4 | hexval(s[3 + 2 * i]));
		out[n] = '\0';
		*len = n;
		return out;
	}
	unsigned char *u = PQunescapeBytea((const unsigned char *)s, len);
	if (!u || !(out = malloc(*len + 1))) {
		PQfreemem(u);
		return NULL;
	}
	memcpy(out, u, *len);
	out[*len] = '\0';
	PQfreemem(u);
	return out;
}

static void pg_column(struct vg_db_stmt *base, int i, struct vg_db_value *out)
{
	struct pg_stmt *st = (struct pg_stmt *)base;
	const char *v;

	if (PQgetisnull(st->res, st->row, i)) {
		out->type = VG_DB_NULL;
		return;
	}
	v = PQgetvalue(st->res, st->row, i);
	switch (PQftype(st->res, i)) {
	case BOOLOID:
		out->type = VG_DB_INT;
		out->i = *v == 't';
		return;
	case BYTEAOID:
		if (!st->dec[i] && !(st->dec[i] = unbytea(v, &st->declen[i]))) {
			out->type = VG_DB_NULL; /* out of memory */
			return;
		}
		out->type = VG_DB_BLOB;
		out->p = st->dec[i];
		out->len = st->declen[i];
		return;
	default:
		out->type = VG_DB_TEXT;
		out->p = v;
		out->len = (size_t)PQgetlength(st->res, st->row, i);
	}
}

static int64_t pg_changes(struct vg_db *db)
{
	return C(db)->changes;
}

const struct vg_db_driver vg_db_pg_driver = {
	.engine = VG_DB_POSTGRESQL,
	.name = "postgresql",
	.begin_sql = "BEGIN",
	/* one migration at a time per database: 0x76676462 is "vgdb" */
	.migrate_lock_sql = "SELECT pg_advisory_xact_lock(1986487394)",
	.migrate_timeout_fmt = "SET LOCAL lock_timeout = %u",
	/* the tables of the search_path's first schema (the component's);
	 * a row lock shows as its holder's lock on the table. xact_start is
	 * NULL for another user's session without pg_read_all_stats */
	.lock_holders_sql =
		"SELECT n.nspname || '.' || c.relname, l.mode, a.pid, "
		"coalesce(a.application_name, ''), "
		"coalesce(to_char(a.xact_start AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD HH24:MI:SS') || ' UTC', '?'), coalesce(a.state, '?') "
		"FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
		"JOIN pg_namespace n ON n.oid = c.relnamespace "
		"JOIN pg_stat_activity a ON a.pid = l.pid "
		"WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() "
		"AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
		"AND c.relkind IN ('r', 'p') AND n.nspname = current_schema() "
		"AND (a.xact_start IS NULL OR a.xact_start <= "
		"clock_timestamp() - CAST(?1 AS BIGINT) * interval '1 millisecond') "
		"ORDER BY a.xact_start, a.pid, 1 LIMIT 4",
	.user_version_sql = NULL,
	.stmt_size = sizeof(struct pg_stmt),
	.xopen = pg_open,
	.xclose = pg_close,
	.xreconnect = pg_reconnect,
	.xexec = pg_exec,
	.xprepare = pg_prepare,
	.xfinalize = pg_finalize,
	.xbind = pg_bind,
	.xstep = pg_step,
	.xreset = pg_reset,
	.xclear = pg_clear,
	.xcolumn_count = pg_column_count,
	.xcolumn = pg_column,
	.xchanges = pg_changes,
	.xqueue = pg_queue,
	.xqueue_exec = pg_queue_exec,
	.xsync = pg_sync,
	.xflush = pg_flush,
	.xcommit = pg_commit,
};
