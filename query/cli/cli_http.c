/*
 * cli_http.c — the CLI's HTTP: requests to the API (any method, optional
 * JSON body) and the one streamed answer (GET /v1/alarms/stream, SSE).
 *
 * Design: one libcurl easy handle per request (a CLI run makes a handful),
 * only http and https allowed, bounded answer size and time. Failures are
 * turned into the CLI's exit codes here, once: cannot connect (3), the API
 * said no (1, with the API's own message and, for a refused definition,
 * every field's message on the same line), a URL we cannot use (2). A
 * stream is the same request with its 2xx body handed to a callback as it
 * arrives instead of collected, no overall time limit, and a stop flag
 * (Ctrl-C) polled by libcurl's progress callback.
 *
 * Retries: an answer 429 or 503 with a Retry-After (seconds or a date) is
 * asked again after that wait, silently, while the waits of the request
 * together stay within c->retry_wait_s (--retry-wait, default
 * VG_CLI_RETRY_WAIT_S; a Retry-After past what is left is not waited
 * for: the error says when to come back). Only requests that may
 * be repeated are: GET and HEAD (they change nothing), PUT (the whole
 * definition again: the same result), DELETE (a repeat can only find
 * the thing gone: a 404 or 409 said, nothing more removed) and POST
 * /v1/measures (`vigie put`: a point at a stored time is skipped as a
 * duplicate, so a repeat stores nothing twice; its 503 "the store cannot
 * take measures now" comes with Retry-After: 1, e.g. while the store
 * opens a request's many new series a part at a time); other POSTs and
 * PATCH (a token, a silence, a notification, a finalize: a
 * repeat could do it twice) only when the 429 is the per-project cap's
 * (its error's reason, or its message from an older collector), which
 * the API answers before running anything (docs/api.md, "Requests
 * in flight per project"). The one error line of a request that gave up
 * says so, and names [collector] http_max_concurrent_per_project when
 * the cap was what refused it.
 *
 * Invariants: exactly one line goes to c->err per failed request; nothing
 * is printed on success.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "query/cli/cli.h"

struct body {
	char *p;
	size_t len;
	int too_big;
	/* vg_cli_stream: a 2xx answer goes to sink instead of p */
	CURL *h;
	int (*sink)(void *ud, const char *data, size_t len);
	void *sink_ud;
	int sink_stopped;
	volatile sig_atomic_t *stop;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct body *b = ud;
	size_t n = size * nmemb;

	if (b->sink) {
		long status = 0;
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &status);
		if (status < 400) {
			if (b->sink(b->sink_ud, ptr, n)) {
				b->sink_stopped = 1;
				return 0; /* aborts the transfer */
			}
			return n;
		}
		/* an error answer: collected for its message, as usual */
	}
	if (b->len + n > VG_CLI_MAX_RESPONSE) {
		b->too_big = 1;
		return 0; /* aborts the transfer */
	}
	char *p = realloc(b->p, b->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, ptr, n);
	b->p = p;
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

char *vg_cli_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

char *vg_cli_path(const char *path, const char *const *kv)
{
	size_t cap = strlen(path) + 1, len;
	char *out;
	int first = 1;

	for (const char *const *p = kv; p && p[0]; p += 2)
		if (p[1])
			cap += strlen(p[0]) + 3 * strlen(p[1]) + 2;
	out = malloc(cap);
	if (!out)
		return NULL;
	strcpy(out, path);
	len = strlen(out);
	for (const char *const *p = kv; p && p[0]; p += 2) {
		if (!p[1])
			continue;
		char *v = vg_cli_escape(p[1]);
		if (!v) {
			free(out);
			return NULL;
		}
		len += (size_t)snprintf(out + len, cap - len, "%c%s=%s",
					first ? '?' : '&', p[0], v);
		first = 0;
		free(v);
	}
	return out;
}

/* The API's error message from an error body, or NULL. */
static const char *api_message(json_t *j)
{
	return json_string_value(
		json_object_get(json_object_get(j, "error"), "message"));
}

/* Print s safe for a terminal, on the one line (cli_text.c). */
static void put_line_safe(FILE *f, const char *s)
{
	vg_cli_put_safe(f, s);
}

