/*
 * token_test.c — API bearer tokens (query/api/token.c): shape, creation,
 * verification, revocation (also seen by another handle on the same data
 * dir, as the running collector sees the offline command's changes), the
 * stored form (an HMAC keyed by tokens.key: neither the token nor anything
 * usable without the key is on disk), file modes, and the offline
 * `vigie-collector token` command. Every case runs on each state engine
 * (sqlite's tokens.db, a PostgreSQL server the test starts); with shared
 * state the key stays a file, and a store whose key is not the one the
 * state's tokens were made with refuses to open.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "state_engines.h"
#include "vigie/clock.h"
#include "vigie/token.h"

static char dir[64];
static char url[700];         /* this case's state: "" on sqlite */
static struct st_engine *eng; /* the group's engine */

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/vigie-token-test.XXXXXX");
	return mkdtemp(dir) && !st_fresh(eng, url, sizeof(url)) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static struct vg_token_store *open_store(const char *d)
{
	struct vg_token_store *ts = NULL;
	char err[256];

	st_need(eng);
	if (vg_token_store_open_state(d, url, NULL, &ts, err, sizeof(err)))
		fail_msg("open %s: %s", d, err);
	return ts;
}

/* Whether the file holds the bytes s. */
static int file_has(const char *path, const char *s)
{
	FILE *f = fopen(path, "rb");
	static char buf[1 << 20];
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	return memmem(buf, n, s, strlen(s)) != NULL;
}

static void test_parse(void **state)
{
	char id[VG_TOKEN_ID_LEN + 1];
	char t[VG_TOKEN_LEN + 2];

	(void)state;
	snprintf(t, sizeof(t), "vgt_0123456789abcdef_%064d", 7);
	assert_int_equal(vg_token_parse(t, id), 0);
	assert_string_equal(id, "0123456789abcdef");
	t[3] = '-';
	assert_int_equal(vg_token_parse(t, id), -EINVAL);
	snprintf(t, sizeof(t), "vgt_0123456789ABCDEF_%064d", 7);
	assert_int_equal(vg_token_parse(t, id), -EINVAL);
	snprintf(t, sizeof(t), "vgt_0123456789abcdef_%063d", 7);
	assert_int_equal(vg_token_parse(t, id), -EINVAL);
	assert_int_equal(vg_token_parse("", id), -EINVAL);
	assert_int_equal(vg_token_parse(NULL, id), -EINVAL);
}

/* A change made through another store (the offline command, another
 * collector) is seen: at once on sqlite, within the poll interval (1 s)
 * on a server. */
static void verify_soon(struct vg_token_store *ts, const char *tok, int want)
{
	struct vg_token_scope sc;
	int64_t until = vg_monotonic_ms() + 5000;
	int rc;

	while ((rc = vg_token_verify(ts, tok, &sc)) != want &&
	       eng->kind != VG_DB_SQLITE && vg_monotonic_ms() < until)
		usleep(50 * 1000);
	assert_int_equal(rc, want);
}

/* Whether a text is anywhere in the tokens table. */
static int table_has(const char *text)
{
	struct vg_db *db = st_db(url, dir, "tokens.db");
	struct vg_db_stmt *s;
	int found = 0;

	assert_int_equal(vg_db_prepare(db, "SELECT id, hmac, project, name FROM tokens", &s), 0);
	while (vg_db_step(s) == 1)
		for (int c = 0; c < 4; c++) {
			size_t len = 0;
			const char *v = vg_db_column_blob(s, c, &len);
			if (v && memmem(v, len, text, strlen(text)))
				found = 1;
		}
	vg_db_reset(s);
	vg_db_close(db);
	return found;
}

