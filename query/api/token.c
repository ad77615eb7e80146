/*
 * token.c — API bearer tokens: creation, revocation, listing and the
 * per-request check (vigie/token.h), plus the offline
 * `vigie-collector token` command that bootstraps the first admin token.
 *
 * Design. tokens.db (sqlite, rollback journal) holds one row per token:
 * (id, hmac, project NULL for admin, name, created_ms, revoked_ms). The
 * hmac is HMAC-SHA256 keyed with the 32-byte server key of tokens.key, over
 * the whole token string; the plain secret is never stored. The key file is
 * written under a temporary name and link()ed into place, so two processes
 * creating it at once agree on one key and nobody reads a half-written one.
 *
 * Requests are checked against an in-memory copy of the table. The copy is
 * reloaded when tokens.db's identity (inode, size, mtime, ctime) differs
 * from the one seen at the last load — the database is in rollback-journal
 * mode, so every commit rewrites the main file — or when this process
 * changed a token itself. The file is stat()ed before it is read, so a
 * change that lands during a reload is seen by the next request.
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
#include <sqlite3.h>

#include "vigie/clock.h"
#include "vigie/name.h"
#include "vigie/sqlitedb.h"
#include "vigie/token.h"

#define KEY_LEN 32
#define MAC_LEN 32
#define BUSY_TIMEOUT_MS 2000

struct entry {
	char id[VG_TOKEN_ID_LEN + 1];
	unsigned char mac[MAC_LEN];
	char *project; /* NULL: admin */
	int revoked;
};

struct file_sig {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct vg_token_store {
	char db_path[4096];
	unsigned char key[KEY_LEN];
	pthread_mutex_t db_lock; /* guards db */
	sqlite3 *db;
	pthread_rwlock_t lock;   /* guards the table below */
	struct entry *e;
	size_t n;
	struct file_sig sig;
	int loaded, dirty;
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS tokens ("
	" id TEXT PRIMARY KEY NOT NULL,"
	" hmac BLOB NOT NULL,"
	" project TEXT,"
	" name TEXT NOT NULL DEFAULT '',"
	" created_ms INTEGER NOT NULL,"
	" revoked_ms INTEGER);";

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
			 "remove it and create new tokens", path, n, KEY_LEN);
		return -EIO;
	}
	memcpy(key, buf, KEY_LEN);
	return 0;
}

