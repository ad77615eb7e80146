/*
 * token.c — API bearer tokens: creation, revocation, listing and the
 * per-request check (vigie/token.h), plus the offline
 * `vigie-collector token` command that bootstraps the first admin token.
 *
 * Design. The table `tokens` of the state database (vigie/db.h:
 * <data_dir>/tokens.db on sqlite, or the PostgreSQL server of `[state]
 * url` that every collector shares) holds one row per token: (id, hmac,
 * project NULL for admin, name, created_ms, revoked_ms). The hmac is
 * HMAC-SHA256 keyed with the 32-byte server key of tokens.key, over the
 * whole token string; the plain secret is never stored. The key file is
 * written under a temporary name and link()ed into place, so two
 * processes creating it at once agree on one key and nobody reads a
 * half-written one.
 *
 * Where the key lives when the state is shared: in a FILE, the same on
 * every collector (distributed by configuration management, like the
 * agents' keys), not in the database. The database's credentials are held
 * by more parties than a collector's key file (replicas, backups, DBAs,
 * other vigie components); with the key beside the hashes, whoever can
 * write the table could mint an admin token. So the database alone never
 * lets anyone mint or test a token. To catch a collector started with
 * another key (it would refuse every token), the row token_meta(id = 1)
 * holds the key's fingerprint (HMAC of a fixed text, never the key): the
 * first store to open the state records it, and a store whose key has
 * another fingerprint refuses to open (-EKEYREJECTED, naming the file).
 * The row also holds a generation, bumped in the same transaction as each
 * create or revoke.
 *
 * Requests are checked against an in-memory copy of the table, reloaded
 * when the generation differs from the one loaded, or when this process
 * changed a token itself. The generation is read at most every
 * poll_ms: at every request on sqlite (a local read, as cheap as the
 * stat() it replaced), at most once a second on PostgreSQL (a server
 * round trip per request would serialise the API's threads on the one
 * connection), so a token revoked on another collector stops working
 * there within a second; in the revoking process, at once. A token whose
 * id is not in the copy reads the generation again unless it was read
 * in the last MISS_RECHECK_MS: a token just made on another collector
 * (a script that creates one and uses it at once) is not refused for a
 * second. It can be refused only if it was made after a read that came
 * less than MISS_RECHECK_MS before the request; the answer is then a
 * 401 like any unknown token, and the same request a moment later works.
 *
 * Invariants: a token is accepted only if its id is in the table, it is
 * not revoked and its HMAC matches (CRYPTO_memcmp); a malformed, unknown
 * and revoked token get the same -EACCES; tokens.db and tokens.key are
 * mode 0600. Lock order: db_lock, then the table's rwlock.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "vigie/clock.h"
#include "vigie/name.h"
#include "vigie/db.h"
#include "vigie/token.h"

#define KEY_LEN 32
#define MAC_LEN 32
#define FPR_HEX 32 /* hex digits of the key's fingerprint */
/* How often the generation is read on a server (see above). */
#define POLL_SERVER_MS 1000
/* An id not in the table reads it again if the last read is this old
 * (see above): a token made on another collector works here at once,
 * and unknown ids sent in a flood cost at most ten reads a second. */
#define MISS_RECHECK_MS 100

struct entry {
	char id[VG_TOKEN_ID_LEN + 1];
	unsigned char mac[MAC_LEN];
	char *project; /* NULL: admin */
	int revoked;
};

struct vg_token_store {
	unsigned char key[KEY_LEN];
	pthread_mutex_t db_lock; /* guards db and checked_ms */
	struct vg_db *db;
	int64_t poll_ms;       /* 0: read the generation at every request */
	int64_t checked_ms;    /* monotonic time the generation was read */
	pthread_rwlock_t lock; /* guards the table below */
	struct entry *e;
	size_t n;
	int64_t generation; /* of the table loaded */
	int loaded, dirty;
};

static const struct vg_db_step token_steps[] = {
	{.version = 1,
	 .sql_sqlite = "CREATE TABLE IF NOT EXISTS tokens ("
		       " id TEXT PRIMARY KEY NOT NULL,"
		       " hmac BLOB NOT NULL,"
		       " project TEXT,"
		       " name TEXT NOT NULL DEFAULT '',"
		       " created_ms INTEGER NOT NULL,"
		       " revoked_ms INTEGER);",
	 .sql_pg = "CREATE TABLE tokens ("
		   " id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
		   " hmac BYTEA NOT NULL,"
		   " project TEXT,"
		   " name TEXT NOT NULL DEFAULT '',"
		   " created_ms BIGINT NOT NULL,"
		   " revoked_ms BIGINT);"},
	{.version = 2,
	 .sql = "CREATE TABLE token_meta ("
		" id BIGINT PRIMARY KEY NOT NULL,"
		" generation BIGINT NOT NULL,"
		" key_fingerprint TEXT);"
		"INSERT INTO token_meta(id, generation) VALUES(1, 0);"},
};

