/*
 * db.c — the billing database: schema, opening, error mapping.
 *
 * The billing state lives behind vigie/db.h, so the same code and SQL run
 * on the embedded sqlite file <data_dir>/billing.db (the default) or on a
 * PostgreSQL database shared by several collectors ([state] url).
 *
 * Tables (schema version in vg_schema, component "billing"; an existing
 * billing.db at PRAGMA user_version 1 is adopted as version 1 and
 * upgraded to 2 when opened):
 *   resources    one row per metered instance, disk and vNIC: identity,
 *                the meter's watermarks (last poll applied, last seen,
 *                last transition), its current state and counter baselines.
 *   transitions  the timelines: (resource, time_ms, kind) unique, exact or
 *                inferred with the window [lo_ms, hi_ms], the flavor or
 *                capacity that holds from then on.
 *   network      bytes per (project, UTC hour, vNIC): the order egress
 *                tiers are filled in.
 *   months       finalized months; invoices: the frozen invoice documents.
 *   bill_project_names  (step 2) the latest name of each project
 *                (billing/names.c).
 *   bill_number_seq     (step 2) the last invoice number given per issuer
 *                (billing/numbers.c).
 *   network_billed, network_billed_months  (step 4) the finalized
 *                months, and the network rows of their hours that changed
 *                since, as the invoices billed them (meter.c, finalize.c):
 *                what names the hours a network adjustment changed.
 *   sightings    (step 5) per host, its current "generation": the last
 *                poll time that every resource of the generation was seen
 *                at. A resources row whose (host, sight_gen) names a
 *                generation was last seen and last polled at the later of
 *                its own columns and the generation's time_ms, so a poll
 *                that changes nothing but the sightings writes one row per
 *                host instead of one per resource (billing/meter.c).
 *                Step 6: index resources_sight (host, sight_gen), by
 *                which the meter deletes the generations nothing names.
 *
 * Both engines' DDL says the same thing in each one's words: sqlite keeps
 * today's text (so a file from before the port is at version 1 as it
 * is); PostgreSQL gets BIGINT for every integer (money and milliseconds
 * need 64 bits) and COLLATE "C" on every text key, because the usage
 * loader sorts by id and finds resources by binary search (strcmp order),
 * and invoices list projects in byte order: a server whose default
 * collation is a locale's would otherwise order them differently from
 * sqlite and the invoices would not be byte-identical. "user" is a
 * reserved word in PostgreSQL: the column is always written quoted.
 *
 * sqlite runs in WAL mode with synchronous=NORMAL (as before the port): the
 * API's readers never block the meter's writes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vigie/bill_meter.h"

static const char schema_sqlite[] =
	"CREATE TABLE IF NOT EXISTS resources("
	" id TEXT PRIMARY KEY,"
	" type INTEGER NOT NULL,"
	" parent TEXT,"
	" project TEXT NOT NULL,"
	" user TEXT, name TEXT, host TEXT,"
	" first_ms INTEGER NOT NULL,"
	" last_seen_ms INTEGER NOT NULL,"
	" last_poll_ms INTEGER NOT NULL,"
	" last_change_ms INTEGER NOT NULL,"
	" state INTEGER NOT NULL," /* bit 1 exists, bit 2 running, 4 run known */
	" flavor TEXT, vcpus INTEGER, ram_mb INTEGER, disk_gb INTEGER,"
	" capacity INTEGER,"
	" has_disks INTEGER NOT NULL DEFAULT 0,"
	" ctr_ms INTEGER, ctr_tx INTEGER, ctr_rx INTEGER);"
	"CREATE INDEX IF NOT EXISTS resources_project ON resources(project);"
	"CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent);"
	"CREATE TABLE IF NOT EXISTS transitions("
	" resource TEXT NOT NULL,"
	" time_ms INTEGER NOT NULL,"
	" kind INTEGER NOT NULL,"
	" exact INTEGER NOT NULL,"
	" lo_ms INTEGER NOT NULL,"
	" hi_ms INTEGER NOT NULL,"
	" flavor TEXT, vcpus INTEGER, ram_mb INTEGER, disk_gb INTEGER,"
	" capacity INTEGER,"
	" PRIMARY KEY(resource, time_ms, kind)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS network("
	" project TEXT NOT NULL,"
	" hour_ms INTEGER NOT NULL,"
	" nic TEXT NOT NULL,"
	" tx INTEGER NOT NULL,"
	" rx INTEGER NOT NULL,"
	" PRIMARY KEY(project, hour_ms, nic)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS months("
	" month TEXT PRIMARY KEY,"
	" finalized_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS invoices("
	" month TEXT NOT NULL,"
	" project TEXT NOT NULL,"
	" number TEXT NOT NULL UNIQUE,"
	" document TEXT NOT NULL,"
	" PRIMARY KEY(month, project));";

