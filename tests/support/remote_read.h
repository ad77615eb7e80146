/*
 * remote_read.h — a Prometheus remote read as Prometheus sends it, for
 * the tests that POST /api/v1/read (tests/unit/remote_read_test.c,
 * rrdcached_refused_flush_test.c): one ReadRequest of queries of label
 * matchers, encoded by protobuf-c, snappy-compressed, POSTed with the
 * headers Prometheus sends, and the ReadResponse decoded when the answer
 * is 200.
 *
 * Header-only, every function static inline; include after <cmocka.h>
 * and api_fixture.h (failures to encode or decode are cmocka assertions;
 * an answer's status is returned for the test to assert).
 */
#ifndef VIGIE_TEST_REMOTE_READ_H
#define VIGIE_TEST_REMOTE_READ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <snappy-c.h>

#include "prompb/remote.pb-c.h"

/* POST raw bytes to URL/api/v1/read with TOKEN; the answer in *a (its
 * body may be binary; a->json parsed for an error status). Returns the
 * status, -1 when the request did not complete. */
static inline long fxr_post(const char *url, const char *token, const void *body, size_t len,
			    struct fx_answer *a)
{
	char u[128], auth[256];
	CURL *h = curl_easy_init();
	struct curl_slist *hd = NULL;

	memset(a, 0, sizeof(*a));
	snprintf(u, sizeof(u), "%s/api/v1/read", url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	hd = curl_slist_append(hd, auth);
	hd = curl_slist_append(hd, "Content-Type: application/x-protobuf");
	hd = curl_slist_append(hd, "Content-Encoding: snappy");
	hd = curl_slist_append(hd, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fx_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fx_on_header); /* Retry-After... */
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (curl_easy_perform(h) != CURLE_OK)
		a->status = -1;
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	if (a->status >= 400)
		a->json = json_loadb(a->body ? a->body : "", a->len, 0, NULL);
	return a->status;
}

/* One query of NM matchers "name<op>value" (op one of = != =~ !~, at most
 * 40) over [start_ms, end_ms], with hints.func FUNC unless NULL; NQ
 * copies of it in the request. *out: the decoded ReadResponse when the
 * status is 200 (free with prometheus__read_response__free_unpacked),
 * else NULL. */
static inline long fxr_read(const char *url, const char *token, int64_t start_ms,
			    int64_t end_ms, const char *func, const char *const *mt, size_t nm,
			    size_t nq, struct fx_answer *a, Prometheus__ReadResponse **out)
{
	Prometheus__ReadRequest rq = PROMETHEUS__READ_REQUEST__INIT;
	Prometheus__Query q = PROMETHEUS__QUERY__INIT, **qs;
	Prometheus__ReadHints hints = PROMETHEUS__READ_HINTS__INIT;
	Prometheus__LabelMatcher m[40], *mp[40];
	char names[40][64], values[40][2048];
	size_t len, clen, raw_len;
	uint8_t *buf;
	char *comp, *raw;
	long st;

	assert_true(nm <= 40);
	for (size_t i = 0; i < nm; i++) {
		const char *op = strpbrk(mt[i], "=!");
		prometheus__label_matcher__init(&m[i]);
		snprintf(names[i], sizeof(names[i]), "%.*s", (int)(op - mt[i]), mt[i]);
		if (op[0] == '=' && op[1] == '~') {
			m[i].type = PROMETHEUS__LABEL_MATCHER__TYPE__RE;
			op += 2;
		} else if (op[0] == '!' && op[1] == '~') {
			m[i].type = PROMETHEUS__LABEL_MATCHER__TYPE__NRE;
			op += 2;
		} else if (op[0] == '!') {
			m[i].type = PROMETHEUS__LABEL_MATCHER__TYPE__NEQ;
			op += 2;
		} else {
			op += 1;
		}
		snprintf(values[i], sizeof(values[i]), "%s", op);
		m[i].name = names[i];
		m[i].value = values[i];
		mp[i] = &m[i];
	}
	q.start_timestamp_ms = start_ms;
	if (func) {
		hints.func = (char *)func;
		q.hints = &hints;
	}
	q.end_timestamp_ms = end_ms;
	q.n_matchers = nm;
	q.matchers = mp;
	qs = calloc(nq, sizeof(*qs));
	for (size_t i = 0; i < nq; i++)
		qs[i] = &q;
	rq.n_queries = nq;
	rq.queries = qs;
	len = prometheus__read_request__get_packed_size(&rq);
	buf = malloc(len + 1);
	prometheus__read_request__pack(&rq, buf);
	clen = snappy_max_compressed_length(len);
	comp = malloc(clen);
	assert_int_equal(snappy_compress((char *)buf, len, comp, &clen), SNAPPY_OK);
	st = fxr_post(url, token, comp, clen, a);
	free(qs);
	free(buf);
	free(comp);
	*out = NULL;
	if (st == 200) {
		assert_int_equal(snappy_uncompressed_length(a->body, a->len, &raw_len), SNAPPY_OK);
		raw = malloc(raw_len + 1);
		assert_int_equal(snappy_uncompress(a->body, a->len, raw, &raw_len), SNAPPY_OK);
		*out = prometheus__read_response__unpack(NULL, raw_len, (uint8_t *)raw);
		free(raw);
		assert_non_null(*out);
	}
	return st;
}

#endif