/* How the retries of one request went (see the top of the file). */
struct retries {
	int tries;       /* requests sent */
	long waited_s;   /* seconds slept between them */
	long refused_ra; /* a Retry-After past the bound, not waited for */
	int cap;         /* the last answer was the per-project cap's 429 */
};

/* What the line of a request that gave up (a last answer 429 or 503)
 * adds after "(HTTP n)"; nothing for another answer, retried or not. */
static void print_gave_up(struct vg_cli *c, long status, const struct retries *rt)
{
	if (status != 429 && status != 503)
		return;
	if (rt->tries > 1)
		fprintf(c->err, "; gave up after %d tries over %ld s", rt->tries,
			rt->waited_s);
	else if (rt->refused_ra) /* the first wait alone was too long */
		fprintf(c->err, "; the API asks to retry in %ld s", rt->refused_ra);
	if (rt->cap)
		fputs(rt->tries > 1 ? ": the collector's cap on requests in flight "
				      "([collector] http_max_concurrent_per_project) "
				      "stayed full"
				    : "; the collector's cap on requests in flight is "
				      "[collector] http_max_concurrent_per_project",
		      c->err);
}

/* "vigie: MESSAGE[: field: message; ...] (HTTP n)": the per-field
 * messages of a refused definition ({"error":{"fields":[...]}}) that the
 * message does not already carry, all on the one line. */
static void print_api_error(struct vg_cli *c, const char *m, json_t *j,
			    long status, const struct retries *rt)
{
	json_t *fields = json_object_get(json_object_get(j, "error"), "fields");
	const char *sep = ": ";
	size_t i;
	json_t *f;

	fprintf(c->err, "%s: ", c->prog);
	put_line_safe(c->err, m);
	json_array_foreach(fields, i, f) {
		const char *fn = json_string_value(json_object_get(f, "field"));
		const char *fm = json_string_value(json_object_get(f, "message"));
		if (!fm || strstr(m, fm))
			continue;
		fputs(sep, c->err);
		if (fn && *fn) {
			put_line_safe(c->err, fn);
			fputs(": ", c->err);
		}
		put_line_safe(c->err, fm);
		sep = "; ";
	}
	fprintf(c->err, " (HTTP %ld)", status);
	print_gave_up(c, status, rt);
	if (status == 401 && !(c->token && *c->token))
		/* the API cannot know the CLI reads $VIGIE_TOKEN; still one
		 * line, as every error */
		fputs("; no token given: set VIGIE_TOKEN or pass --token, or write "
		      "'token = T' in ~/.config/vigie/cli.conf (vigie-collector token "
		      "create makes one)",
		      c->err);
	fputc('\n', c->err);
}

/* Whether the answer in b (status 429) is the per-project cap's: its
 * error's "reason" is "project_concurrency" or "admin_concurrency"
 * (docs/api.md). A collector older than that field says so only in its
 * message, "too many requests in flight for this project (...)" or
 * "... for admin tokens (...)": without a reason, the message decides. */
static int is_cap_refusal(const struct body *b)
{
	static const char prefix[] = "too many requests in flight for ";
	json_t *j = b->p ? json_loadb(b->p, b->len, 0, NULL) : NULL;
	const char *r = json_string_value(
		json_object_get(json_object_get(j, "error"), "reason"));
	const char *m = api_message(j);
	int cap;

	if (r)
		cap = !strcmp(r, "project_concurrency") ||
		      !strcmp(r, "admin_concurrency");
	else
		cap = m && !strncmp(m, prefix, sizeof(prefix) - 1);
	json_decref(j);
	return cap;
}

/* Whether method may be sent again to path after a 429 or 503 (the top
 * of the file): cap, the answer is the per-project cap's 429. */
static int may_repeat(const char *method, const char *path, int cap)
{
	static const char *const idempotent[] = {"GET", "HEAD", "PUT", "DELETE"};

	if (cap)
		return 1; /* refused before anything ran */
	if (!method)
		return 1; /* GET */
	if (!strcasecmp(method, "POST") && path &&
	    (!strcmp(path, "/v1/measures") || !strncmp(path, "/v1/measures?", 13)))
		return 1; /* duplicates skipped: stored once */
	for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
		if (!strcasecmp(method, idempotent[i]))
			return 1;
	return 0;
}

