/*
 * placement.c — the placement record shared by every collector of a
 * cloud: which rrdcached daemon holds each series, one row per series in
 * the shared PostgreSQL state (vigie_storage.series_owners), used by the
 * rrdcached backend (collector/backend_rrdcached.c) when [state] url is
 * PostgreSQL.
 *
 * Why in the database. The daemon that holds a series is chosen once, at
 * create, and must stay the answer for every collector: a collector that
 * never wrote a series (an agent failed over to it) otherwise places it
 * by rendezvous hashing over its *current* daemon list, which after a
 * daemon was added can name the new daemon: a second file for an
 * existing series (values split between two files), and API reads of the
 * series from the wrong daemon. Each collector's own owners file only
 * knows what that collector created; the shared state is where every
 * collector already looks (docs/scaling.md).
 *
 * Rules the backend follows with it:
 *  - a name the backend does not know is looked up here (one round trip)
 *    and then cached in its map and owners file;
 *  - a create claims the name FIRST (INSERT ... ON CONFLICT DO NOTHING,
 *    then read the row: the first claim wins, so two collectors creating
 *    one new series at once, even with different daemon lists during a
 *    rolling configuration change, agree on one daemon), then creates on
 *    the winner's daemon (-O: a file there already is fine);
 *  - the database unreachable: nothing is placed by guess; a series not
 *    yet known waits (its batch is answered RETRY, the agent keeps it),
 *    as for a daemon that is down;
 *  - at start a collector uploads its owners file (the record wins any
 *    disagreement, logged), so a deployment that predates the shared
 *    record converges without merging files by hand.
 *
 * Why the two statements of a claim. One statement (an INSERT in a WITH
 * and a SELECT beside it) reads with the snapshot taken when it began: a
 * claim that lost to a concurrent one would see neither its own row nor
 * the winner's. The SELECT after the INSERT sees the winner (READ
 * COMMITTED takes a snapshot per statement; ON CONFLICT DO NOTHING waited
 * for the other transaction to commit).
 *
 * Failures. One connection under one lock. After a call fails because
 * the database cannot be reached, calls fail at once for BACKOFF_MS (no
 * connection attempt per series while it is down); a connection lost to
 * a server restart is retried once at once (libpq reconnects at the next
 * call). The down and up transitions are logged once each (no caller has
 * a better place: the store answers RETRY and moves on); every failure
 * is counted (vg_placement_get_stats, /metrics).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/log.h"
#include "collector/placement.h"

#define BACKOFF_MS 1000 /* no attempt after a failure before */
#define UPLOAD_CHUNK 500

static const struct vg_db_step steps[] = {
	{.version = 1,
	 .sql = "CREATE TABLE IF NOT EXISTS series_owners ("
		" name TEXT COLLATE \"C\" PRIMARY KEY, address TEXT NOT NULL,"
		" created_at TIMESTAMPTZ NOT NULL DEFAULT now());"},
};

static const struct vg_db_schema placement_schema = {
	.component = "storage",
	.pg_schema = "vigie_storage",
	.steps = steps,
	.nsteps = 1,
};

struct vg_placement {
	pthread_mutex_t mu; /* everything below */
	char *url;
	struct vg_db *db;
	int64_t retry_at_ms; /* no connection attempt before */
	int down;            /* logged as unreachable */
	struct vg_store_placement st;
};

int vg_placement_wanted(const char *url)
{
	const char *eq, *slash;

	if (!url || !*url || !strncmp(url, "sqlite:", 7))
		return 0;
	if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
		return 1;
	/* as vg_db_open tells them apart: a conninfo holds an '=' before
	 * any '/' */
	eq = strchr(url, '=');
	slash = strchr(url, '/');
	return eq && (!slash || slash > eq);
}

static int is_conn_err(int rc)
{
	return rc == -ENOTCONN || rc == -ECONNRESET || rc == -EROFS;
}

/* The database did not answer (p->st.error says why; mu held, or p not
 * shared yet): no attempt before BACKOFF_MS when backoff, and the
 * transition logged once. */
static void went_down(struct vg_placement *p, int backoff)
{
	p->st.up = 0;
	if (backoff)
		p->retry_at_ms = vg_monotonic_ms() + BACKOFF_MS;
	if (p->down)
		return;
	p->down = 1;
	vg_warn("storage placement: the state database does not answer (%s): a series this "
		"collector does not know yet is neither read nor created (its batches are "
		"answered RETRY) until it answers; known series are written as usual",
		p->st.error);
}

