/*
 * lease.c — alarm ownership by row leases in PostgreSQL
 * (vigie/alarm_lease.h has the design).
 *
 * Why leases and not a leader: every collector is equal, ownership is
 * per alarm, and the only arbiter is the database the collectors already
 * share; a lease is an UPDATE that wins only over an expired row, judged
 * by the database's clock. No election, no consensus of our own.
 *
 * Why rendezvous hashing: every node computes the same owner from the
 * same live list without talking to the others, the alarms spread evenly,
 * and when a node joins or leaves only the alarms it wins or held move.
 * Two nodes with different views of the live list (one heartbeat apart)
 * may both want an alarm: the lease row decides, the loser retries next
 * round.
 *
 * Why a hold after an outage: the live list is one round's view of the
 * heartbeats, and a row's expiry says only that its owner did not renew
 * it. While the database is away nobody renews anything, so just after
 * it is back neither says who is alive, and the first answered round may
 * list this node alone: taking the expired rows then moved the alarms of
 * live nodes that had only been cut off too (their state restored from
 * the database, nothing lost or doubled, but the leases jumped to one
 * node and back a round later). So after a failed round a node takes no
 * row another node held until it has answered rounds for one lease: its
 * live peers renew theirs within that lease (every third of it) and
 * nothing moves, whatever the outage's length; a peer that stays dead
 * loses its alarms one lease later than without the outage, within 5/3 x
 * lease of the database's return (below the 2 x lease a takeover may
 * take). Chosen over keeping the nodes of the last answered round live
 * for a lease after the outage (in the registry, collector/cluster.c):
 * that would change the live list, which several decisions read, when
 * only one is wrong after an outage, taking another node's row; and this
 * module sees its own failed rounds too. The hold runs on this node's
 * monotonic clock (it only delays this node's own claims); expiry stays
 * on the database's.
 *
 * Invariants: a row's owner changes only when its expires_at has passed
 * (or its owner deleted it), and never to a node within its hold; this
 * node writes expires_at only on rows it owns or wins; a round's
 * statements run one by one (autocommit), so the lease rows are locked
 * only for one statement each and never across the engine's
 * transactions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/alarm_lease.h"
#include "vigie/alarm_store.h"
#include "vigie/clock.h"
#include "vigie/db.h"
#include "vigie/hmap.h"

static const struct vg_db_step steps[] = {
	{.version = 1,
	 .sql = "CREATE TABLE IF NOT EXISTS " VG_ALARM_LEASE_TABLE " ("
		" alarm_id TEXT COLLATE \"C\" PRIMARY KEY,"
		" owner TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);"
		"CREATE INDEX IF NOT EXISTS alarm_leases_owner ON " VG_ALARM_LEASE_TABLE "(owner);"},
};

/* beside the alarm store's tables (the engine's fence reads them on its
 * own connection), under a component name of its own */
static const struct vg_db_schema lease_schema = {
	.component = "alarm_leases",
	.pg_schema = "vigie_alarms",
	.steps = steps,
	.nsteps = 1,
};

#define EXPIRY "now() + CAST(?2 AS BIGINT) * interval '1 millisecond'"
/* A claim of alarm ?3 by node ?1 for ?2 ms: CLAIM_FREE takes a free row
 * only (in the hold, below); CLAIM also wins over an expired row, and
 * returns the owner the row had (NULL: none). */
#define CLAIM_FREE                                                                  \
	"INSERT INTO " VG_ALARM_LEASE_TABLE "(alarm_id, owner, expires_at) VALUES " \
	"(?3, ?1, " EXPIRY ") ON CONFLICT (alarm_id) DO NOTHING RETURNING alarm_id"
#define CLAIM                                                                         \
	"WITH prev AS (SELECT owner FROM " VG_ALARM_LEASE_TABLE " WHERE "             \
	"alarm_id = ?3) INSERT INTO " VG_ALARM_LEASE_TABLE "(alarm_id, owner, "       \
	"expires_at) VALUES (?3, ?1, " EXPIRY ") ON CONFLICT (alarm_id) DO "          \
	"UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "        \
	"WHERE " VG_ALARM_LEASE_TABLE ".expires_at <= now() OR " VG_ALARM_LEASE_TABLE \
	".owner = excluded.owner RETURNING (SELECT owner FROM prev)"