static const char schema_pg[] =
	"CREATE TABLE IF NOT EXISTS resources("
	" id TEXT COLLATE \"C\" PRIMARY KEY,"
	" type BIGINT NOT NULL,"
	" parent TEXT COLLATE \"C\","
	" project TEXT COLLATE \"C\" NOT NULL,"
	" \"user\" TEXT, name TEXT, host TEXT,"
	" first_ms BIGINT NOT NULL,"
	" last_seen_ms BIGINT NOT NULL,"
	" last_poll_ms BIGINT NOT NULL,"
	" last_change_ms BIGINT NOT NULL,"
	" state BIGINT NOT NULL,"
	" flavor TEXT, vcpus BIGINT, ram_mb BIGINT, disk_gb BIGINT,"
	" capacity BIGINT,"
	" has_disks BIGINT NOT NULL DEFAULT 0,"
	" ctr_ms BIGINT, ctr_tx BIGINT, ctr_rx BIGINT);"
	"CREATE INDEX IF NOT EXISTS resources_project ON resources(project);"
	"CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent);"
	"CREATE TABLE IF NOT EXISTS transitions("
	" resource TEXT COLLATE \"C\" NOT NULL,"
	" time_ms BIGINT NOT NULL,"
	" kind BIGINT NOT NULL,"
	" exact BIGINT NOT NULL,"
	" lo_ms BIGINT NOT NULL,"
	" hi_ms BIGINT NOT NULL,"
	" flavor TEXT, vcpus BIGINT, ram_mb BIGINT, disk_gb BIGINT,"
	" capacity BIGINT,"
	" PRIMARY KEY(resource, time_ms, kind));"
	"CREATE TABLE IF NOT EXISTS network("
	" project TEXT COLLATE \"C\" NOT NULL,"
	" hour_ms BIGINT NOT NULL,"
	" nic TEXT COLLATE \"C\" NOT NULL,"
	" tx BIGINT NOT NULL,"
	" rx BIGINT NOT NULL,"
	" PRIMARY KEY(project, hour_ms, nic));"
	"CREATE TABLE IF NOT EXISTS months("
	" month TEXT COLLATE \"C\" PRIMARY KEY,"
	" finalized_ms BIGINT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS invoices("
	" month TEXT COLLATE \"C\" NOT NULL,"
	" project TEXT COLLATE \"C\" NOT NULL,"
	" number TEXT COLLATE \"C\" NOT NULL UNIQUE,"
	" document TEXT NOT NULL,"
	" PRIMARY KEY(month, project));";

/* Step 2: project names and invoice number sequences. IF NOT EXISTS
 * because billing.db files written by a build that created these tables
 * itself at open (before they were migration steps) already have them. */