/* A call ended with rc (mu held): count, back off, log transitions. */
static int done(struct vg_placement *p, int rc, const char *what)
{
	if (rc >= 0) {
		p->st.up = 1;
		if (p->down) {
			p->down = 0;
			vg_info("storage placement: the state database answers again: new "
				"series are placed");
		}
		return rc;
	}
	p->st.errors++;
	if (rc == -EAGAIN) /* within the back-off: not tried, not extended */
		return -ENOTCONN;
	if (p->db) /* else conn() said why */
		snprintf(p->st.error, sizeof(p->st.error), "%.60s: %.180s", what,
			 *vg_db_errmsg(p->db) ? vg_db_errmsg(p->db) : strerror(-rc));
	if (is_conn_err(rc)) {
		went_down(p, 1);
		return -ENOTCONN;
	}
	return rc == -ENOMEM ? rc : -EIO;
}

/* The connection, made if needed (mu held). 0, -EAGAIN (within the
 * back-off after a failure: not tried) or -ENOTCONN. */
static int conn(struct vg_placement *p)
{
	char err[512];
	int rc;

	if (vg_monotonic_ms() < p->retry_at_ms)
		return -EAGAIN;
	if (p->db)
		return 0;
	if ((rc = vg_db_open(p->url, &placement_schema, &p->db, err, sizeof(err)))) {
		snprintf(p->st.error, sizeof(p->st.error), "%.250s", err);
		went_down(p, 1);
		return rc == -EPROTONOSUPPORT ? -EIO : -ENOTCONN;
	}
	return 0;
}

int vg_placement_open(const char *url, struct vg_placement **out, char *err, size_t errlen)
{
	struct vg_placement *p;
	char e[512];
	int rc;

	*out = NULL;
	if (!vg_placement_wanted(url)) {
		snprintf(err, errlen, "placement: %s is not a PostgreSQL URL", url ? url : "");
		return -EINVAL;
	}
	if (!(p = calloc(1, sizeof(*p))) || !(p->url = strdup(url))) {
		free(p);
		snprintf(err, errlen, "placement: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	rc = vg_db_open(url, &placement_schema, &p->db, e, sizeof(e));
	if (rc == -EPROTONOSUPPORT || rc == -EINVAL || rc == -ENOMEM) {
		snprintf(err, errlen, "placement: %s", e);
		vg_placement_close(p);
		return rc;
	}
	if (rc) { /* down: connect at the first call */
		p->st.errors++;
		snprintf(p->st.error, sizeof(p->st.error), "%.250s", e);
		went_down(p, 0);
	} else {
		p->st.up = 1;
	}
	*out = p;
	return 0;
}

void vg_placement_close(struct vg_placement *p)
{
	if (!p)
		return;
	vg_db_close(p->db);
	pthread_mutex_destroy(&p->mu);
	free(p->url);
	free(p);
}

/* Run sql, a statement that returns no row, with ?1 = a and ?2 = b on
 * db (mu held, connected). 0 or -errno. */
static int run(struct vg_db *db, const char *sql, const char *a, const char *b)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(db, sql, &st)))
		return rc;
	vg_db_bind_text(st, 1, a);
	vg_db_bind_text(st, 2, b);
	rc = vg_db_step(st);
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

/* What one call on a series passes to its statements: the series' name,
 * the daemon's address (claim, forget) and where a recorded address goes
 * (lookup, claim). */
struct one {
	const char *name;
	const char *addr;
	char *out;
	size_t outlen;
	vg_placement_address_fn *each; /* vg_placement_addresses */
	void *ctx;
};

/* The statements of one call (mu held, connected): >= 0 or -errno. */
typedef int one_fn(struct vg_placement *p, const struct one *a);

/* A one_fn and its arguments, for vg_db_retry_lost. */
struct one_call {
	struct vg_placement *p;
	one_fn *fn;
	const struct one *a;
};

static int one_call_run(struct vg_db *db, void *arg)
{
	const struct one_call *c = arg;

	(void)db; /* c->p->db */
	return c->fn(c->p, c->a);
}

/* Every call on one series: under mu, count it in *counter (if not
 * NULL), connect if needed, run fn, once more if the connection was lost
 * to a server restart (vg_db_retry_lost: its next statement reconnects),
 * and end through done() as what. fn's result or -errno. */
static int call_one(struct vg_placement *p, uint64_t *counter, one_fn *fn, const struct one *a,
		    const char *what)
{
	struct one_call c = {p, fn, a};
	int rc;

	pthread_mutex_lock(&p->mu);
	if (counter)
		(*counter)++;
	if (!(rc = conn(p)))
		rc = vg_db_retry_lost(p->db, one_call_run, &c);
	rc = done(p, rc, what);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* SELECT the record of a->name into a->out: 1, 0 (none) or -errno. */
static int lookup_one(struct vg_placement *p, const struct one *a)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(p->db, "SELECT address FROM series_owners WHERE name = ?1",
				&st)))
		return rc;
	vg_db_bind_text(st, 1, a->name);
	if ((rc = vg_db_step(st)) == 1)
		snprintf(a->out, a->outlen, "%s", vg_db_column_text(st, 0) ?: "");
	vg_db_reset(st);
	return rc;
}