static int load_or_create_key(const char *dir, unsigned char *key, char *err,
			      size_t errlen)
{
	char path[4096], tmp[4200];
	unsigned char fresh[KEY_LEN];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/tokens.key", dir);
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
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(-rc));
		return rc;
	}
	if (write(fd, fresh, KEY_LEN) != KEY_LEN || fsync(fd)) {
		rc = errno ? -errno : -EIO;
		close(fd);
		unlink(tmp);
		snprintf(err, errlen, "%s: %s", tmp, strerror(-rc));
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

/* vg_sqlitedb_errno, but a broken constraint is a duplicate. */
static int map_sqlite(int rc)
{
	return (rc & 0xff) == SQLITE_CONSTRAINT ? -EEXIST : vg_sqlitedb_errno(rc);
}

int vg_token_store_open(const char *data_dir, struct vg_token_store **out,
			char *err, size_t errlen)
{
	struct vg_token_store *ts;
	char *msg = NULL;
	int rc;

	*out = NULL;
	if (!data_dir || !*data_dir) {
		snprintf(err, errlen, "tokens: no data directory");
		return -EINVAL;
	}
	ts = calloc(1, sizeof(*ts));
	if (!ts) {
		snprintf(err, errlen, "tokens: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&ts->db_lock, NULL);
	pthread_rwlock_init(&ts->lock, NULL);
	if ((size_t)snprintf(ts->db_path, sizeof(ts->db_path), "%s/tokens.db",
			     data_dir) >= sizeof(ts->db_path)) {
		snprintf(err, errlen, "tokens: data directory path too long");
		vg_token_store_close(ts);
		return -ENAMETOOLONG;
	}
	if ((rc = load_or_create_key(data_dir, ts->key, err, errlen))) {
		vg_token_store_close(ts);
		return rc;
	}
	rc = sqlite3_open_v2(ts->db_path, &ts->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK) {
		chmod(ts->db_path, 0600);
		sqlite3_busy_timeout(ts->db, BUSY_TIMEOUT_MS);
		rc = sqlite3_exec(ts->db, "PRAGMA journal_mode=DELETE;", NULL,
				  NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(ts->db, schema, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", ts->db_path,
			 msg ? msg : ts->db ? sqlite3_errmsg(ts->db) : "cannot open");
		sqlite3_free(msg);
		vg_token_store_close(ts);
		return map_sqlite(rc) ? map_sqlite(rc) : -EIO;
	}
	*out = ts;
	return 0;
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
	sqlite3_close(ts->db);
	free_table(ts->e, ts->n);
	OPENSSL_cleanse(ts->key, sizeof(ts->key));
	pthread_rwlock_destroy(&ts->lock);
	pthread_mutex_destroy(&ts->db_lock);
	free(ts);
}

/* ---- the in-memory table ------------------------------------------------ */

static void file_sig(const char *path, struct file_sig *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st))
		return;
	s->exists = 1;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

static int sig_equal(const struct file_sig *a, const struct file_sig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Read every token into a new table and swap it in. Call with db_lock. */
static int reload_locked(struct vg_token_store *ts)
{
	struct entry *e = NULL, *old;
	size_t n = 0, cap = 0, oldn;
	struct file_sig sig;
	sqlite3_stmt *s = NULL;
	int rc;

	file_sig(ts->db_path, &sig); /* before reading: see the comment above */
	rc = sqlite3_prepare_v2(ts->db,
				"SELECT id, hmac, project, revoked_ms FROM tokens",
				-1, &s, NULL);
	if (rc != SQLITE_OK)
		return map_sqlite(rc);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		const void *mac = sqlite3_column_blob(s, 1);
		const char *project = (const char *)sqlite3_column_text(s, 2);

		if (!id || strlen(id) != VG_TOKEN_ID_LEN || !mac ||
		    sqlite3_column_bytes(s, 1) != MAC_LEN)
			continue; /* not ours; never matches */
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct entry *ne = realloc(e, nc * sizeof(*ne));
			if (!ne) {
				rc = SQLITE_NOMEM;
				break;
			}
			e = ne;
			cap = nc;
		}
		memset(&e[n], 0, sizeof(e[n]));
		memcpy(e[n].id, id, VG_TOKEN_ID_LEN + 1);
		memcpy(e[n].mac, mac, MAC_LEN);
		e[n].revoked = sqlite3_column_type(s, 3) != SQLITE_NULL;
		if (project && !(e[n].project = strdup(project))) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		free_table(e, n);
		return map_sqlite(rc) ? map_sqlite(rc) : -EIO;
	}
	pthread_rwlock_wrlock(&ts->lock);
	old = ts->e;
	oldn = ts->n;
	ts->e = e;
	ts->n = n;
	ts->sig = sig;
	ts->loaded = 1;
	ts->dirty = 0;
	pthread_rwlock_unlock(&ts->lock);
	free_table(old, oldn);
	return 0;
}

/* Reload if tokens.db changed since the last load. */
static int refresh(struct vg_token_store *ts)
{
	struct file_sig now;
	int fresh, rc = 0;

	file_sig(ts->db_path, &now);
	pthread_rwlock_rdlock(&ts->lock);
	fresh = ts->loaded && !ts->dirty && sig_equal(&now, &ts->sig);
	pthread_rwlock_unlock(&ts->lock);
	if (fresh)
		return 0;
	pthread_mutex_lock(&ts->db_lock);
	/* someone else may have reloaded while we waited */
	pthread_rwlock_rdlock(&ts->lock);
	fresh = ts->loaded && !ts->dirty && sig_equal(&now, &ts->sig);
	pthread_rwlock_unlock(&ts->lock);
	if (!fresh)
		rc = reload_locked(ts);
	pthread_mutex_unlock(&ts->db_lock);
	return rc;
}

int vg_token_verify(struct vg_token_store *ts, const char *token,
		    struct vg_token_scope *scope)
{
	char id[VG_TOKEN_ID_LEN + 1];
	unsigned char mac[MAC_LEN];
	int rc, ok = 0;

	memset(scope, 0, sizeof(*scope));
	if (!ts || vg_token_parse(token, id))
		return -EACCES;
	if ((rc = refresh(ts)))
		return rc == -EAGAIN ? -EAGAIN : -EIO;
	mac_of(ts, token, mac);
	pthread_rwlock_rdlock(&ts->lock);
	for (size_t i = 0; i < ts->n; i++) {
		const struct entry *e = &ts->e[i];
		if (memcmp(e->id, id, VG_TOKEN_ID_LEN))
			continue;
		if (!e->revoked && CRYPTO_memcmp(e->mac, mac, MAC_LEN) == 0) {
			ok = 1;
			scope->admin = !e->project;
			if (e->project)
				snprintf(scope->project, sizeof(scope->project),
					 "%s", e->project);
			memcpy(scope->id, id, sizeof(scope->id));
		}
		break;
	}
	pthread_rwlock_unlock(&ts->lock);
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok ? 0 : -EACCES;
}

size_t vg_token_count_active(struct vg_token_store *ts)
{
	size_t n = 0;

	if (!ts || refresh(ts))
		return 0;
	pthread_rwlock_rdlock(&ts->lock);
	for (size_t i = 0; i < ts->n; i++)
		n += !ts->e[i].revoked;
	pthread_rwlock_unlock(&ts->lock);
	return n;
}

/* ---- create, list, revoke ----------------------------------------------- */

static json_t *time_or_null(sqlite3_stmt *s, int col)
{
	char buf[32];

	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return json_null();
	return json_string(vg_time_format(sqlite3_column_int64(s, col), buf,
					  sizeof(buf)));
}

/* The description of the current row: id, name, project, created, revoked. */
static json_t *row_json(sqlite3_stmt *s)
{
	const char *project = (const char *)sqlite3_column_text(s, 2);
	const char *name = (const char *)sqlite3_column_text(s, 1);

	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "id",
			 (const char *)sqlite3_column_text(s, 0), "name",
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
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(ts->db,
				    "SELECT " ROW_COLUMNS " FROM tokens WHERE id = ?1",
				    -1, &s, NULL);

	*out = NULL;
	if (rc != SQLITE_OK)
		return map_sqlite(rc);
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = row_json(s);
		rc = *out ? 0 : -ENOMEM;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : map_sqlite(rc);
	}
	sqlite3_finalize(s);
	return rc;
}

static int name_ok(const char *name)
{
	return !name || !*name ||
	       (strlen(name) <= VG_TOKEN_NAME_MAX && vg_name_valid(name));
}

int vg_token_create(struct vg_token_store *ts, const char *project,
		    const char *name, int64_t now_ms, char *token_out,
		    json_t **info)
{
	unsigned char idb[VG_TOKEN_ID_LEN / 2], sec[VG_TOKEN_SECRET_LEN / 2];
	unsigned char mac[MAC_LEN];
	char id[VG_TOKEN_ID_LEN + 1], secret[VG_TOKEN_SECRET_LEN + 1];
	sqlite3_stmt *s = NULL;
	int rc = -EIO;

	if (info)
		*info = NULL;
	if (!ts || !token_out)
		return -EINVAL;
	token_out[0] = '\0';
	if ((project && (strlen(project) > VG_TOKEN_PROJECT_MAX ||
			 !vg_name_valid(project))) || !name_ok(name))
		return -EINVAL;
	pthread_mutex_lock(&ts->db_lock);
	for (int attempt = 0; attempt < 3; attempt++) {
		if (RAND_bytes(idb, sizeof(idb)) != 1 ||
		    RAND_bytes(sec, sizeof(sec)) != 1) {
			rc = -EIO;
			break;
		}
		hex(idb, sizeof(idb), id);
		hex(sec, sizeof(sec), secret);
		snprintf(token_out, VG_TOKEN_LEN + 1, "vgt_%s_%s", id, secret);
		mac_of(ts, token_out, mac);
		rc = sqlite3_prepare_v2(ts->db,
					"INSERT INTO tokens(id, hmac, project, "
					"name, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)",
					-1, &s, NULL);
		if (rc != SQLITE_OK) {
			rc = map_sqlite(rc);
			break;
		}
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(s, 2, mac, MAC_LEN, SQLITE_STATIC);
		if (project)
			sqlite3_bind_text(s, 3, project, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 3);
		sqlite3_bind_text(s, 4, name ? name : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 5, now_ms);
		rc = sqlite3_step(s);
		sqlite3_finalize(s);
		rc = rc == SQLITE_DONE ? 0 : map_sqlite(rc);
		if (rc != -EEXIST) /* an id collision: draw again */
			break;
	}
	OPENSSL_cleanse(sec, sizeof(sec));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc) {
		OPENSSL_cleanse(token_out, VG_TOKEN_LEN + 1);
		token_out[0] = '\0';
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
	sqlite3_stmt *s = NULL;
	json_t *arr;
	int rc;

	*out = NULL;
	if (!ts)
		return -EINVAL;
	if (!(arr = json_array()))
		return -ENOMEM;
	pthread_mutex_lock(&ts->db_lock);
	rc = sqlite3_prepare_v2(ts->db,
				"SELECT " ROW_COLUMNS " FROM tokens ORDER BY "
				"created_ms, id", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			json_array_append_new(arr, row_json(s));
		sqlite3_finalize(s);
	}
	pthread_mutex_unlock(&ts->db_lock);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return map_sqlite(rc) ? map_sqlite(rc) : -EIO;
	}
	*out = arr;
	return 0;
}

