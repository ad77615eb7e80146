/*
 * vigie — inside the JSON API: measures a project publishes
 * (POST /v1/measures, query/api/api_publish.c).
 *
 * The request is parsed and checked on the HTTP worker thread (pure
 * functions below, unit-tested); the checks that need the registry (who
 * owns the resource, the series' kind, the project's series count) and
 * the writing itself run as one job on the receiver thread
 * (vg_receiver_submit), so two requests never race on them.
 */
#ifndef VIGIE_API_PUBLISH_H
#define VIGIE_API_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "query/api/http.h"

#define VG_PUB_MAX_BODY (16u << 20) /* bytes of one request (413 beyond) */
#define VG_PUB_MAX_POINTS 200000    /* points of one request (413 beyond) */
#define VG_PUB_UNIT_MAX 32          /* bytes of a unit */
/* |value| at most: the RRD files consolidate value x seconds, which
 * overflows to infinity past about DBL_MAX / 60, and an infinite sum is
 * stored as unknown: 1e307 was answered "stored" and read back null. */
#define VG_PUB_VALUE_MAX 1e300

/* One published point, after parsing (strings borrowed from the JSON). */
struct vg_pub_point {
	const char *resource;
	const char *metric;
	const char *unit; /* NULL when not given */
	int rtype;        /* 0 (not given), VG_RT_INSTANCE or VG_RT_CUSTOM */
	uint8_t kind;     /* enum vg_kind */
	int64_t time_ms;
	double value;
	size_t index; /* its place in "measures" (set by the handler): of
			 two points of one series at one time, the first
			 is kept */
};

/* The limits a request is checked against. */
struct vg_pub_limits {
	int64_t now_ms;
	int64_t max_future_ms; /* 0: no check */
	int64_t max_age_ms;    /* 0: no check */
};

/* Fields a point may have (resource, metric, value, time, kind, unit,
 * type): with the body's two, what bounds the shape of a body that can
 * be accepted (vg_pub_body_shape). */
#define VG_PUB_POINT_FIELDS 7

/* Check the shape of a body before it is parsed: at most
 * VG_PUB_MAX_POINTS + 2 JSON objects and arrays (the body, "measures",
 * one object a point) and at most VG_PUB_POINT_FIELDS * VG_PUB_MAX_POINTS
 * + 1 commas outside strings (the separators of the most fields and
 * points a body can hold). jansson takes about 250 bytes for an empty
 * object: 16 MiB of "{}," made 5.6 million of them, 1.4 GB, before the
 * count of measures could refuse the request. Counts bytes, allocates
 * nothing; a malformed body is left to the parser. 0, or -E2BIG with a
 * message in err. Pure. */
int vg_pub_body_shape(const char *body, size_t len, char *err, size_t errlen);

struct json_t;
/* Check one element of "measures" (a JSON object) into *out. 0, or
 * -EINVAL with a message naming the field in err. Pure. */
int vg_pub_parse_point(struct json_t *o, const struct vg_pub_limits *lim,
		       struct vg_pub_point *out, char *err, size_t errlen);

/* Sort points by (resource, time, metric, index): a request's points
 * grouped per resource in time order, and of two points of one series
 * at one time the first of the request first (qsort alone is not
 * stable). Pure. */
void vg_pub_sort(struct vg_pub_point *pts, size_t n);
/* Drop the points of sorted pts whose (resource, time, metric) an
 * earlier one has: the store would skip them as duplicates (a point at
 * or before its series' last update), so none may reach the registry's
 * last value, /metrics, the alarms or the stream either; the first in
 * the request's order stays. The number of points kept (in pts[0..k)).
 * Pure. */
size_t vg_pub_drop_repeats(struct vg_pub_point *pts, size_t n);

/* Per-project rate limits and series counts (owned by the API). */
struct vg_pub_state;
/* 0 limits take the defaults. NULL on out of memory. */
struct vg_pub_state *vg_pub_state_new(uint32_t points_per_s, uint32_t series_max);
void vg_pub_state_free(struct vg_pub_state *s); /* accepts NULL */

/* Take n points from project's bucket (refilled at points_per_s, holding
 * at most one second's worth). 0, or -EAGAIN with *retry_s the seconds
 * until n points are there, or -E2BIG when n exceeds one second's worth.
 * Thread-safe. */
int vg_pub_take(struct vg_pub_state *s, const char *project, uint32_t n,
		int64_t now_ms, uint32_t *retry_s);

int vg_api_h_publish(struct vg_http_req *req, struct vg_http_resp *resp);

#endif