int vg_placement_lookup(struct vg_placement *p, const char *name, char *addr, size_t addrlen)
{
	const struct one a = {.name = name, .out = addr, .outlen = addrlen};

	return call_one(p, &p->st.lookups, lookup_one, &a, "looking up a series' daemon");
}

/* Every address and its count of names, to a->each. 0 or -errno. */
static int addresses_all(struct vg_placement *p, const struct one *a)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(p->db,
				"SELECT address, count(*) FROM series_owners GROUP BY address",
				&st)))
		return rc;
	while ((rc = vg_db_step(st)) == 1)
		a->each(a->ctx, vg_db_column_text(st, 0) ?: "",
			(uint64_t)vg_db_column_int64(st, 1));
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

int vg_placement_addresses(struct vg_placement *p, vg_placement_address_fn *each, void *ctx)
{
	const struct one a = {.each = each, .ctx = ctx};

	if (!p || !each)
		return -EINVAL;
	return call_one(p, NULL, addresses_all, &a, "counting the series on each daemon");
}

static int claim_one(struct vg_placement *p, const struct one *a)
{
	int rc;

	if ((rc = run(p->db,
		      "INSERT INTO series_owners(name, address) VALUES (?1, ?2)"
		      " ON CONFLICT (name) DO NOTHING",
		      a->name, a->addr)))
		return rc;
	/* a new statement, a new snapshot: sees the winner (see the top) */
	rc = lookup_one(p, a);
	return rc == 1 ? 0 : rc == 0 ? -EIO
				     : rc; /* 0: deleted meanwhile */
}

int vg_placement_claim(struct vg_placement *p, const char *name, const char *addr,
		       char *winner, size_t winnerlen)
{
	const struct one a = {.name = name, .addr = addr, .out = winner, .outlen = winnerlen};

	return call_one(p, &p->st.claims, claim_one, &a, "recording a new series' daemon");
}

struct set_args {
	const char *const *names;
	size_t n;
	const char *addr;
};

static int set_fn(struct vg_db *db, void *arg)
{
	struct set_args *a = arg;
	int rc;

	for (size_t i = 0; i < a->n; i++)
		if ((rc = run(db,
			      "INSERT INTO series_owners(name, address)"
			      " VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE"
			      " SET address = excluded.address",
			      a->names[i], a->addr)))
			return rc;
	return 0;
}

