/*
 * api_fixture.h — what the API and CLI tests and the API fuzz targets share
 * (tests/unit/api_test.c, api_query_test.c, cli_test.c, cli_query_test.c,
 * cli_alarms_test.c, tests/fuzz/api_fixture.h): a temporary data directory
 * and its removal, data written through the real registry and store,
 * tokens, the real API server on a loopback port, one HTTP request with
 * its answer collected, one `vigie` command run in-process with its
 * output captured, the line of that output that holds a text, and a file
 * written for a command to read (cli_names_test.c, cli_alarm_names_test.c
 * and alarm_api_fixture.h use them too).
 *
 * Design: header-only, every function static inline, so a test links only
 * what the functions it calls use (an API test never pulls in the CLI, a
 * fuzz target never libcurl's client side). No cmocka here (the fuzz
 * targets include it too): functions return an error and the test asserts.
 *
 * Invariants: every fixture function that creates something has its
 * undo (fx_tmpdir / fx_rm_tree, fx_api_start / fx_api_stop, fx_answer_free,
 * fx_run_free); nothing here sleeps.
 */
#ifndef VIGIE_TEST_API_FIXTURE_H
#define VIGIE_TEST_API_FIXTURE_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>

#include "vigie/api.h"
#include "query/api/api_handlers.h"
#include "vigie/batch.h"
#include "query/cli/cli.h"
#include "vigie/config.h"
#include "vigie/registry.h"
#include "vigie/store.h"
#include "vigie/token.h"

#include "tmpdir.h"

/* ---- data: the real registry and store --------------------------------------- */

struct fx_data {
	struct vg_store *store;       /* stays open for the API */
	struct vg_registry *registry; /* closed by fx_data_done */
};

/* Open the store and the registry in dir, with default configuration. 0,
 * or -1 after printing why on stderr. */
static inline int fx_data_open(const char *dir, struct fx_data *d)
{
	struct vg_config cfg;
	char err[256];

	memset(d, 0, sizeof(*d));
	vg_config_defaults(&cfg);
	if (vg_store_open(dir, &cfg, &d->store, err, sizeof(err)) ||
	    vg_registry_open(dir, &d->registry, err, sizeof(err))) {
		fprintf(stderr, "fixture: store/registry: %s\n", err);
		return -1;
	}
	return 0;
}

/* Write b as the collector would (registry, then store) and free it. 0 or
 * -1. */
static inline int fx_data_write(struct fx_data *d, struct vg_batch *b)
{
	int rc = vg_registry_update(d->registry, b) ||
		 vg_store_write_batch(d->store, b);

	vg_batch_free(b);
	return rc ? -1 : 0;
}

/* Close the registry (the API opens its own); the store stays open. */
static inline void fx_data_done(struct fx_data *d)
{
	vg_registry_close(d->registry);
	d->registry = NULL;
}

/* ---- tokens ------------------------------------------------------------------- */

/* Create a token named name in dir's token store: project NULL for an
 * administrator. tok gets its text. 0 or -1. */
static inline int fx_token(const char *dir, const char *project,
			   const char *name, char tok[VG_TOKEN_LEN + 1])
{
	struct vg_token_store *ts;
	char err[256];
	int rc;

	if (vg_token_store_open(dir, &ts, err, sizeof(err))) {
		fprintf(stderr, "fixture: tokens: %s\n", err);
		return -1;
	}
	rc = vg_token_create(ts, project, name, 0, tok, NULL);
	vg_token_store_close(ts);
	return rc ? -1 : 0;
}

/* ---- the API server ----------------------------------------------------------- */

struct fx_api {
	char dir[256];          /* the data directory (fx_tmpdir) */
	struct vg_store *store; /* closed by fx_api_stop */
	struct vg_api *api;
	uint16_t port;
	char url[64]; /* http://127.0.0.1:<port> */
};

/* Start the real API on 127.0.0.1:0 over f->dir and f->store; o (may be
 * NULL) gives the other options (stats, threads...). 0, or -1 after
 * printing why. */
static inline int fx_api_start(struct fx_api *f, const struct vg_api_options *o)
{
	struct vg_api_options opt = {0};
	char err[256];

	if (o)
		opt = *o;
	opt.listen = "127.0.0.1:0";
	opt.data_dir = f->dir;
	opt.store = f->store;
	if (!opt.threads)
		opt.threads = 2;
	if (vg_api_start(&opt, &f->api, err, sizeof(err))) {
		fprintf(stderr, "fixture: api: %s\n", err);
		return -1;
	}
	f->port = vg_api_port(f->api);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
	return f->port ? 0 : -1;
}

/* Stop the API, close the store, remove the directory. */
static inline void fx_api_stop(struct fx_api *f)
{
	vg_api_stop(f->api);
	vg_store_close(f->store);
	fx_rm_tree(f->dir);
	memset(f, 0, sizeof(*f));
}

/* ---- one HTTP request ---------------------------------------------------------- */

struct fx_answer {
	long status;
	char *body; /* NUL-terminated, or NULL for none */
	size_t len;
	char ctype[128];      /* Content-Type */
	char allow[128];      /* Allow: */
	char www[256];        /* WWW-Authenticate: */
	char retry_after[32]; /* Retry-After: */
	json_t *json;         /* the body when Content-Type is JSON, else NULL */
};