/* libcurl's progress callback, here only to notice the stop flag. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	struct body *b = ud;

	return b->stop && *b->stop;
}

struct stream_opts {
	const char *const *headers; /* extra request headers, NULL-ended */
	int (*fn)(void *ud, const char *data, size_t len);
	void *ud;
	volatile sig_atomic_t *stop;
};

/* vg_cli_request, or with so a stream (see vg_cli_stream). */
static int perform(struct vg_cli *c, const char *method, const char *path,
		   const char *body, const struct stream_opts *so, char **out,
		   size_t *len, int absent_ok)
{
	struct body b = {0};
	struct retries rt = {0};
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url, *auth = NULL;
	long status = 0;
	CURLcode cc;
	CURL *h;
	int rc = VG_EXIT_OK;
	size_t blen = strlen(c->api);

	*out = NULL;
	if (len)
		*len = 0;
	while (blen && c->api[blen - 1] == '/')
		blen--;
	url = malloc(blen + strlen(path) + 1);
	h = curl_easy_init();
	if (!url || !h) {
		fprintf(c->err, "%s: out of memory\n", c->prog);
		free(url);
		curl_easy_cleanup(h);
		return VG_EXIT_API;
	}
	memcpy(url, c->api, blen);
	strcpy(url + blen, path);
	hdrs = curl_slist_append(hdrs, so ? "Accept: text/event-stream"
					  : "Accept: application/json");
	for (const char *const *x = so ? so->headers : NULL; x && *x; x++)
		hdrs = curl_slist_append(hdrs, *x);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		hdrs = curl_slist_append(hdrs, "Expect:");
	}
	if (c->token && *c->token) {
		size_t n = strlen(c->token) + 32;
		auth = malloc(n);
		if (auth) {
			snprintf(auth, n, "Authorization: Bearer %s", c->token);
			hdrs = curl_slist_append(hdrs, auth);
		}
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "vigie-cli");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s > 0 ? c->timeout_s : 60L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (so) {
		b.h = h;
		b.sink = so->fn;
		b.sink_ud = so->ud;
		b.stop = so->stop;
		/* no time limit, but a stream silent for 45 s is dead (the
		 * API sends a keepalive every 15 s) */
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 0L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 45L);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &b);
	}
	if (c->cacert && *c->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	if (method && strcmp(method, "GET"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	for (;;) {
		curl_off_t ra = 0;

		rt.tries++;
		cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (cc != CURLE_OK || (status != 429 && status != 503))
			break;
		rt.cap = status == 429 && is_cap_refusal(&b);
		/* seconds (libcurl turns an HTTP date into them); none, or
		 * a date past: 0, not retried */
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0 ||
		    !may_repeat(method, path, rt.cap))
			break;
		if (rt.waited_s + ra > c->retry_wait_s) {
			rt.refused_ra = (long)ra;
			break;
		}
		nanosleep(&(struct timespec){(time_t)ra, 0}, NULL);
		rt.waited_s += (long)ra;
		if (so && so->stop && *so->stop)
			break; /* Ctrl-C while waiting: the last answer stands */
		free(b.p);
		b.p = NULL;
		b.len = 0;
		b.too_big = 0;
	}
	if ((cc == CURLE_WRITE_ERROR && b.sink_stopped) ||
	    (cc == CURLE_ABORTED_BY_CALLBACK && b.stop && *b.stop))
		cc = CURLE_OK; /* the stream's reader (or Ctrl-C) ended it */

	if (cc != CURLE_OK) {
		const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
		switch (cc) {
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_OPERATION_TIMEDOUT:
			fprintf(c->err, "%s: cannot reach the API at %.*s: %s\n",
				c->prog, (int)blen, c->api, why);
			rc = VG_EXIT_CONNECT;
			break;
		case CURLE_URL_MALFORMAT:
		case CURLE_UNSUPPORTED_PROTOCOL:
			fprintf(c->err, "%s: bad API URL '%s': %s\n", c->prog,
				c->api, why);
			rc = VG_EXIT_USAGE;
			break;
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_CRL_BADFILE:
			fprintf(c->err, "%s: TLS with %.*s failed: %s\n", c->prog,
				(int)blen, c->api, why);
			rc = VG_EXIT_CONNECT;
			break;
		default:
			if (b.too_big)
				fprintf(c->err,
					"%s: answer from the API larger than "
					"%u MiB\n",
					c->prog,
					VG_CLI_MAX_RESPONSE >> 20);
			else
				fprintf(c->err, "%s: request to %s failed: %s\n",
					c->prog, url, why);
			rc = VG_EXIT_API;
			break;
		}
		goto out;
	}
	if (status == 404 && absent_ok)
		goto out; /* *out stays NULL, nothing said */
	if (status >= 400) {
		json_error_t je;
		json_t *j = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
		const char *m = api_message(j);
		if (m) {
			print_api_error(c, m, j, status, &rt);
		} else {
			fprintf(c->err, "%s: HTTP %ld from %s", c->prog, status, url);
			print_gave_up(c, status, &rt);
			fputc('\n', c->err);
		}
		json_decref(j);
		rc = VG_EXIT_API;
		goto out;
	}
	if (!b.p && !(b.p = calloc(1, 1))) {
		fprintf(c->err, "%s: out of memory\n", c->prog);
		rc = VG_EXIT_API;
		goto out;
	}
	*out = b.p;
	if (len)
		*len = b.len;
	b.p = NULL;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(auth);
	free(url);
	free(b.p);
	return rc;
}

int vg_cli_request(struct vg_cli *c, const char *method, const char *path,
		   const char *body, char **out, size_t *len)
{
	return perform(c, method, path, body, NULL, out, len, 0);
}

int vg_cli_stream(struct vg_cli *c, const char *path,
		  const char *const *headers,
		  int (*fn)(void *ud, const char *data, size_t len), void *ud,
		  volatile sig_atomic_t *stop)
{
	struct stream_opts so = {headers, fn, ud, stop};
	char *raw = NULL;
	int rc = perform(c, "GET", path, NULL, &so, &raw, NULL, 0);

	free(raw);
	return rc;
}

/* Parse a JSON answer; one line on c->err if it is not JSON. */
static int parse_answer(struct vg_cli *c, char *raw, size_t len, json_t **out)
{
	json_error_t je;
	size_t blen = strlen(c->api);

	while (blen && c->api[blen - 1] == '/')
		blen--;
	*out = json_loadb(raw, len, 0, &je);
	free(raw);
	if (!*out) {
		fprintf(c->err, "%s: the API at %.*s did not answer JSON\n",
			c->prog, (int)blen, c->api);
		return VG_EXIT_API;
	}
	return VG_EXIT_OK;
}

int vg_cli_get(struct vg_cli *c, const char *path, json_t **out)
{
	char *raw;
	size_t len;
	int rc;

	*out = NULL;
	rc = vg_cli_request(c, "GET", path, NULL, &raw, &len);
	return rc ? rc : parse_answer(c, raw, len, out);
}

int vg_cli_get_if(struct vg_cli *c, const char *path, json_t **out)
{
	char *raw;
	size_t len;
	int rc;

	*out = NULL;
	rc = perform(c, "GET", path, NULL, NULL, &raw, &len, 1);
	if (rc || !raw)
		return rc;
	return parse_answer(c, raw, len, out);
}

int vg_cli_send(struct vg_cli *c, const char *method, const char *path,
		json_t *body, json_t **out)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *raw;
	size_t len;
	int rc;

	*out = NULL;
	if (body && !text) {
		fprintf(c->err, "%s: out of memory\n", c->prog);
		return VG_EXIT_API;
	}
	rc = vg_cli_request(c, method, path, text, &raw, &len);
	free(text);
	if (rc)
		return rc;
	if (!len) {
		free(raw);
		*out = json_object();
		return VG_EXIT_OK;
	}
	return parse_answer(c, raw, len, out);
}