int vg_placement_set(struct vg_placement *p, const char *const *names, size_t n,
		     const char *addr)
{
	struct set_args a = {names, n, addr};
	int rc;

	pthread_mutex_lock(&p->mu);
	if (!(rc = conn(p)))
		rc = vg_db_transact(p->db, set_fn, &a); /* retries a lost connection */
	rc = done(p, rc, "recording moved series");
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int forget_one(struct vg_placement *p, const struct one *a)
{
	return run(p->db, "DELETE FROM series_owners WHERE name = ?1 AND address = ?2", a->name,
		   a->addr);
}

int vg_placement_forget(struct vg_placement *p, const char *name, const char *addr)
{
	const struct one a = {.name = name, .addr = addr};

	return call_one(p, NULL, forget_one, &a, "deleting a series' record");
}

/* A growing string (the array literals of an upload). */
struct text {
	char *s;
	size_t n, cap;
	int oom;
};

static void put(struct text *t, char c)
{
	if (t->n + 2 > t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 4096;
		char *s = realloc(t->s, cap);
		if (!s) {
			t->oom = 1;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
	t->s[t->n++] = c;
	t->s[t->n] = '\0';
}

/* A PostgreSQL array literal of v[0..n): {"a","b"} with '"' and '\'
 * escaped. 0 or -ENOMEM. */
static int array_text(struct text *t, const char *const *v, size_t n)
{
	t->n = 0;
	put(t, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(t, ',');
		put(t, '"');
		for (const char *c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				put(t, '\\');
			put(t, *c);
		}
		put(t, '"');
	}
	put(t, '}');
	return t->oom ? -ENOMEM : 0;
}

/* Record each name of the text[] literal an at the address of aa with
 * the same index, where no address is recorded yet (the first claim
 * wins; a name already recorded keeps its address). */
static int record_free(struct vg_placement *p, const char *an, const char *aa)
{
	return run(p->db,
		   "INSERT INTO series_owners(name, address)"
		   " SELECT u.n, u.a FROM unnest(CAST(?1 AS TEXT[]),"
		   " CAST(?2 AS TEXT[])) AS u(n, a)"
		   " ON CONFLICT (name) DO NOTHING",
		   an, aa);
}

/* What a chunk reads back after record_free: sql, a SELECT over the
 * chunk's arrays (?1 the names; ?2 the addresses when binds_addrs), and
 * whom its rows go to: winner() gets (name, recorded) from the columns
 * (name, address), else conflict(), if any, gets (name, mine, recorded)
 * from (name, recorded, mine). */
struct chunk_read {
	const char *sql;
	int binds_addrs;
	vg_placement_winner_fn *winner;
	vg_placement_conflict_fn *conflict;
	void *ctx;
};

/* Record the free names of one chunk, then read back (mu held,
 * connected). 0 or -errno. */
static int record_chunk(struct vg_placement *p, const char *an, const char *aa,
			const struct chunk_read *r)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = record_free(p, an, aa)))
		return rc;
	/* a new statement: sees the winners (see the top) */
	if ((rc = vg_db_prepare(p->db, r->sql, &st)))
		return rc;
	vg_db_bind_text(st, 1, an);
	if (r->binds_addrs)
		vg_db_bind_text(st, 2, aa);
	while ((rc = vg_db_step(st)) == 1) {
		const char *name = vg_db_column_text(st, 0) ?: "";
		const char *recorded = vg_db_column_text(st, 1) ?: "";
		if (r->winner)
			r->winner(r->ctx, name, recorded);
		else if (r->conflict)
			r->conflict(r->ctx, name, vg_db_column_text(st, 2) ?: "", recorded);
	}
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

/* One chunk's record_chunk arguments, for vg_db_retry_lost. */
struct chunk_call {
	struct vg_placement *p;
	const char *an, *aa;
	const struct chunk_read *r;
};

static int chunk_call_run(struct vg_db *db, void *arg)
{
	const struct chunk_call *c = arg;

	(void)db; /* c->p->db */
	return record_chunk(c->p, c->an, c->aa, c->r);
}

/* names[0..n) with addrs[0..n) through record_chunk, UPLOAD_CHUNK names
 * a round, each round's outcome through done() as what; a chunk whose
 * connection was lost to a server restart is tried once more
 * (vg_db_retry_lost). Stops at the first failed chunk. claims: count the
 * names as claims. 0 or -errno. */
static int record_chunks(struct vg_placement *p, const char *const *names,
			 const char *const *addrs, size_t n, const struct chunk_read *r,
			 int claims, const char *what)
{
	struct text bn = {0}, ba = {0};
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n && !rc; i += UPLOAD_CHUNK) {
		size_t k = n - i < UPLOAD_CHUNK ? n - i : UPLOAD_CHUNK;
		if (claims)
			p->st.claims += k;
		if (!(rc = conn(p)) && !(rc = array_text(&bn, names + i, k)) &&
		    !(rc = array_text(&ba, addrs + i, k))) {
			struct chunk_call c = {p, bn.s, ba.s, r};
			rc = vg_db_retry_lost(p->db, chunk_call_run, &c);
		}
		rc = done(p, rc, what);
	}
	pthread_mutex_unlock(&p->mu);
	free(bn.s);
	free(ba.s);
	return rc;
}

int vg_placement_upload(struct vg_placement *p, const char *const *names,
			const char *const *addrs, size_t n, vg_placement_conflict_fn *conflict,
			void *ctx)
{
	const struct chunk_read r = {
		.sql = "SELECT o.name, o.address, u.a FROM unnest(CAST(?1 AS"
		       " TEXT[]), CAST(?2 AS TEXT[])) AS u(n, a)"
		       " JOIN series_owners o ON o.name = u.n"
		       " WHERE o.address <> u.a",
		.binds_addrs = 1,
		.conflict = conflict,
		.ctx = ctx,
	};

	return record_chunks(p, names, addrs, n, &r, 0, "uploading the owners file");
}

int vg_placement_claim_many(struct vg_placement *p, const char *const *names,
			    const char *const *addrs, size_t n, vg_placement_winner_fn *winner,
			    void *ctx)
{
	const struct chunk_read r = {
		.sql = "SELECT name, address FROM series_owners"
		       " WHERE name = ANY(CAST(?1 AS TEXT[]))",
		.winner = winner,
		.ctx = ctx,
	};

	return record_chunks(p, names, addrs, n, &r, 1, "recording new series' daemons");
}

void vg_placement_get_stats(struct vg_placement *p, struct vg_store_placement *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	*out = p->st;
	pthread_mutex_unlock(&p->mu);
	out->shared = 1;
}
