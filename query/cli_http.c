/*
 * cli_http.c — the CLI's one HTTP verb: GET a JSON document from the API.
 *
 * Design: one libcurl easy handle per request (a CLI run makes a handful),
 * only http and https allowed, bounded answer size and time. Failures are
 * turned into the CLI's exit codes here, once: cannot connect (3), the API
 * said no (1, with the API's own message), a URL we cannot use (2).
 *
 * Invariants: exactly one line goes to c->err per failed request; nothing
 * is printed on success.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "vigie/cli.h"

struct body {
	char *p;
	size_t len;
	int too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct body *b = ud;
	size_t n = size * nmemb;

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

int vg_cli_get(struct vg_cli *c, const char *path, json_t **out)
{
	struct body b = {0};
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *url, *auth = NULL;
	long status = 0;
	CURLcode cc;
	CURL *h;
	json_t *j;
	json_error_t je;
	int rc = VG_EXIT_OK;
	size_t blen = strlen(c->api);

	*out = NULL;
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
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
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
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);

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
		default:
			if (b.too_big)
				fprintf(c->err,
					"%s: answer from the API larger than "
					"%u MiB\n", c->prog,
					VG_CLI_MAX_RESPONSE >> 20);
			else
				fprintf(c->err, "%s: request to %s failed: %s\n",
					c->prog, url, why);
			rc = VG_EXIT_API;
			break;
		}
		goto out;
	}
	j = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
	if (status >= 400) {
		const char *m = api_message(j);
		if (m)
			fprintf(c->err, "%s: %s (HTTP %ld)\n", c->prog, m, status);
		else
			fprintf(c->err, "%s: HTTP %ld from %s\n", c->prog,
				status, url);
		json_decref(j);
		rc = VG_EXIT_API;
		goto out;
	}
	if (!j) {
		fprintf(c->err, "%s: the API at %.*s did not answer JSON "
			"(HTTP %ld)\n", c->prog, (int)blen, c->api, status);
		rc = VG_EXIT_API;
		goto out;
	}
	*out = j;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(auth);
	free(url);
	free(b.p);
	return rc;
}