static const char step2_sqlite[] =
	"CREATE TABLE IF NOT EXISTS bill_project_names("
	" project TEXT PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" updated_ms BIGINT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS bill_number_seq("
	" issuer TEXT PRIMARY KEY,"
	" last BIGINT NOT NULL);";

static const char step2_pg[] =
	"CREATE TABLE IF NOT EXISTS bill_project_names("
	" project TEXT COLLATE \"C\" PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" updated_ms BIGINT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS bill_number_seq("
	" issuer TEXT COLLATE \"C\" PRIMARY KEY,"
	" last BIGINT NOT NULL);";

/* Step 3 (PostgreSQL only): the meter updates every resources row at each
 * poll, none of its indexed columns; with room left in each page the new
 * row version goes in the same page without new index entries (a HOT
 * update) instead of one entry in each of the three indexes. At the
 * default fillfactor (100) a page is full and about 4 updates in 5 were
 * not HOT (bench/state_rows.sh). Applies to pages written from now on. */
static const char step3_pg[] = "ALTER TABLE resources SET (fillfactor = 50);";

/* Step 4: what finalized invoices billed of the network. A month's range
 * goes in network_billed_months when it is finalized; from then on, the
 * meter keeps, before it first changes an hour's row of such a month, the
 * row as it was billed (zeros if there was none) in network_billed (a
 * pre-image: copy on write, so the table holds only hours that changed
 * late). A finalization that freezes adjustments for a month drops its
 * pre-images: what is billed is then the rows as they are. An adjustment
 * of a network line names the hours where the rows differ from what was
 * billed (finalize.c). */
static const char step4_sqlite[] =
	"CREATE TABLE IF NOT EXISTS network_billed("
	" project TEXT NOT NULL,"
	" hour_ms INTEGER NOT NULL,"
	" nic TEXT NOT NULL,"
	" tx INTEGER NOT NULL,"
	" rx INTEGER NOT NULL,"
	" PRIMARY KEY(project, hour_ms, nic)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS network_billed_months("
	" start_ms INTEGER PRIMARY KEY,"
	" end_ms INTEGER NOT NULL);";

static const char step4_pg[] =
	"CREATE TABLE IF NOT EXISTS network_billed("
	" project TEXT COLLATE \"C\" NOT NULL,"
	" hour_ms BIGINT NOT NULL,"
	" nic TEXT COLLATE \"C\" NOT NULL,"
	" tx BIGINT NOT NULL,"
	" rx BIGINT NOT NULL,"
	" PRIMARY KEY(project, hour_ms, nic));"
	"CREATE TABLE IF NOT EXISTS network_billed_months("
	" start_ms BIGINT PRIMARY KEY,"
	" end_ms BIGINT NOT NULL);";
/* Step 5: a host's sightings in one row per host and generation instead
 * of last_seen_ms/last_poll_ms in every resources row at every poll
 * (billing/meter.c, "Sightings"). sight_gen NULL: the row's own columns
 * are the whole truth, as before this step. */
static const char step5_sqlite[] =
	"ALTER TABLE resources ADD COLUMN sight_gen INTEGER;"
	"CREATE TABLE IF NOT EXISTS sightings("
	" host TEXT NOT NULL,"
	" gen INTEGER NOT NULL,"
	" time_ms INTEGER NOT NULL,"
	" members INTEGER NOT NULL,"
	" PRIMARY KEY(host, gen)) WITHOUT ROWID;";

static const char step5_pg[] =
	"ALTER TABLE resources ADD COLUMN sight_gen BIGINT;"
	"CREATE TABLE IF NOT EXISTS sightings("
	" host TEXT COLLATE \"C\" NOT NULL,"
	" gen BIGINT NOT NULL,"
	" time_ms BIGINT NOT NULL,"
	" members BIGINT NOT NULL,"
	" PRIMARY KEY(host, gen)) WITH (fillfactor = 50);";

/* Step 6: the meter deletes a host's sightings generations that no
 * resources row names any more, at each new generation (billing/meter.c,
 * Q_SIGHT_GC): the rows naming one, found by this index. Generations left
 * behind before this step go now. The index's columns change only when a
 * row joins or leaves a generation, so steady updates stay HOT. */
#define STEP6                                                                       \
	"CREATE INDEX IF NOT EXISTS resources_sight ON resources(host, sight_gen);" \
	"DELETE FROM sightings WHERE gen<(SELECT max(s.gen) FROM sightings s "      \
	"WHERE s.host=sightings.host) AND NOT EXISTS(SELECT 1 FROM resources r "    \
	"WHERE r.host=sightings.host AND r.sight_gen=sightings.gen);"

/* Step 7: the silences of running instances, longer than the meter's
 * SILENCE_MS (billing/meter.c): a late exact start inside one ends the
 * run at its start, as it would delivered in order. Rare (a host or agent
 * down); finalizing a month drops those no draft can bill a change to any
 * more (finalize.c, prune_silences). */
#define STEP7                                       \
	"CREATE TABLE IF NOT EXISTS sighting_gaps(" \
	" resource TEXT NOT NULL,"                  \
	" from_ms BIGINT NOT NULL,"                 \
	" to_ms BIGINT NOT NULL,"                   \
	" PRIMARY KEY(resource, from_ms));"

static const struct vg_db_step steps[] = {
	{.version = 1, .sql_sqlite = schema_sqlite, .sql_pg = schema_pg},
	{.version = 2, .sql_sqlite = step2_sqlite, .sql_pg = step2_pg},
	{.version = 3, .sql_pg = step3_pg},
	{.version = 4, .sql_sqlite = step4_sqlite, .sql_pg = step4_pg},
	{.version = 5, .sql_sqlite = step5_sqlite, .sql_pg = step5_pg},
	{.version = 6, .sql = STEP6},
	{.version = 7, .sql = STEP7},
};

static const struct vg_db_schema billing_schema = {
	.component = "billing",
	.pg_schema = "vigie_billing",
	.steps = steps,
	.nsteps = sizeof(steps) / sizeof(steps[0]),
	.adopt_user_version = 1,
};

char *vg_bill_db_path(const char *data_dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", data_dir, VG_BILL_DB);
	return buf;
}

char *vg_bill_db_url(const char *data_dir, const char *state_url, char *buf,
		     size_t len)
{
	if (state_url && *state_url)
		snprintf(buf, len, "%s", state_url);
	else
		vg_bill_db_path(data_dir, buf, len);
	return buf;
}

int vg_bill_db_errno(int rc)
{
	switch (rc) {
	case -EBUSY:
	case -ETIMEDOUT:
	case -ENOSPC:
	case -ECONNRESET:
	case -ENOTCONN:
	case -EROFS:
	case -EAGAIN:
		return -EAGAIN;
	default:
		return rc;
	}
}

/* vigie/db.h's rule: postgresql://, postgres://, or key=value conninfo
 * (an '=' with no '/' before it). Anything else is a sqlite path. */
static int is_pg(const char *url)
{
	const char *eq = strchr(url, '='), *sl = strchr(url, '/');
	return !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11) ||
	       (eq && (!sl || sl > eq));
}

int vg_bill_db_open(const char *url, struct vg_db **out, char *err, size_t errlen)
{
	char buf[1200];

	*out = NULL;
	if (!url || !*url) {
		snprintf(err, errlen, "billing: no database");
		return -EINVAL;
	}
	/* a plain path keeps the synchronous=NORMAL billing.db always had */
	if (!is_pg(url) && strncmp(url, "sqlite:", 7) && !strchr(url, '?')) {
		if (snprintf(buf, sizeof(buf), "sqlite:%s?synchronous=normal", url) >=
		    (int)sizeof(buf)) {
			snprintf(err, errlen, "billing: database path too long");
			return -ENAMETOOLONG;
		}
		url = buf;
	}
	return vg_db_open(url, &billing_schema, out, err, errlen);
}