static void test_create_verify_revoke(void **state)
{
	struct vg_token_store *ts = open_store(dir), *other;
	struct vg_token_scope sc;
	char admin[VG_TOKEN_LEN + 1], proj[VG_TOKEN_LEN + 1], late[VG_TOKEN_LEN + 1];
	char path[128], bad[VG_TOKEN_LEN + 1];
	json_t *info = NULL, *list = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(vg_token_create(ts, NULL, "ops", 1000, admin, &info), 0);
	assert_int_equal(vg_token_parse(admin, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(info, "scope")), "admin");
	assert_true(json_is_null(json_object_get(info, "project")));
	assert_string_equal(json_string_value(json_object_get(info, "name")), "ops");
	json_decref(info);
	assert_int_equal(vg_token_create(ts, "p1", NULL, 2000, proj, NULL), 0);
	assert_string_not_equal(admin, proj);
	assert_int_equal(vg_token_count_active(ts), 2);

	assert_int_equal(vg_token_verify(ts, admin, &sc), 0);
	assert_int_equal(sc.admin, 1);
	assert_int_equal(vg_token_verify(ts, proj, &sc), 0);
	assert_int_equal(sc.admin, 0);
	assert_string_equal(sc.project, "p1");

	/* one changed hex digit of the secret, or of the id */
	memcpy(bad, proj, sizeof(bad));
	bad[VG_TOKEN_LEN - 1] = bad[VG_TOKEN_LEN - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(vg_token_verify(ts, bad, &sc), -EACCES);
	memcpy(bad, proj, sizeof(bad));
	bad[4] = bad[4] == 'a' ? 'b' : 'a';
	assert_int_equal(vg_token_verify(ts, bad, &sc), -EACCES);
	assert_int_equal(vg_token_verify(ts, "Bearer x", &sc), -EACCES);

	/* nothing stored gives the token: not the token, not its secret */
	assert_false(table_has(proj));
	assert_false(table_has(proj + 5 + VG_TOKEN_ID_LEN));
	assert_true(table_has("p1"));
	if (eng->kind == VG_DB_SQLITE) { /* nor the files */
		const char *const files[] = {"tokens.db", "tokens.db-wal"};
		for (size_t i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
			assert_false(file_has(path, proj));
			assert_false(file_has(path, proj + 5 + VG_TOKEN_ID_LEN));
		}
		snprintf(path, sizeof(path), "%s/tokens.db", dir);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	snprintf(path, sizeof(path), "%s/tokens.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);

	/* a second handle (the offline command while the collector runs,
	 * or another collector): same key, and its changes are seen by the
	 * first (at once on sqlite, within a second on a server) */
	other = open_store(dir);
	assert_int_equal(vg_token_verify(other, proj, &sc), 0);
	assert_int_equal(vg_token_create(other, "p2", "late", 3000, late, NULL), 0);
	verify_soon(ts, late, 0);
	assert_int_equal(vg_token_verify(ts, late, &sc), 0);
	assert_string_equal(sc.project, "p2");
	char late_id[VG_TOKEN_ID_LEN + 1];
	memcpy(late_id, sc.id, sizeof(late_id));
	assert_int_equal(vg_token_revoke(other, late_id, 4000, &info), 0);
	assert_false(json_is_null(json_object_get(info, "revoked")));
	json_decref(info);
	verify_soon(ts, late, -EACCES);
	assert_int_equal(vg_token_revoke(ts, late_id, 5000, NULL), -EALREADY);
	assert_int_equal(vg_token_revoke(ts, "0000000000000000", 5000, NULL), -ENOENT);
	assert_int_equal(vg_token_revoke(ts, "../x", 5000, NULL), -ENOENT);
	vg_token_store_close(other);

	assert_int_equal(vg_token_list(ts, &list), 0);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0),
							      "created")),
			    "1970-01-01T00:00:01Z");
	assert_false(json_is_null(json_object_get(json_array_get(list, 2), "revoked")));
	char *dump = json_dumps(list, 0);
	assert_null(strstr(dump, proj + 5 + VG_TOKEN_ID_LEN));
	free(dump);
	json_decref(list);
	assert_int_equal(vg_token_count_active(ts), 2);

	/* bad input */
	assert_int_equal(vg_token_create(ts, "", NULL, 0, bad, NULL), -EINVAL);
	assert_int_equal(vg_token_create(ts, "a\nb", NULL, 0, bad, NULL), -EINVAL);
	assert_int_equal(vg_token_create(ts, "p", "x\ty", 0, bad, NULL), -EINVAL);
	/* " p" lists as "p" but is another tenant */
	assert_int_equal(vg_token_create(ts, " p", NULL, 0, bad, NULL), -EINVAL);
	assert_int_equal(vg_token_create(ts, "p ", NULL, 0, bad, NULL), -EINVAL);
	assert_int_equal(vg_token_create(ts, "a b", NULL, 0, bad, NULL), 0);
	vg_token_store_close(ts);
	vg_token_store_close(NULL);
}