/* Component "tokens"; a tokens.db of before (user_version 0, no
 * vg_schema) runs both steps, the first of which keeps its table. */
static const struct vg_db_schema token_schema = {
	.component = "tokens",
	.pg_schema = "vigie_tokens",
	.steps = token_steps,
	.nsteps = sizeof(token_steps) / sizeof(token_steps[0]),
	.adopt_user_version = 1,
};

/* ---- the server key ----------------------------------------------------- */

static int read_key(const char *path, unsigned char *key, char *err,
		    size_t errlen)
{
	unsigned char buf[KEY_LEN + 1];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != KEY_LEN) {
		snprintf(err, errlen, "%s: damaged (%zd bytes, want %d); "
				      "remove it and create new tokens",
			 path, n, KEY_LEN);
		return -EIO;
	}
	memcpy(key, buf, KEY_LEN);
	return 0;
}

static int load_or_create_key(const char *path, unsigned char *key, char *err,
			      size_t errlen)
{
	char tmp[4200];
	unsigned char fresh[KEY_LEN];
	int fd, rc;

	rc = read_key(path, key, err, errlen);
	if (rc != -ENOENT) {
		if (rc && rc != -EIO)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (RAND_bytes(fresh, KEY_LEN) != 1) {
		snprintf(err, errlen, "tokens: no random bytes for the key");
		return -EIO;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	/* errors name the key file the operator configured, not the
	 * temporary one it is written through */
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot create the token key: %s", path, strerror(-rc));
		return rc;
	}
	if (write(fd, fresh, KEY_LEN) != KEY_LEN || fsync(fd)) {
		rc = errno ? -errno : -EIO;
		close(fd);
		unlink(tmp);
		snprintf(err, errlen, "%s: cannot create the token key: %s", path, strerror(-rc));
		return rc;
	}
	close(fd);
	rc = link(tmp, path) ? -errno : 0;
	unlink(tmp);
	if (rc && rc != -EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	/* whoever linked first wins; read what is there */
	rc = read_key(path, key, err, errlen);
	if (rc && rc != -EIO)
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	return rc;
}

static void mac_of(const struct vg_token_store *ts, const char *token,
		   unsigned char *mac)
{
	unsigned int len = MAC_LEN;

	HMAC(EVP_sha256(), ts->key, KEY_LEN, (const unsigned char *)token,
	     strlen(token), mac, &len);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int is_hex_lower(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int vg_token_parse(const char *t, char *id_out)
{
	if (!t || strlen(t) != VG_TOKEN_LEN || strncmp(t, "vgt_", 4) ||
	    t[4 + VG_TOKEN_ID_LEN] != '_' || !is_hex_lower(t + 4, VG_TOKEN_ID_LEN) ||
	    !is_hex_lower(t + 5 + VG_TOKEN_ID_LEN, VG_TOKEN_SECRET_LEN))
		return -EINVAL;
	if (id_out) {
		memcpy(id_out, t + 4, VG_TOKEN_ID_LEN);
		id_out[VG_TOKEN_ID_LEN] = '\0';
	}
	return 0;
}

/* ---- open / close ------------------------------------------------------- */

/* The database's errors as this module's callers know them. */
static int map_db(int rc)
{
	switch (rc) {
	case -EBUSY:
	case -ECONNRESET:
	case -ENOTCONN:
	case -EROFS:
		return -EAGAIN;
	default:
		return rc;
	}
}

/* The key's fingerprint: hex of HMAC(key, a fixed text), first 16 bytes.
 * Tells two keys apart without saying anything about either. */
static void fingerprint(const unsigned char *key, char *out)
{
	static const char text[] = "vigie tokens.key fingerprint";
	unsigned char mac[MAC_LEN];
	unsigned int len = MAC_LEN;

	HMAC(EVP_sha256(), key, KEY_LEN, (const unsigned char *)text,
	     sizeof(text) - 1, mac, &len);
	hex(mac, FPR_HEX / 2, out);
}

/* Record the key's fingerprint if the state has none, else compare. */
static int check_key(struct vg_db *db, void *arg)
{
	char *fpr = arg; /* ours in, the database's out when they differ */
	struct vg_db_stmt *s;
	int rc;

	if ((rc = vg_db_prepare(db, "UPDATE token_meta SET key_fingerprint = ?1 "
				    "WHERE id = 1 AND key_fingerprint IS NULL",
				&s)))
		return rc;
	vg_db_bind_text(s, 1, fpr);
	rc = vg_db_step(s);
	vg_db_reset(s);
	if (rc < 0)
		return rc;
	if ((rc = vg_db_prepare(db, "SELECT key_fingerprint FROM token_meta "
				    "WHERE id = 1",
				&s)))
		return rc;
	rc = vg_db_step(s);
	if (rc == 1) {
		const char *have = vg_db_column_text(s, 0);
		rc = have && strcmp(have, fpr) ? 1 : 0;
		if (rc)
			snprintf(fpr, FPR_HEX + 1, "%s", have);
	} else if (rc == 0) {
		rc = -EIO; /* the row is made by the migration */
	}
	vg_db_reset(s);
	return rc;
}

int vg_token_store_open_state(const char *data_dir, const char *state_url,
			      const char *key_path, struct vg_token_store **out,
			      char *err, size_t errlen)
{
	struct vg_token_store *ts;
	char url[4200], kpath[4096], dbpath[4096] = "";
	char ours[FPR_HEX + 1], fpr[FPR_HEX + 1];
	int rc;

	*out = NULL;
	if ((!data_dir || !*data_dir) &&
	    (!state_url || !*state_url || !key_path || !*key_path)) {
		snprintf(err, errlen, "tokens: no data directory");
		return -EINVAL;
	}
	if ((size_t)snprintf(kpath, sizeof(kpath), "%s%s",
			     key_path && *key_path ? key_path : data_dir,
			     key_path && *key_path ? "" : "/tokens.key") >=
	    sizeof(kpath) - 200) {
		snprintf(err, errlen, "tokens: data directory path too long");
		return -ENAMETOOLONG;
	}
	if (state_url && *state_url) {
		snprintf(url, sizeof(url), "%s", state_url);
	} else {
		snprintf(dbpath, sizeof(dbpath), "%s/tokens.db", data_dir);
		snprintf(url, sizeof(url), "sqlite:%s?busy_timeout_ms=2000", dbpath);
	}
	ts = calloc(1, sizeof(*ts));
	if (!ts) {
		snprintf(err, errlen, "tokens: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&ts->db_lock, NULL);
	pthread_rwlock_init(&ts->lock, NULL);
	if ((rc = load_or_create_key(kpath, ts->key, err, errlen))) {
		vg_token_store_close(ts);
		return rc;
	}
	if (dbpath[0]) { /* created 0600, before sqlite makes it 0644 */
		int fd = open(dbpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		chmod(dbpath, 0600);
	}
	if ((rc = vg_db_open(url, &token_schema, &ts->db, err, errlen))) {
		vg_token_store_close(ts);
		return rc;
	}
	ts->poll_ms = vg_db_engine(ts->db) == VG_DB_SQLITE ? 0 : POLL_SERVER_MS;
	fingerprint(ts->key, ours);
	memcpy(fpr, ours, sizeof(fpr));
	rc = vg_db_transact(ts->db, check_key, fpr);
	if (rc == 1) {
		snprintf(err, errlen,
			 "%s: this key (fingerprint %s) is not the key the tokens "
			 "of the state were made with (fingerprint %s): copy "
			 "tokens.key from a collector that shares this state "
			 "(docs/operations.md \"Shared state\")",
			 kpath, ours, fpr);
		vg_token_store_close(ts);
		return -EKEYREJECTED;
	}
	if (rc) {
		snprintf(err, errlen, "tokens: %s", vg_db_errmsg(ts->db));
		vg_token_store_close(ts);
		return map_db(rc);
	}
	*out = ts;
	return 0;
}

int vg_token_store_open(const char *data_dir, struct vg_token_store **out,
			char *err, size_t errlen)
{
	return vg_token_store_open_state(data_dir, NULL, NULL, out, err, errlen);
}

static void free_table(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].project);
	free(e);
}

void vg_token_store_close(struct vg_token_store *ts)
{
	if (!ts)
		return;
	vg_db_close(ts->db);
	free_table(ts->e, ts->n);
	OPENSSL_cleanse(ts->key, sizeof(ts->key));
	pthread_rwlock_destroy(&ts->lock);
	pthread_mutex_destroy(&ts->db_lock);
	free(ts);
}

/* ---- the in-memory table ------------------------------------------------ */

/* vg_db_retry_lost's fn: the generation into *(int64_t *)arg (-1 if no
 * row). vg_db_step's result or -errno. */
static int select_generation(struct vg_db *db, void *arg)
{
	int64_t *gen = arg;
	struct vg_db_stmt *s;
	int rc;

	if ((rc = vg_db_prepare(db, "SELECT generation FROM token_meta WHERE id = 1", &s)))
		return rc;
	rc = vg_db_step(s);
	*gen = rc == 1 ? vg_db_column_int64(s, 0) : -1;
	vg_db_reset(s);
	return rc;
}

/* The generation of the tokens table. Call with db_lock. A connection
 * found lost is tried once more (vg_db_retry_lost: that call
 * reconnects), so a restarted server does not cost a request its answer. */
static int read_generation(struct vg_token_store *ts, int64_t *gen)
{
	int rc = vg_db_retry_lost(ts->db, select_generation, gen);

	return rc < 0 ? map_db(rc) : 0;
}

/* Read every token into a new table and swap it in. Call with db_lock. */
static int reload_locked(struct vg_token_store *ts)
{
	struct entry *e = NULL, *old;
	size_t n = 0, cap = 0, oldn;
	struct vg_db_stmt *s;
	int64_t gen;
	int rc;

	/* before reading: a change that lands during the reload is seen by
	 * the next check */
	if ((rc = read_generation(ts, &gen)))
		return rc;
	if ((rc = vg_db_prepare(ts->db, "SELECT id, hmac, project, revoked_ms "
					"FROM tokens",
				&s)))
		return map_db(rc);
	while ((rc = vg_db_step(s)) == 1) {
		const char *id = vg_db_column_text(s, 0);
		size_t maclen = 0;
		const void *mac = vg_db_column_blob(s, 1, &maclen);
		const char *project = vg_db_column_text(s, 2);

		if (!id || strlen(id) != VG_TOKEN_ID_LEN || !mac || maclen != MAC_LEN)
			continue; /* not ours; never matches */
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct entry *ne = realloc(e, nc * sizeof(*ne));
			if (!ne) {
				rc = -ENOMEM;
				break;
			}
			e = ne;
			cap = nc;
		}
		memset(&e[n], 0, sizeof(e[n]));
		memcpy(e[n].id, id, VG_TOKEN_ID_LEN + 1);
		memcpy(e[n].mac, mac, MAC_LEN);
		e[n].revoked = !vg_db_column_is_null(s, 3);
		if (project && !(e[n].project = strdup(project))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	vg_db_reset(s);
	if (rc != 0) {
		free_table(e, n);
		return rc < 0 ? map_db(rc) : -EIO;
	}
	pthread_rwlock_wrlock(&ts->lock);
	old = ts->e;
	oldn = ts->n;
	ts->e = e;
	ts->n = n;
	ts->generation = gen;
	ts->loaded = 1;
	ts->dirty = 0;
	pthread_rwlock_unlock(&ts->lock);
	free_table(old, oldn);
	return 0;
}

/* Reload if the tokens changed since the last load (see the top), the
 * generation read again if the last read is poll_ms old. */
static int refresh(struct vg_token_store *ts, int64_t poll_ms)
{
	int64_t now = vg_monotonic_ms(), gen;
	int fresh, rc = 0;

	pthread_mutex_lock(&ts->db_lock);
	pthread_rwlock_rdlock(&ts->lock);
	fresh = ts->loaded && !ts->dirty;
	pthread_rwlock_unlock(&ts->lock);
	if (fresh && poll_ms && now - ts->checked_ms < poll_ms) {
		pthread_mutex_unlock(&ts->db_lock);
		return 0;
	}
	if (fresh && !(rc = read_generation(ts, &gen)))
		fresh = gen == ts->generation;
	if (!rc) {
		ts->checked_ms = now;
		if (!fresh)
			rc = reload_locked(ts);
	}
	pthread_mutex_unlock(&ts->db_lock);
	return rc;
}

/* Look id up in the table loaded: -ENOENT (no such id), -EACCES (its
 * row refuses this mac), or 0 with scope filled. */
static int lookup(struct vg_token_store *ts, const char *id, const unsigned char *mac,
		  struct vg_token_scope *scope)
{
	int rc = -ENOENT;

	pthread_rwlock_rdlock(&ts->lock);
	for (size_t i = 0; i < ts->n; i++) {
		const struct entry *e = &ts->e[i];
		if (memcmp(e->id, id, VG_TOKEN_ID_LEN))
			continue;
		/* "*" is every project to silences and alarm selectors: a
		 * token scoped to it (made before create refused it) would
		 * reach every tenant, so it is no token */
		rc = -EACCES;
		if (!e->revoked && CRYPTO_memcmp(e->mac, mac, MAC_LEN) == 0 &&
		    !(e->project && !strcmp(e->project, "*"))) {
			rc = 0;
			scope->admin = !e->project;
			if (e->project)
				snprintf(scope->project, sizeof(scope->project),
					 "%s", e->project);
			memcpy(scope->id, id, sizeof(scope->id));
		}
		break;
	}
	pthread_rwlock_unlock(&ts->lock);
	return rc;
}

int vg_token_verify(struct vg_token_store *ts, const char *token,
		    struct vg_token_scope *scope)
{
	char id[VG_TOKEN_ID_LEN + 1];
	unsigned char mac[MAC_LEN];
	int rc;

	memset(scope, 0, sizeof(*scope));
	if (!ts || vg_token_parse(token, id))
		return -EACCES;
	if ((rc = refresh(ts, ts->poll_ms)))
		return rc == -EAGAIN ? -EAGAIN : -EIO;
	mac_of(ts, token, mac);
	rc = lookup(ts, id, mac, scope);
	if (rc == -ENOENT && ts->poll_ms) { /* made elsewhere just now? */
		int r2 = refresh(ts, MISS_RECHECK_MS);
		if (r2) {
			OPENSSL_cleanse(mac, sizeof(mac));
			return r2 == -EAGAIN ? -EAGAIN : -EIO;
		}
		rc = lookup(ts, id, mac, scope);
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc ? -EACCES : 0;
}

size_t vg_token_count_active(struct vg_token_store *ts)
{
	size_t n = 0;

	if (!ts || refresh(ts, ts->poll_ms))
		return 0;
	pthread_rwlock_rdlock(&ts->lock);
	for (size_t i = 0; i < ts->n; i++)
		n += !ts->e[i].revoked;
	pthread_rwlock_unlock(&ts->lock);
	return n;
}

/* ---- create, list, revoke ----------------------------------------------- */

static json_t *time_or_null(struct vg_db_stmt *s, int col)
{
	char buf[32];

	if (vg_db_column_is_null(s, col))
		return json_null();
	return json_string(vg_time_format(vg_db_column_int64(s, col), buf,
					  sizeof(buf)));
}

/* The description of the current row: id, name, project, created, revoked. */
static json_t *row_json(struct vg_db_stmt *s)
{
	const char *project = vg_db_column_text(s, 2);
	const char *name = vg_db_column_text(s, 1);

	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "id",
			 vg_db_column_text(s, 0), "name",
			 name ? name : "", "scope", project ? "project" : "admin",
			 "project", project ? json_string(project) : json_null(),
			 "created", time_or_null(s, 3), "revoked",
			 time_or_null(s, 4));
}

#define ROW_COLUMNS "id, name, project, created_ms, revoked_ms"

/* Describe token id (db_lock held). */
static int describe_locked(struct vg_token_store *ts, const char *id,
			   json_t **out)
{
	struct vg_db_stmt *s;
	int rc = vg_db_prepare(ts->db,
			       "SELECT " ROW_COLUMNS " FROM tokens WHERE id = ?1", &s);

	*out = NULL;
	if (rc)
		return map_db(rc);
	vg_db_bind_text(s, 1, id);
	rc = vg_db_step(s);
	if (rc == 1) {
		*out = row_json(s);
		rc = *out ? 0 : -ENOMEM;
	} else {
		rc = rc == 0 ? -ENOENT : map_db(rc);
	}
	vg_db_reset(s);
	return rc;
}

int vg_token_project_ok(const char *project)
{
	size_t n = project ? strlen(project) : 0;

	return n && n <= VG_TOKEN_PROJECT_MAX && vg_project_name_valid(project) &&
	       strcmp(project, "*");
}

static int name_ok(const char *name)
{
	return !name || !*name ||
	       (strlen(name) <= VG_TOKEN_NAME_MAX && vg_name_valid(name));
}

/* One write to the tokens and the generation's bump, in a transaction. */
struct write {
	const char *sql;
	const char *id, *project, *name;
	const unsigned char *mac;
	int64_t now_ms;
	int64_t changed;
};

static int write_tx(struct vg_db *db, void *arg)
{
	struct write *w = arg;
	struct vg_db_stmt *s;
	int rc;

	if ((rc = vg_db_prepare(db, w->sql, &s)))
		return rc;
	vg_db_bind_text(s, 1, w->id);
	vg_db_bind_int64(s, 2, w->now_ms);
	if (w->mac) {
		vg_db_bind_blob(s, 3, w->mac, MAC_LEN);
		vg_db_bind_text(s, 4, w->project);
		vg_db_bind_text(s, 5, w->name ? w->name : "");
	}
	rc = vg_db_step(s);
	vg_db_reset(s);
	if (rc < 0)
		return rc;
	if (!(w->changed = vg_db_changes(db)))
		return 0;
	return vg_db_exec(db, "UPDATE token_meta SET generation = generation + 1 "
			      "WHERE id = 1");
}

int vg_token_create(struct vg_token_store *ts, const char *project,
		    const char *name, int64_t now_ms, char *token_out,
		    json_t **info)
{
	unsigned char idb[VG_TOKEN_ID_LEN / 2], sec[VG_TOKEN_SECRET_LEN / 2];
	unsigned char mac[MAC_LEN];
	char id[VG_TOKEN_ID_LEN + 1], secret[VG_TOKEN_SECRET_LEN + 1];
	int rc = -EIO;

	if (info)
		*info = NULL;
	if (!ts || !token_out)
		return -EINVAL;
	token_out[0] = '\0';
	if ((project && !vg_token_project_ok(project)) || !name_ok(name))
		return -EINVAL;
	pthread_mutex_lock(&ts->db_lock);
	for (int attempt = 0; attempt < 3; attempt++) {
		struct write w = {
			.sql = "INSERT INTO tokens(id, created_ms, hmac, project, "
			       "name) VALUES(?1, ?2, ?3, ?4, ?5)",
			.id = id,
			.project = project,
			.name = name,
			.mac = mac,
			.now_ms = now_ms};

		if (RAND_bytes(idb, sizeof(idb)) != 1 ||
		    RAND_bytes(sec, sizeof(sec)) != 1) {
			rc = -EIO;
			break;
		}
		hex(idb, sizeof(idb), id);
		hex(sec, sizeof(sec), secret);
		snprintf(token_out, VG_TOKEN_LEN + 1, "vgt_%s_%s", id, secret);
		mac_of(ts, token_out, mac);
		rc = map_db(vg_db_transact(ts->db, write_tx, &w));
		if (rc != -EEXIST) /* an id collision: draw again */
			break;
	}
	OPENSSL_cleanse(sec, sizeof(sec));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc) {
		OPENSSL_cleanse(token_out, VG_TOKEN_LEN + 1);
		token_out[0] = '\0';
		if (rc != -EINVAL && rc != -EAGAIN && rc != -ENOMEM)
			rc = -EIO;
	} else {
		pthread_rwlock_wrlock(&ts->lock);
		ts->dirty = 1;
		pthread_rwlock_unlock(&ts->lock);
		if (info)
			describe_locked(ts, id, info);
	}
	pthread_mutex_unlock(&ts->db_lock);
	return rc;
}

int vg_token_list(struct vg_token_store *ts, json_t **out)
{
	struct vg_db_stmt *s;
	json_t *arr;
	int rc;

	*out = NULL;
	if (!ts)
		return -EINVAL;
	if (!(arr = json_array()))
		return -ENOMEM;
	pthread_mutex_lock(&ts->db_lock);
	rc = vg_db_prepare(ts->db, "SELECT " ROW_COLUMNS " FROM tokens ORDER BY "
				   "created_ms, id",
			   &s);
	if (!rc) {
		while ((rc = vg_db_step(s)) == 1)
			json_array_append_new(arr, row_json(s));
		vg_db_reset(s);
	}
	pthread_mutex_unlock(&ts->db_lock);
	if (rc) {
		json_decref(arr);
		return map_db(rc);
	}
	*out = arr;
	return 0;
}

int vg_token_revoke(struct vg_token_store *ts, const char *id, int64_t now_ms,
		    json_t **info)
{
	json_t *d = NULL;
	int rc;

	if (info)
		*info = NULL;
	if (!ts || !id || strlen(id) != VG_TOKEN_ID_LEN ||
	    !is_hex_lower(id, VG_TOKEN_ID_LEN))
		return -ENOENT;
	pthread_mutex_lock(&ts->db_lock);
	rc = describe_locked(ts, id, &d);
	if (rc == 0 && !json_is_null(json_object_get(d, "revoked")))
		rc = -EALREADY;
	if (rc == 0) {
		struct write w = {
			.sql = "UPDATE tokens SET revoked_ms = ?2 WHERE "
			       "id = ?1 AND revoked_ms IS NULL",
			.id = id,
			.now_ms = now_ms};
		rc = map_db(vg_db_transact(ts->db, write_tx, &w));
		if (!rc && !w.changed)
			rc = -EALREADY; /* revoked meanwhile, elsewhere */
	}
	if (rc == 0) {
		pthread_rwlock_wrlock(&ts->lock);
		ts->dirty = 1;
		pthread_rwlock_unlock(&ts->lock);
		json_decref(d);
		d = NULL;
		describe_locked(ts, id, &d);
	}
	pthread_mutex_unlock(&ts->db_lock);
	if (info)
		*info = d;
	else
		json_decref(d);
	return rc;
}

/* ---- the offline command ------------------------------------------------ */

static void print_table(FILE *out, json_t *arr)
{
	size_t i, w_name = 4, w_proj = 7;
	json_t *t;

	json_array_foreach(arr, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		const char *p = json_string_value(json_object_get(t, "project"));
		if (n && strlen(n) > w_name)
			w_name = strlen(n);
		if (p && strlen(p) > w_proj)
			w_proj = strlen(p);
	}
	fprintf(out, "%-16s  %-7s  %-*s  %-*s  %-20s  %s\n", "ID", "SCOPE",
		(int)w_proj, "PROJECT", (int)w_name, "NAME", "CREATED", "REVOKED");
	json_array_foreach(arr, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));
		const char *p = json_string_value(json_object_get(t, "project"));
		const char *r = json_string_value(json_object_get(t, "revoked"));
		fprintf(out, "%-16s  %-7s  %-*s  %-*s  %-20s  %s\n",
			json_string_value(json_object_get(t, "id")),
			json_string_value(json_object_get(t, "scope")),
			(int)w_proj, p ? p : "-", (int)w_name, n && *n ? n : "-",
			json_string_value(json_object_get(t, "created")),
			r ? r : "-");
	}
}

static const char cmd_usage[] =
	"usage: vigie-collector [--data-dir DIR | --config FILE] token COMMAND\n"
	"  token create --admin [--name N]        a token that sees everything\n"
	"  token create --project P [--name N]    a token that sees project P only\n"
	"  token list [--json]                    every token (never the secret)\n"
	"  token revoke ID                        stop a token at once\n"
	"The token is printed once, on stdout; only its HMAC is stored, in\n"
	"DIR/tokens.db or the [state] url database, keyed by DIR/tokens.key\n"
	"(or [state] token_key). Works while the collector runs.\n";

int vg_token_command(const char *data_dir, int argc, char **argv, FILE *out,
		     FILE *err)
{
	return vg_token_command_state(data_dir, NULL, NULL, argc, argv, out, err);
}

int vg_token_command_state(const char *data_dir, const char *state_url,
			   const char *key_path, int argc, char **argv,
			   FILE *out, FILE *err)
{
	static const struct option opts[] = {
		{"admin", no_argument, NULL, 'a'},
		{"project", required_argument, NULL, 'p'},
		{"name", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *project = NULL, *name = NULL, *sub;
	int admin = 0, json = 0, o, rc, status = 1;
	struct vg_token_store *ts = NULL;
	char e[512], token[VG_TOKEN_LEN + 1];
	json_t *j = NULL;

	if (argc < 2) {
		fprintf(err, "vigie-collector token: expected create, list or "
			     "revoke (see 'token --help')\n");
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(cmd_usage, out);
		return 0;
	}
	sub = argv[1];
	/* options and arguments after the subcommand; av[0] = the subcommand */
	argc--;
	argv++;
	optind = 0; /* GNU: re-initialise (the caller used getopt already) */
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'a': admin = 1; break;
		case 'p': project = optarg; break;
		case 'n': name = optarg; break;
		case 'j': json = 1; break;
		case 'h': fputs(cmd_usage, out); return 0;
		case ':':
			fprintf(err, "vigie-collector token: option '%s' needs a "
				     "value\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(err, "vigie-collector token: unknown option '%s' "
				     "(see 'token --help')\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (!strcmp(sub, "create")) {
		if (admin == !!project || optind != argc) {
			fprintf(err, "vigie-collector token create: give exactly "
				     "one of --admin or --project P (see 'token --help')\n");
			return 2;
		}
	} else if (!strcmp(sub, "list")) {
		if (optind != argc || admin || project || name) {
			fprintf(err, "vigie-collector token list: takes only "
				     "--json\n");
			return 2;
		}
	} else if (!strcmp(sub, "revoke")) {
		if (optind != argc - 1 || admin || project || name) {
			fprintf(err, "vigie-collector token revoke: expected one "
				     "token ID\n");
			return 2;
		}
	} else {
		fprintf(err, "vigie-collector token: unknown command '%s' (create, "
			     "list, revoke)\n",
			sub);
		return 2;
	}

	if (strcmp(sub, "create")) {
		/* list and revoke read what token create (or the collector's
		 * start) made: a typo in --data-dir is said, not answered
		 * with a new directory, key and empty database */
		int own_dir = !(state_url && *state_url && key_path && *key_path);
		char kp[4200];
		struct stat st;
		snprintf(kp, sizeof(kp), "%s%s", key_path && *key_path ? key_path : data_dir,
			 key_path && *key_path ? "" : "/tokens.key");
		if (own_dir && data_dir && *data_dir && stat(data_dir, &st)) {
			fprintf(err, "vigie-collector token %s: data directory %s: %s "
				     "(check --data-dir or [collector] data_dir)\n",
				sub, data_dir, strerror(errno));
			return 1;
		}
		if (stat(kp, &st)) {
			fprintf(err, "vigie-collector token %s: %s: %s: no token was made "
				     "with this data directory (check --data-dir, or make one "
				     "with token create)\n",
				sub, kp, strerror(errno));
			return 1;
		}
	}
	if (mkdir(data_dir, 0755) && errno != EEXIST) {
		fprintf(err, "vigie-collector token: cannot create %s: %s\n",
			data_dir, strerror(errno));
		return 1;
	}
	if (vg_token_store_open_state(data_dir, state_url, key_path, &ts, e,
				      sizeof(e))) {
		fprintf(err, "vigie-collector token: %s\n", e);
		return 1;
	}
	if (!strcmp(sub, "create")) {
		rc = vg_token_create(ts, project, name, vg_now_ms(), token, &j);
		if (rc == -EINVAL && name_ok(name) && project && vg_name_blank_end(project))
			fprintf(err, "vigie-collector token create: bad project name: it "
				     "begins or ends with white space (\" acme\" or "
				     "\"acme\" + U+00A0 would read as \"acme\" but be "
				     "another project)\n");
		else if (rc == -EINVAL)
			fprintf(err, "vigie-collector token create: bad %s\n",
				name_ok(name) ? "project name" : "token name");
		else if (rc)
			fprintf(err, "vigie-collector token create: %s\n",
				strerror(-rc));
		else {
			fprintf(out, "%s\n", token);
			fprintf(err, "created %s token %s%s%s; it is shown only "
				     "once\n",
				project ? "project" : "admin",
				json_string_value(json_object_get(j, "id")),
				project ? " for project " : "",
				project ? project : "");
			status = 0;
		}
		OPENSSL_cleanse(token, sizeof(token));
	} else if (!strcmp(sub, "list")) {
		rc = vg_token_list(ts, &j);
		if (rc) {
			fprintf(err, "vigie-collector token list: %s\n",
				strerror(-rc));
		} else {
			if (json) {
				json_t *doc = json_pack("{s:O}", "tokens", j);
				json_dumpf(doc, out, JSON_INDENT(2));
				fputc('\n', out);
				json_decref(doc);
			} else {
				print_table(out, j);
			}
			status = 0;
		}
	} else {
		rc = vg_token_revoke(ts, argv[optind], vg_now_ms(), NULL);
		if (rc == -ENOENT)
			fprintf(err, "vigie-collector token revoke: no token '%s'\n",
				argv[optind]);
		else if (rc == -EALREADY)
			fprintf(err, "vigie-collector token revoke: token '%s' "
				     "was already revoked\n",
				argv[optind]);
		else if (rc)
			fprintf(err, "vigie-collector token revoke: %s\n",
				strerror(-rc));
		else {
			fprintf(out, "revoked %s\n", argv[optind]);
			status = 0;
		}
	}
	json_decref(j);
	vg_token_store_close(ts);
	return status;
}