static inline size_t fx_on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct fx_answer *a = ud;
	char *nb = realloc(a->body, a->len + sz * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + a->len, p, sz * n);
	a->body = nb;
	a->len += sz * n;
	a->body[a->len] = '\0';
	return sz * n;
}

/* A header line "Name: value\r\n" into out when it is name. */
static inline void fx_header(const char *p, size_t len, const char *name,
			     char *out, size_t outlen)
{
	size_t nl = strlen(name);

	if (len > nl + 4 && !strncasecmp(p, name, nl) && p[nl] == ':' &&
	    p[nl + 1] == ' ')
		snprintf(out, outlen, "%.*s", (int)(len - nl - 4), p + nl + 2);
}

static inline size_t fx_on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct fx_answer *a = ud;

	fx_header(p, sz * n, "Allow", a->allow, sizeof(a->allow));
	fx_header(p, sz * n, "WWW-Authenticate", a->www, sizeof(a->www));
	fx_header(p, sz * n, "Retry-After", a->retry_after, sizeof(a->retry_after));
	return sz * n;
}

/* The whole-request bound of fx_http, in seconds (30 unless a test sets
 * *fx_http_timeout_s() higher: one whose requests wait on purpose, for a
 * writer it starts later, on a loaded machine). */
static inline long *fx_http_timeout_s(void)
{
	static long t = 30;
	return &t;
}

/* fx_http with its own whole-request bound (timeout_s seconds). */
static inline long fx_http_within(const char *url, const char *method, const char *path,
				  const char *authorization, const char *body,
				  struct fx_answer *a, long timeout_s)
{
	char full[8192], auth[1024];
	CURL *h = curl_easy_init();
	struct curl_slist *hd = NULL;
	char *ct = NULL;
	CURLcode cc;

	memset(a, 0, sizeof(*a));
	if (!h)
		return a->status = -1;
	snprintf(full, sizeof(full), "%s%s", url, path);
	curl_easy_setopt(h, CURLOPT_URL, full);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fx_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fx_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (authorization) {
		snprintf(auth, sizeof(auth), "Authorization: %s", authorization);
		hd = curl_slist_append(hd, auth);
	}
	if (body) {
		hd = curl_slist_append(hd, "Expect:");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(a->ctype, sizeof(a->ctype), "%s", ct ? ct : "");
	curl_easy_cleanup(h);
	curl_slist_free_all(hd);
	if (cc != CURLE_OK)
		return a->status = -1;
	if (!strncmp(a->ctype, "application/json", 16))
		a->json = json_loadb(a->body ? a->body : "", a->len, 0, NULL);
	return a->status;
}

/* method url+path with header "Authorization: <authorization>" (NULL:
 * none) and body (NULL: none). *a gets the answer (free with
 * fx_answer_free). Returns the HTTP status, or -1 when no answer came. */
static inline long fx_http(const char *url, const char *method,
			   const char *path, const char *authorization,
			   const char *body, struct fx_answer *a)
{
	return fx_http_within(url, method, path, authorization, body, a,
			      *fx_http_timeout_s());
}

static inline void fx_answer_free(struct fx_answer *a)
{
	json_decref(a->json);
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/* The message of a JSON error answer ({"error":{"message":...}}) or NULL. */
static inline const char *fx_errmsg(const struct fx_answer *a)
{
	return json_string_value(json_object_get(
		json_object_get(a->json, "error"), "message"));
}

/* ---- one `vigie` command in-process ------------------------------------------- */

struct fx_run {
	int rc;          /* the exit code */
	char *out, *err; /* what it printed (NUL-terminated) */
};

/* `vigie [--api api] [--token token] first ...` (the NULL-terminated rest
 * in ap; api and token may be NULL: not given). */
static inline struct fx_run fx_vcli(const char *api, const char *token,
				    const char *first, va_list ap)
{
	char *argv[64];
	int argc = 0;
	struct fx_run r = {0};
	size_t ol = 0, el = 0;
	FILE *out = open_memstream(&r.out, &ol);
	FILE *err = open_memstream(&r.err, &el);

	argv[argc++] = (char *)"vigie";
	if (api) {
		argv[argc++] = (char *)"--api";
		argv[argc++] = (char *)api;
	}
	if (token) {
		argv[argc++] = (char *)"--token";
		argv[argc++] = (char *)token;
	}
	for (const char *a = first; a && argc < 63; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	argv[argc] = NULL;
	r.rc = vg_cli_run(argc, argv, out, err);
	fclose(out);
	fclose(err);
	return r;
}

static inline void fx_run_free(struct fx_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* The line of out that holds s (NULL if none), copied into line (len
 * bytes, truncated). */
static inline const char *fx_line_of(const char *out, const char *s, char *line, size_t len)
{
	const char *p = strstr(out, s), *b, *e;

	if (!p)
		return NULL;
	for (b = p; b > out && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	snprintf(line, len, "%.*s", (int)(e ? e - b : (long)strlen(b)), b);
	return line;
}

/* Write text into dir/name (a file a command reads: --file). Its path,
 * in a buffer of this function's (the next call reuses it), or NULL. */
static inline char *fx_write_file(const char *dir, const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(f = fopen(path, "w")))
		return NULL;
	fputs(text, f);
	return fclose(f) ? NULL : path;
}

#endif
