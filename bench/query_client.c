/*
 * query_client.c — the client side of bench/query_bench.sh:
 * time one kind of request against a running collector, sequentially
 * (unloaded latency), and check every answer.
 *
 *   query_client get URL TOKEN N [MIN_SERIES]
 *       GET URL N times; each answer must be 200 JSON (with at least
 *       MIN_SERIES entries in "series" when given).
 *   query_client read URL TOKEN N START_MS END_MS NAME_REGEX [MIN_SERIES]
 *       POST a Prometheus remote read (one query: __name__=~NAME_REGEX over
 *       [START_MS, END_MS]) to URL/api/v1/read N times, encoded with
 *       protobuf-c and snappy as Prometheus does; each answer must decode
 *       and hold at least MIN_SERIES series.
 *
 * Prints one line: "n=N p50_ms=.. p99_ms=.. max_ms=.. series=.. points=..
 * bytes=.." (series/points/bytes of the last answer). Exit 0, or 1 with a
 * message on the first bad answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <snappy-c.h>

#include "prompb/remote.pb-c.h"
#include "vigie/clock.h"

struct body {
	char *p;
	size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct body *b = ud;
	char *nb = realloc(b->p, b->len + sz * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + b->len, p, sz * n);
	b->p = nb;
	b->len += sz * n;
	b->p[b->len] = '\0';
	return sz * n;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int read = argc > 1 && !strcmp(argv[1], "read");
	long n = argc > 4 ? atol(argv[4]) : 0;
	size_t min_series = 0, series = 0, points = 0, bytes = 0;
	char auth[512], url[1024];
	char *req = NULL;
	size_t req_len = 0;
	double *ms;
	CURL *h;
	struct curl_slist *hd = NULL;

	if (n < 1 || (read && argc < 8) || (!read && argc < 5)) {
		fprintf(stderr, "usage: query_client get URL TOKEN N [MIN_SERIES]\n"
				"       query_client read URL TOKEN N START_MS END_MS "
				"NAME_REGEX [MIN_SERIES]\n");
		return 2;
	}
	min_series = read ? (argc > 8 ? strtoul(argv[8], NULL, 10) : 0)
			  : (argc > 5 ? strtoul(argv[5], NULL, 10) : 0);
	ms = calloc((size_t)n, sizeof(*ms));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_easy_init();
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[3]);
	hd = curl_slist_append(hd, auth);
	if (read) {
		Prometheus__ReadRequest rq = PROMETHEUS__READ_REQUEST__INIT;
		Prometheus__Query q = PROMETHEUS__QUERY__INIT, *qp = &q;
		Prometheus__LabelMatcher m = PROMETHEUS__LABEL_MATCHER__INIT, *mp = &m;
		size_t plen;
		uint8_t *packed;

		m.type = PROMETHEUS__LABEL_MATCHER__TYPE__RE;
		m.name = "__name__";
		m.value = argv[7];
		q.start_timestamp_ms = atoll(argv[5]);
		q.end_timestamp_ms = atoll(argv[6]);
		q.n_matchers = 1;
		q.matchers = &mp;
		rq.n_queries = 1;
		rq.queries = &qp;
		plen = prometheus__read_request__get_packed_size(&rq);
		packed = malloc(plen);
		prometheus__read_request__pack(&rq, packed);
		req_len = snappy_max_compressed_length(plen);
		req = malloc(req_len);
		snappy_compress((char *)packed, plen, req, &req_len);
		free(packed);
		snprintf(url, sizeof(url), "%s/api/v1/read", argv[2]);
		hd = curl_slist_append(hd, "Content-Type: application/x-protobuf");
		hd = curl_slist_append(hd, "Content-Encoding: snappy");
		hd = curl_slist_append(hd, "Expect:");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)req_len);
	} else {
		snprintf(url, sizeof(url), "%s", argv[2]);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	for (long i = 0; i < n; i++) {
		struct body b = {0};
		long status = 0;
		int64_t t0 = vg_monotonic_ns();

		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		if (curl_easy_perform(h) != CURLE_OK) {
			fprintf(stderr, "query_client: %s: no answer\n", url);
			return 1;
		}
		ms[i] = (double)(vg_monotonic_ns() - t0) / 1e6;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200) {
			fprintf(stderr, "query_client: %s: %ld %.300s\n", url,
				status, b.p ? b.p : "");
			return 1;
		}
		bytes = b.len;
		if (read) {
			size_t rl = 0;
			char *raw;
			Prometheus__ReadResponse *rs;
			if (snappy_uncompressed_length(b.p, b.len, &rl) != SNAPPY_OK ||
			    !(raw = malloc(rl + 1)) ||
			    snappy_uncompress(b.p, b.len, raw, &rl) != SNAPPY_OK ||
			    !(rs = prometheus__read_response__unpack(NULL, rl,
								     (uint8_t *)raw)) ||
			    rs->n_results != 1) {
				fprintf(stderr, "query_client: undecodable answer\n");
				return 1;
			}
			series = rs->results[0]->n_timeseries;
			points = 0;
			for (size_t k = 0; k < series; k++)
				points += rs->results[0]->timeseries[k]->n_samples;
			prometheus__read_response__free_unpacked(rs, NULL);
			free(raw);
		} else {
			json_t *j = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
			json_t *s = json_object_get(j, "series"), *e;
			size_t k;
			if (!j) {
				fprintf(stderr, "query_client: not JSON\n");
				return 1;
			}
			series = json_array_size(s);
			points = json_array_size(json_object_get(j, "points"));
			json_array_foreach(s, k, e)
				points += json_array_size(json_object_get(e, "points"));
			json_decref(j);
		}
		if (series < min_series) {
			fprintf(stderr, "query_client: %zu series, want >= %zu\n",
				series, min_series);
			return 1;
		}
		free(b.p);
	}
	qsort(ms, (size_t)n, sizeof(*ms), cmp_d);
	printf("n=%ld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f series=%zu points=%zu "
	       "bytes=%zu\n",
	       n, ms[n / 2], ms[(size_t)((double)n * 0.99) < (size_t)n ? (size_t)((double)n * 0.99) : (size_t)n - 1],
	       ms[n - 1], series, points, bytes);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	free(req);
	free(ms);
	return 0;
}