struct vg_alarm_lease {
	struct vg_db *db;
	char node[128];
	int64_t lease_ms;
	int64_t (*now_ms)(void); /* the hold's clock; NULL = vg_monotonic_ms */
	int failed;              /* a round failed since the last answered one */
	int hold;                /* back_ms is set: the hold runs from it */
	int64_t back_ms;         /* the first answered round after a failed one */
	struct vg_alarm_lease_stats st;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

size_t vg_alarm_lease_pick(const char *alarm_id, const char *const *nodes, size_t n)
{
	size_t best = 0;
	uint64_t top = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t h = mix(fnv(fnv(0xcbf29ce484222325ULL, nodes[i]) ^ 0xff, alarm_id));
		if (i == 0 || h > top || (h == top && strcmp(nodes[i], nodes[best]) < 0)) {
			top = h;
			best = i;
		}
	}
	return best;
}

int vg_alarm_lease_open(const char *url, const char *node, int64_t lease_ms,
			struct vg_alarm_lease **out, char *err, size_t errlen)
{
	struct vg_alarm_lease *l;
	int rc;

	*out = NULL;
	if (!(l = calloc(1, sizeof(*l)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = vg_db_open(url, &lease_schema, &l->db, err, errlen))) {
		free(l);
		return rc;
	}
	if (vg_db_engine(l->db) != VG_DB_POSTGRESQL) {
		snprintf(err, errlen, "alarm leases need a PostgreSQL state database");
		vg_db_close(l->db);
		free(l);
		return -ENOTSUP;
	}
	snprintf(l->node, sizeof(l->node), "%s", node);
	l->lease_ms = lease_ms > 0 ? lease_ms : 10000;
	*out = l;
	return 0;
}

void vg_alarm_lease_close(struct vg_alarm_lease *l)
{
	struct vg_db_stmt *st;

	if (!l)
		return;
	if (!vg_db_prepare(l->db, "DELETE FROM " VG_ALARM_LEASE_TABLE " WHERE owner = ?1", &st)) {
		vg_db_bind_text(st, 1, l->node);
		vg_db_step(st);
		vg_db_reset(st);
	}
	vg_db_close(l->db);
	free(l);
}

void vg_alarm_lease_unreachable(struct vg_alarm_lease *l)
{
	if (l)
		l->failed = 1;
}

void vg_alarm_lease_set_clock(struct vg_alarm_lease *l, int64_t (*now_ms)(void))
{
	l->now_ms = now_ms;
}

void vg_alarm_lease_get_stats(const struct vg_alarm_lease *l, struct vg_alarm_lease_stats *out)
{
	*out = l->st;
}

const char *vg_alarm_lease_errmsg(const struct vg_alarm_lease *l)
{
	return l ? vg_db_errmsg(l->db) : "";
}

/* Run st (bound) to completion; 0 or -errno. */
static int run(struct vg_db_stmt *st)
{
	int rc;

	while ((rc = vg_db_step(st)) == 1)
		;
	vg_db_reset(st);
	return rc;
}

/* Every alarm id, into *items. */
static int list_alarms(struct vg_alarm_lease *l, struct vg_alarm_lease_item **items,
		       size_t *n)
{
	struct vg_db_stmt *st;
	size_t cap = 0;
	int rc;

	*items = NULL;
	*n = 0;
	if ((rc = vg_db_prepare(l->db, "SELECT id, updated_ms FROM alarms ORDER BY id", &st)))
		return rc;
	while ((rc = vg_db_step(st)) == 1) {
		const char *id = vg_db_column_text(st, 0);
		if (!id)
			continue;
		if (*n == cap) {
			size_t c = cap ? cap * 2 : 64;
			struct vg_alarm_lease_item *m = realloc(*items, c * sizeof(*m));
			if (!m) {
				rc = -ENOMEM;
				break;
			}
			*items = m;
			cap = c;
		}
		memset(&(*items)[*n], 0, sizeof(**items));
		snprintf((*items)[*n].id, sizeof((*items)[*n].id), "%s", id);
		(*items)[*n].updated_ms = vg_db_column_int64(st, 1);
		(*n)++;
	}
	vg_db_reset(st);
	if (rc < 0) {
		free(*items);
		*items = NULL;
		*n = 0;
		return rc;
	}
	return 0;
}

/* Push this node's rows' expiry a lease on (vg_db_retry_lost's fn: run
 * twice, it only renews them again). */
static int renew(struct vg_db *db, void *arg)
{
	struct vg_alarm_lease *l = arg;
	struct vg_db_stmt *st;
	int rc = vg_db_prepare(db, "UPDATE " VG_ALARM_LEASE_TABLE " SET expires_at = " EXPIRY " WHERE owner = ?1", &st);

	if (rc)
		return rc;
	vg_db_bind_text(st, 1, l->node);
	vg_db_bind_int64(st, 2, l->lease_ms);
	return run(st);
}

/* The ids this node holds now, into a set (values unused). */
static int held_set(struct vg_alarm_lease *l, struct vg_hmap *held)
{
	struct vg_db_stmt *st;
	int rc;

	if ((rc = vg_db_prepare(l->db, "SELECT alarm_id FROM " VG_ALARM_LEASE_TABLE " WHERE owner = ?1 AND expires_at > now()",
				&st)))
		return rc;
	vg_db_bind_text(st, 1, l->node);
	while ((rc = vg_db_step(st)) == 1) {
		const char *id = vg_db_column_text(st, 0);
		if (id && vg_hmap_put(held, id, strlen(id), (void *)1, NULL)) {
			rc = -ENOMEM;
			break;
		}
	}
	vg_db_reset(st);
	return rc < 0 ? rc : 0;
}

int vg_alarm_lease_round(struct vg_alarm_lease *l, const char *const *live,
			 size_t nlive, struct vg_alarm_lease_item **items, size_t *n)
{
	const char **nodes;
	size_t nn = 0, self = 0;
	struct vg_hmap held;
	struct vg_db_stmt *st;
	int64_t t;
	int rc, holding;

	*items = NULL;
	*n = 0;
	if (!(nodes = calloc(nlive + 1, sizeof(*nodes))))
		return -ENOMEM;
	for (size_t i = 0; i < nlive; i++)
		if (strcmp(live[i], l->node))
			nodes[nn++] = live[i];
	self = nn;
	nodes[nn++] = l->node; /* this node counts even before its first heartbeat */
	vg_hmap_init(&held);

	/* this round may be the first answered one after a failed one: the
	 * hold runs from it (a failure below moves it to the next) */
	t = l->now_ms ? l->now_ms() : vg_monotonic_ms();
	if (l->failed) {
		l->hold = 1;
		l->back_ms = t;
	}
	holding = l->hold && t - l->back_ms < l->lease_ms;
	l->st.hold_left_ms = holding ? l->lease_ms - (t - l->back_ms) : 0;

	/* renew: rows still ours, even if they expired while we stalled
	 * (nobody took them: a takeover changes the owner). A connection
	 * lost while the server restarted fails its first call: once more,
	 * so this round renews instead of the next */
	rc = vg_db_retry_lost(l->db, renew, l);
	/* leases of alarms deleted since */
	if (!rc && !(rc = vg_db_prepare(l->db, "DELETE FROM " VG_ALARM_LEASE_TABLE " WHERE owner = ?1 AND alarm_id NOT IN (SELECT id FROM alarms)", &st))) {
		vg_db_bind_text(st, 1, l->node);
		rc = run(st);
	}
	if (!rc)
		rc = list_alarms(l, items, n);
	if (!rc)
		rc = held_set(l, &held);
	for (size_t i = 0; !rc && i < *n; i++) {
		const char *id = (*items)[i].id;
		int want = vg_alarm_lease_pick(id, nodes, nn) == self;
		int have = vg_hmap_gets(&held, id) != NULL;

		if (want && !have) {
			/* in the hold: a free row only (no conflict), never
			 * another node's, however long expired. Otherwise it
			 * wins only over a free or expired row and returns the
			 * owner it had (NULL: none), from the statement's
			 * snapshot. The same parameters either way */
			rc = vg_db_prepare(l->db, holding ? CLAIM_FREE : CLAIM, &st);
			if (rc)
				break;
			vg_db_bind_text(st, 1, l->node);
			vg_db_bind_int64(st, 2, l->lease_ms);
			vg_db_bind_text(st, 3, id);
			rc = vg_db_step(st);
			if (rc == 1 && !holding) {
				const char *prev = vg_db_column_text(st, 0);
				(*items)[i].taken = prev && strcmp(prev, l->node);
				l->st.taken += (uint64_t)(*items)[i].taken;
			}
			vg_db_reset(st);
			if (rc < 0)
				break;
			have = rc == 1;
			l->st.held_back += holding && !have;
			rc = 0;
		} else if (!want && have) {
			/* a node that should own it is alive: hand it over */
			rc = vg_db_prepare(l->db, "DELETE FROM " VG_ALARM_LEASE_TABLE " WHERE alarm_id = ?2 AND owner = ?1", &st);
			if (rc)
				break;
			vg_db_bind_text(st, 1, l->node);
			vg_db_bind_text(st, 2, id);
			rc = run(st);
			have = 0;
		}
		(*items)[i].held = have;
	}
	vg_hmap_release(&held);
	free(nodes);
	l->failed = rc != 0;
	if (rc) {
		free(*items);
		*items = NULL;
		*n = 0;
	}
	return rc;
}