int vg_token_revoke(struct vg_token_store *ts, const char *id, int64_t now_ms,
		    json_t **info)
{
	sqlite3_stmt *s = NULL;
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
		rc = sqlite3_prepare_v2(ts->db,
					"UPDATE tokens SET revoked_ms = ?2 WHERE "
					"id = ?1 AND revoked_ms IS NULL",
					-1, &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, now_ms);
			rc = sqlite3_step(s);
			sqlite3_finalize(s);
		}
		rc = rc == SQLITE_DONE ? 0 : map_sqlite(rc);
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
	"The token is printed once, on stdout; only its HMAC is stored in\n"
	"DIR/tokens.db. Works while the collector runs.\n";

int vg_token_command(const char *data_dir, int argc, char **argv, FILE *out,
		     FILE *err)
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
				"value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(err, "vigie-collector token: unknown option '%s' "
				"(see 'token --help')\n", argv[optind - 1]);
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
			"list, revoke)\n", sub);
		return 2;
	}

	if (mkdir(data_dir, 0755) && errno != EEXIST) {
		fprintf(err, "vigie-collector token: cannot create %s: %s\n",
			data_dir, strerror(errno));
		return 1;
	}
	if (vg_token_store_open(data_dir, &ts, e, sizeof(e))) {
		fprintf(err, "vigie-collector token: %s\n", e);
		return 1;
	}
	if (!strcmp(sub, "create")) {
		rc = vg_token_create(ts, project, name, vg_now_ms(), token, &j);
		if (rc == -EINVAL)
			fprintf(err, "vigie-collector token create: bad %s\n",
				name_ok(name) ? "project name" : "token name");
		else if (rc)
			fprintf(err, "vigie-collector token create: %s\n",
				strerror(-rc));
		else {
			fprintf(out, "%s\n", token);
			fprintf(err, "created %s token %s%s%s; it is shown only "
				"once\n", project ? "project" : "admin",
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
				"was already revoked\n", argv[optind]);
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