/* A token made on another collector works at once, also where the
 * generation was read less than a second ago (on a server it is read at
 * most once a second): a script that creates a token and uses it at once
 * on another node is not refused. The case reads at 0, waits past the
 * recheck bound (0.1 s) but far less than the poll (1 s), then creates on
 * the other handle and verifies on the first without waiting. */
static void test_made_elsewhere_works_at_once(void **state)
{
	struct vg_token_store *ts = open_store(dir), *other = open_store(dir);
	struct vg_token_scope sc;
	char a[VG_TOKEN_LEN + 1], b[VG_TOKEN_LEN + 1], bad[VG_TOKEN_LEN + 1];

	(void)state;
	assert_int_equal(vg_token_create(ts, NULL, "ops", 1000, a, NULL), 0);
	assert_int_equal(vg_token_verify(ts, a, &sc), 0); /* the generation read */
	usleep(200 * 1000);
	assert_int_equal(vg_token_create(other, "p1", "new", 2000, b, NULL), 0);
	assert_int_equal(vg_token_verify(ts, b, &sc), 0);
	assert_string_equal(sc.project, "p1");
	/* an unknown id is still refused, and so is a known id's wrong secret */
	memcpy(bad, b, sizeof(bad));
	bad[4] = bad[4] == 'a' ? 'b' : 'a';
	assert_int_equal(vg_token_verify(ts, bad, &sc), -EACCES);
	memcpy(bad, b, sizeof(bad));
	bad[VG_TOKEN_LEN - 1] = bad[VG_TOKEN_LEN - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(vg_token_verify(ts, bad, &sc), -EACCES);
	vg_token_store_close(other);
	vg_token_store_close(ts);
}

/* "*" is every project to silences and alarm selectors: a token scoped to
 * it silenced every tenant's notifications and watched every tenant's
 * resources. It cannot be made, and one made before is no token. */
static void test_wildcard_project(void **state)
{
	struct vg_token_store *ts = open_store(dir);
	struct vg_token_scope sc;
	char tok[VG_TOKEN_LEN + 1];
	struct vg_db *db;

	(void)state;
	assert_int_equal(vg_token_create(ts, "*", NULL, 0, tok, NULL), -EINVAL);
	assert_int_equal(vg_token_create(ts, "p*", NULL, 0, tok, NULL), 0);
	assert_int_equal(vg_token_verify(ts, tok, &sc), 0);
	assert_string_equal(sc.project, "p*");
	vg_token_store_close(ts);
	/* as an older collector stored it */
	db = st_db(url, dir, "tokens.db");
	assert_int_equal(vg_db_exec(db, "UPDATE tokens SET project = '*'"), 0);
	vg_db_close(db);
	ts = open_store(dir);
	assert_int_equal(vg_token_verify(ts, tok, &sc), -EACCES);
	vg_token_store_close(ts);
}

/* The stored HMAC is keyed, and the key stays a file: a store with
 * another key file on the same state (a new collector whose tokens.key was
 * not copied, or a tokens.db copied without its key) refuses to open and
 * names its key file; forced past that check (the fingerprint cleared), it
 * accepts none of the tokens. */
static void test_hmac_keyed(void **state)
{
	char d2[64], cmd[256], err[512], path[128];
	struct vg_token_store *ts = open_store(dir), *ts2 = NULL;
	struct vg_token_scope sc;
	char tok[VG_TOKEN_LEN + 1];
	struct vg_db *db;

	(void)state;
	assert_int_equal(vg_token_create(ts, "p9", NULL, 0, tok, NULL), 0);
	vg_token_store_close(ts);
	snprintf(d2, sizeof(d2), "/tmp/vigie-token-test2.XXXXXX");
	assert_non_null(mkdtemp(d2));
	if (eng->kind == VG_DB_SQLITE) {
		snprintf(cmd, sizeof(cmd), "cp '%s'/tokens.db* '%s/'", dir, d2);
		assert_int_equal(system(cmd), 0);
	}
	/* a new key in d2 */
	assert_int_equal(vg_token_store_open_state(d2, url, NULL, &ts2, err, sizeof(err)),
			 -EKEYREJECTED);
	assert_null(ts2);
	snprintf(path, sizeof(path), "%s/tokens.key", d2);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "copy tokens.key"));
	db = st_db(url, d2, "tokens.db");
	assert_int_equal(vg_db_exec(db, "UPDATE token_meta SET key_fingerprint = NULL"), 0);
	vg_db_close(db);
	ts2 = open_store(d2);
	assert_int_equal(vg_token_verify(ts2, tok, &sc), -EACCES);
	vg_token_store_close(ts2);
	/* d2's state has d2's key now: the first key is the odd one out,
	 * also when named explicitly ([state] token_key) */
	snprintf(path, sizeof(path), "%s/tokens.key", dir);
	assert_int_equal(vg_token_store_open_state(d2, url, path, &ts, err, sizeof(err)),
			 -EKEYREJECTED);
	snprintf(path, sizeof(path), "%s/tokens.key", d2);
	assert_int_equal(vg_token_store_open_state(d2, url, path, &ts, err, sizeof(err)), 0);
	vg_token_store_close(ts);
	nftw(d2, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A tokens.db of before the state layer (the tokens table alone, no
 * vg_schema, no token_meta, user_version 0) is adopted in place: its
 * tokens keep working, and a second open runs no migration again. */
static void test_old_tokens_db(void **state)
{
	struct vg_token_store *ts;
	struct vg_token_scope sc;
	char tok[VG_TOKEN_LEN + 1];
	struct vg_db *db;

	(void)state;
	st_need(eng);
	if (eng->kind != VG_DB_SQLITE) {
		printf("# SKIP %s: tokens.db files are sqlite's\n", eng->name);
		skip();
	}
	ts = open_store(dir);
	assert_int_equal(vg_token_create(ts, "p1", "old", 1000, tok, NULL), 0);
	vg_token_store_close(ts);
	db = st_db(url, dir, "tokens.db");
	assert_int_equal(vg_db_exec(db, "DROP TABLE token_meta; DROP TABLE vg_schema; "
					"PRAGMA user_version = 0"),
			 0);
	vg_db_close(db);
	ts = open_store(dir);
	assert_int_equal(vg_token_verify(ts, tok, &sc), 0);
	assert_string_equal(sc.project, "p1");
	vg_token_store_close(ts);
	db = st_db(url, dir, "tokens.db");
	assert_int_equal(st_int(db, "SELECT version FROM vg_schema WHERE component = 'tokens'"), 2);
	assert_int_equal(st_int(db, "PRAGMA user_version"), 2);
	assert_int_equal(st_int(db, "SELECT count(*) FROM tokens"), 1);
	vg_db_close(db);
}

static void test_damaged_key(void **state)
{
	char d2[64], path[128];
	struct vg_token_store *ts = NULL;
	char err[256];
	FILE *f;

	(void)state;
	snprintf(d2, sizeof(d2), "/tmp/vigie-token-test3.XXXXXX");
	assert_non_null(mkdtemp(d2));
	snprintf(path, sizeof(path), "%s/tokens.key", d2);
	f = fopen(path, "w");
	fputs("short", f);
	fclose(f);
	assert_int_equal(vg_token_store_open(d2, &ts, err, sizeof(err)), -EIO);
	assert_null(ts);
	assert_non_null(strstr(err, "damaged"));
	assert_int_equal(vg_token_store_open("/nonexistent/dir", &ts, err, sizeof(err)) < 0, 1);
	/* a [state] token_key in a directory that does not exist: the error
	 * names the key file the operator wrote, not a temporary file */
	snprintf(path, sizeof(path), "%s/missing/tokens.key", d2);
	assert_int_equal(vg_token_store_open_state(d2, NULL, path, &ts, err, sizeof(err)), -ENOENT);
	assert_null(ts);
	assert_non_null(strstr(err, path));
	assert_null(strstr(err, ".tmp."));
	nftw(d2, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Run the offline command, capturing stdout and stderr. */
static int run(const char *d, char *out, size_t outlen, char *err, size_t errlen,
	       ...)
{
	char *argv[16];
	int argc = 0, rc;
	va_list ap;
	FILE *o = tmpfile(), *e = tmpfile();

	va_start(ap, errlen);
	for (char *a; (a = va_arg(ap, char *)) && argc < 15;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	rc = vg_token_command_state(d, url, NULL, argc, argv, o, e);
	rewind(o);
	rewind(e);
	out[fread(out, 1, outlen - 1, o)] = '\0';
	err[fread(err, 1, errlen - 1, e)] = '\0';
	fclose(o);
	fclose(e);
	return rc;
}

static void test_command(void **state)
{
	char out[4096], err[1024], d2[96], tok[VG_TOKEN_LEN + 1], id[VG_TOKEN_ID_LEN + 1];
	struct vg_token_store *ts;
	struct vg_token_scope sc;

	(void)state;
	st_need(eng);
	snprintf(d2, sizeof(d2), "%s/new-data", dir); /* created on demand */
	/* list and revoke only read: on a directory that does not exist
	 * (a typo) they refuse and create nothing */
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "list", NULL), 1);
	assert_non_null(strstr(err, "data directory"));
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "revoke",
			     "ffffffffffffffff", NULL),
			 1);
	assert_int_equal(access(d2, F_OK), -1);
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "create",
			     "--admin", "--name", "boot", NULL),
			 0);
	assert_int_equal(strlen(out), VG_TOKEN_LEN + 1); /* the token alone */
	memcpy(tok, out, VG_TOKEN_LEN);
	tok[VG_TOKEN_LEN] = '\0';
	assert_non_null(strstr(err, "shown only once"));
	ts = open_store(d2);
	assert_int_equal(vg_token_verify(ts, tok, &sc), 0);
	assert_int_equal(sc.admin, 1);
	vg_token_parse(tok, id);

	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "list", NULL), 0);
	assert_non_null(strstr(out, id));
	assert_non_null(strstr(out, "boot"));
	assert_null(strstr(out, tok + 5 + VG_TOKEN_ID_LEN));
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "list",
			     "--json", NULL),
			 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(j, "tokens")), 1);
	json_decref(j);
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "revoke",
			     id, NULL),
			 0);
	verify_soon(ts, tok, -EACCES);
	vg_token_store_close(ts);
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "revoke",
			     id, NULL),
			 1);
	assert_non_null(strstr(err, "already revoked"));
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "revoke",
			     "ffffffffffffffff", NULL),
			 1);
	assert_non_null(strstr(err, "no token"));

	/* usage errors: exit 2, one line, nothing on stdout */
	static const char *const bad[][5] = {
		{"token", NULL},
		{"token", "create", NULL},
		{"token", "create", "--admin", "--project", "p"},
		{"token", "create", "--bogus", NULL},
		{"token", "create", "--project", NULL},
		{"token", "list", "extra", NULL},
		{"token", "revoke", NULL},
		{"token", "frobnicate", NULL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = run(d2, out, sizeof(out), err, sizeof(err), bad[i][0], bad[i][1],
			     bad[i][2], bad[i][3], bad[i][4], NULL);
		if (rc != 2)
			fail_msg("case %zu: exit %d (%s)", i, rc, err);
		if (i) {
			assert_string_equal(out, "");
			assert_non_null(strchr(err, '\n'));
			assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
		}
	}
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "--help",
			     NULL),
			 0);
	assert_non_null(strstr(out, "token create --admin"));
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "create",
			     "--project", "a\nb", NULL),
			 1);
	assert_non_null(strstr(err, "bad project"));
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "create",
			     "--project", " acme", NULL),
			 1);
	assert_non_null(strstr(err, "begins or ends with white space"));
	/* Unicode white space reads the same: U+00A0, U+3000 */
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "create",
			     "--project", "acme\xc2\xa0", NULL),
			 1);
	assert_non_null(strstr(err, "begins or ends with white space"));
	assert_int_equal(run(d2, out, sizeof(out), err, sizeof(err), "token", "create",
			     "--project", "\343\200\200acme", NULL),
			 1);
	assert_non_null(strstr(err, "begins or ends with white space"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_verify_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wildcard_project, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hmac_keyed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_tokens_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_made_elsewhere_works_at_once, setup,
						teardown),
	};

	struct st_engine *engines[] = {&ST_SQLITE, &ST_PG};
	int failed = 0;

	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		eng = engines[i];
		failed += cmocka_run_group_tests_name(eng->name, tests, NULL, NULL);
	}
	st_group_teardown(NULL);
	return failed;
}
