/*
 * vigie — GET /v1/statistics (query/api/api_statistics.c): sample count,
 * sum, average, minimum, maximum and percentiles of one series per period.
 * The parsing and the percentile are pure (unit-tested).
 */
#ifndef VIGIE_API_STATISTICS_H
#define VIGIE_API_STATISTICS_H

#include <stddef.h>
#include <stdint.h>

#include "query/api/http.h"

#define VG_API_STATS_MAX 16            /* statistics per request */
#define VG_API_STATS_MAX_POINTS 100000 /* finer points read per request */
#define VG_API_STATS_DEFAULT_PERIOD 300
#define VG_API_STATS_MAX_PERIOD (366 * 86400)

int vg_api_h_statistics(struct vg_http_req *req, struct vg_http_resp *resp);
extern const char *const vg_api_statistics_params[]; /* for the route table */

enum vg_api_stat_kind {
	VG_API_STAT_SAMPLE_COUNT,
	VG_API_STAT_SUM,
	VG_API_STAT_AVERAGE,
	VG_API_STAT_MINIMUM,
	VG_API_STAT_MAXIMUM,
	VG_API_STAT_PERCENTILE,
};

struct vg_api_stat {
	int kind;      /* enum vg_api_stat_kind */
	double p;      /* percentile, 0 < p <= 100 */
	char name[32]; /* canonical: "SampleCount", "p99", "p99.9" */
};

/* "SampleCount,Average,p99" (case-insensitive names; NULL = the five basic
 * statistics) into out[0..*n). -EINVAL with a message in err for an
 * unknown or repeated statistic, a bad percentile or more than max. */
int vg_api_parse_statistics(const char *s, struct vg_api_stat *out,
			    size_t max, size_t *n, char *err, size_t errlen);

/* Nearest-rank percentile of n sorted values (NaN for n == 0). */
double vg_api_percentile(const double *sorted, size_t n, double p);

/* "period": NULL -> VG_API_STATS_DEFAULT_PERIOD; an integer 60..max. */
int vg_api_parse_period(const char *s, uint32_t *out);

#endif
