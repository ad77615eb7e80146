/*
 * vigie — API bearer tokens (query/api/token.c; docs/api.md "Tokens").
 *
 * A token is "vgt_<id>_<secret>": id is 16 hex digits (public: it names
 * the token in lists and revocations), secret 64 hex digits (32 random
 * bytes). Only HMAC-SHA256(server key, whole token) is stored, in the
 * state database: <data_dir>/tokens.db (sqlite) by default, or the
 * PostgreSQL server of `[state] url` that every collector shares. The
 * server key is 32 random bytes in a file, <data_dir>/tokens.key or
 * `[state] token_key` (mode 0600), created on first use; with shared
 * state every collector must have the same file (configuration
 * management distributes it; the database records its fingerprint and a
 * store with another key refuses to open). The database alone therefore
 * gives neither the tokens nor a way to test guesses offline or mint a
 * token. The plain token is shown once, when created.
 *
 * Scope: an admin token sees everything; a project token sees only its
 * project's data (the API answers 404 for anything else).
 *
 * Verification keeps every token in memory and reloads them when their
 * generation (a counter bumped with every change) moves: another process
 * — the offline `vigie-collector token` command, another collector — may
 * add or revoke tokens while the collector runs. sqlite: checked at every
 * request; PostgreSQL: at most once a second, so a revocation reaches the
 * other collectors within a second. Hashes are compared with
 * CRYPTO_memcmp (constant time).
 *
 * Thread-safety: every function may be called from any thread; one
 * vg_token_store may be shared (an internal lock guards the database
 * handle and a read-write lock the in-memory table).
 */
#ifndef VIGIE_TOKEN_H
#define VIGIE_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define VG_TOKEN_ID_LEN 16     /* hex digits of the public id */
#define VG_TOKEN_SECRET_LEN 64 /* hex digits of the secret */
/* "vgt_" + id + "_" + secret */
#define VG_TOKEN_LEN (4 + VG_TOKEN_ID_LEN + 1 + VG_TOKEN_SECRET_LEN)
#define VG_TOKEN_NAME_MAX 128 /* bytes of a token's name */
#define VG_TOKEN_PROJECT_MAX 200

struct vg_token_store;

/* What a verified token allows. */
struct vg_token_scope {
	int admin;                              /* 1: sees everything */
	char project[VG_TOKEN_PROJECT_MAX + 1]; /* else: only this project */
	char id[VG_TOKEN_ID_LEN + 1];
};

/* Open the tokens of state_url (a vg_db URL), or, when it is NULL or "",
 * (creating if needed) <data_dir>/tokens.db; and the key file key_path,
 * or <data_dir>/tokens.key when it is NULL or "" (created if missing).
 * The schema is created or migrated on open. The directory must exist.
 * 0 or -errno with a one-line message in err: -EKEYREJECTED when the key
 * is not the one the state's tokens were made with, -EIO for a damaged
 * key file. Close with vg_token_store_close (accepts NULL). */
int vg_token_store_open_state(const char *data_dir, const char *state_url,
			      const char *key_path, struct vg_token_store **out,
			      char *err, size_t errlen);
/* vg_token_store_open_state(data_dir, NULL, NULL, ...). */
int vg_token_store_open(const char *data_dir, struct vg_token_store **out,
			char *err, size_t errlen);
void vg_token_store_close(struct vg_token_store *ts);

/* Create a token: project NULL for an admin token, else a project name
 * (vg_name_valid, and not "*": silences and alarm selectors read that as
 * every project). name: a free label, NULL or "" for none (at most
 * VG_TOKEN_NAME_MAX bytes, no control characters). token_out (>=
 * VG_TOKEN_LEN + 1 bytes) receives the plain token, info (may be NULL) a
 * new JSON object describing it (see vg_token_list). 0, -EINVAL (bad
 * project or name), -EAGAIN (database busy), -EIO. */
int vg_token_create(struct vg_token_store *ts, const char *project,
		    const char *name, int64_t now_ms, char *token_out,
		    json_t **info);

/* 1 when project may scope a new token: 1..VG_TOKEN_PROJECT_MAX bytes
 * of vg_name_valid text, not "*" (every project to silences and
 * selectors), and not beginning or ending with a space (" acme" lists,
 * and reads in a log, as "acme" but is another tenant). Thread-safe. */
int vg_token_project_ok(const char *project);

/* Every token, oldest first, as a new JSON array (caller decrefs):
 * [{"id","name","scope":"admin"|"project","project":null|"p",
 *   "created":"ISO","revoked":null|"ISO"}]. 0 or -errno. */
int vg_token_list(struct vg_token_store *ts, json_t **out);

/* Revoke by id: the token stops working at once in this process and, in
 * a collector running on the same data dir, at its next request. *info
 * (may be NULL) gets the token's description. 0, -ENOENT (no such id),
 * -EALREADY (already revoked), -errno. */
int vg_token_revoke(struct vg_token_store *ts, const char *id,
		    int64_t now_ms, json_t **info);

/* Check a presented token. 0 with *scope filled; -EACCES for a malformed,
 * unknown or revoked token, or one scoped to the project "*" (the same
 * answer for all); -EIO if the
 * tokens cannot be read. */
int vg_token_verify(struct vg_token_store *ts, const char *token,
		    struct vg_token_scope *scope);

/* How many tokens are usable (not revoked), for a start-up hint. */
size_t vg_token_count_active(struct vg_token_store *ts);

/* Split "vgt_<id>_<secret>": 0 with the id copied into id_out (>=
 * VG_TOKEN_ID_LEN + 1 bytes) if the shape is right, else -EINVAL. Pure. */
int vg_token_parse(const char *token, char *id_out);

/* The offline command behind `vigie-collector [--data-dir D] token ...`:
 *   token create (--admin | --project P) [--name N]   prints the token
 *   token list [--json]
 *   token revoke ID
 * argv[0] is "token". Prints results to out and one-line errors to err.
 * Returns a process exit status: 0 ok, 1 failure, 2 usage. */
int vg_token_command(const char *data_dir, int argc, char **argv, FILE *out,
		     FILE *err);
/* The same on the state of state_url with the key file key_path (NULL:
 * the data dir's, as vg_token_store_open_state). */
int vg_token_command_state(const char *data_dir, const char *state_url,
			   const char *key_path, int argc, char **argv,
			   FILE *out, FILE *err);

#endif
