/*
 * api_remote_read.c — POST /api/v1/read: Prometheus remote read (protocol
 * 0.1.0), so a Prometheus with `remote_read` pointing at vigie answers
 * PromQL over vigie's whole history (and Grafana's Prometheus data source
 * through it).
 *
 * Design: the body is a snappy-compressed (block format, libsnappy's C
 * API) protobuf ReadRequest, decoded by protobuf-c from the prompb .proto
 * files in query/api/prompb/ (C generated at build time). For each query,
 * every series (resource, metric) the bearer token may see is a
 * candidate; its labels are computed and the matchers tested; a matching
 * series is read from its RRD file (vg_store_fetch, the finest archive
 * that holds the query's start) and answered as samples. The answer is a
 * ReadResponse of response type SAMPLES only (STREAMED_XOR_CHUNKS is not
 * implemented: Prometheus 2.42 asks for SAMPLES), one QueryResult per
 * query, snappy-compressed, Content-Type application/x-protobuf.
 *
 * Labels (docs/api.md "Prometheus remote read"): __name__ as in /metrics
 * (vigie_ + the metric with [^a-zA-Z0-9_] turned into _, counters with
 * _total), resource (id), name, type, project, host, flavor, parent,
 * device (the name of a disk or NIC); an empty value is no label, as
 * Prometheus has it. Labels are protobuf strings (length-prefixed, never
 * parsed as text), and every value vigie sends passed vg_name_valid
 * (UTF-8, no control characters), so no value can become another label.
 * Regex matchers (=~, !~) are POSIX extended regular expressions, fully
 * anchored like Prometheus's RE2 ones; RE2-only syntax ((?i), \d) is a
 * 400.
 *
 * Values: a gauge sample at time T is the RRD point of the interval that
 * starts at T, as /v1/measures gives it. A counter is stored as a rate
 * (DDERIVE), so it is answered as a running total rebuilt from the rates:
 * the sample at the end of each interval is the total counted since the
 * start of the answer's window (missing intervals add nothing). rate() and
 * increase() over it are the stored rates; its absolute value is not the
 * agent's total (use /metrics or /v1/resources for that).
 *
 * Invariants: a project token's queries only scan its project (a matcher
 * on another project gives nothing); at most VG_RR_MAX_BODY compressed and
 * VG_RR_MAX_RAW decompressed request bytes, VG_RR_MAX_QUERIES queries,
 * VG_RR_MAX_MATCHERS matchers each, VG_RR_MAX_SERIES series a query,
 * VG_RR_MAX_ANSWER_SERIES series and VG_RR_MAX_SAMPLES samples an answer (400 naming the limit beyond).
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "prompb/remote.pb-c.h"
#include "query/api/api_handlers.h"
#include "query/api/api_remote_read.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/name.h"

enum { L_NAME,
       L_DEVICE,
       L_FLAVOR,
       L_HOST,
       L_RNAME,
       L_PARENT,
       L_PROJECT,
       L_RESOURCE,
       L_TYPE,
       NLABELS };
/* sorted by name, as Prometheus wants a series' labels */
static const char *const label_names[NLABELS] = {
	"__name__", "device", "flavor", "host", "name", "parent", "project",
	"resource", "type"};

struct matcher {
	int label; /* index in label_names, -1 for a label vigie never sets */
	int type;  /* PROMETHEUS__LABEL_MATCHER__TYPE__* */
	const char *value;
	regex_t re;
	int has_re;
};

struct series {
	char *lab[NLABELS]; /* NULL or "" for none */
	char *metric;
	int rtype, counter;
	int dup; /* another metric of its resource gave its labels first */
};

struct rr_ctx {
	struct matcher *m;
	size_t nm;
	struct series *s;
	size_t n, cap;
	int64_t deadline; /* the request's, vg_monotonic_ms */
	int64_t *re_ns;   /* the request's time in regular expressions */
	char err[256];
};

static int label_index(const char *name)
{
	for (int i = 0; i < NLABELS; i++)
		if (!strcmp(name, label_names[i]))
			return i;
	return -1;
}

static int match_one(const struct matcher *m, const char *v)
{
	int r;

	if (!v)
		v = "";
	switch (m->type) {
	case PROMETHEUS__LABEL_MATCHER__TYPE__EQ:
		return !strcmp(v, m->value);
	case PROMETHEUS__LABEL_MATCHER__TYPE__NEQ:
		return strcmp(v, m->value) != 0;
	default:
		r = regexec(&m->re, v, 0, NULL, 0) == 0;
		return m->type == PROMETHEUS__LABEL_MATCHER__TYPE__RE ? r : !r;
	}
}

/* Match with m's regular expression timed into the request's
 * VG_RR_MAX_REGEX_MS (thread CPU time, not wall: a loaded machine must
 * not refuse what an idle one takes): within the limits below, one
 * pattern still costs up to 50 ms a 200-byte label value (.*a.{100}: glibc builds a DFA
 * state per byte) and a second to compile ((.?){999}(.?){999}), which
 * over 50,000 resources or 32 matchers and 64 queries held a core for
 * the request's 30 s. 1 or 0 (matched or not), -ECANCELED past the
 * budget, -ETIMEDOUT past the deadline. */
static int match_timed(struct rr_ctx *c, const struct matcher *m, const char *v)
{
	int64_t t0;
	int r;

	if (!m->has_re)
		return match_one(m, v);
	if (*c->re_ns > (int64_t)VG_RR_MAX_REGEX_MS * 1000000)
		return -ECANCELED;
	if (vg_monotonic_ms() > c->deadline)
		return -ETIMEDOUT;
	t0 = vg_thread_cpu_ns();
	r = match_one(m, v);
	*c->re_ns += vg_thread_cpu_ns() - t0;
	return r;
}

/* What RE2 (Prometheus's regular expressions) refuses or runs in linear
 * time, and glibc's POSIX engine would take at a cost no request may have:
 *  - back-references (\1..\9: RE2 has none; glibc matches them by
 *    backtracking, minutes per 200-byte label value);
 *  - counted repetitions whose nested counts multiply past
 *    VG_RR_MAX_REPEAT (RE2's limit too; glibc unrolls them into its
 *    automaton: ((a{1,200}){1,200}){1,200} costs a minute to compile);
 *  - more than VG_RR_MAX_LOOPS unbounded loops (*, +, {m,}) over a group
 *    that can match nothing, counting the copies a counted repetition
 *    makes: glibc's compile time doubles with each ((a*)* twenty times, or
 *    ((.*)*){20}, is a second; thirty, twenty minutes);
 *  - more than VG_RR_MAX_ATOMS atoms once every counted repetition is
 *    unrolled, side by side as well as nested: glibc builds an automaton
 *    state per atom and an epsilon closure per state, quadratic in the
 *    states and computed recursively, so (.?){999} ten times costs
 *    seconds to compile and ninety times overflows an 8 MiB thread
 *    stack (RE2's program size limit refuses such a pattern too).
 * One pass, a level per open group. A syntax error is left to regcomp.
 * 0, or -EINVAL with why. */
struct re_level {
	unsigned long prod;  /* largest product of counts inside */
	unsigned long size;  /* atoms inside, repetitions unrolled */
	unsigned long loops; /* nullable loops inside, with copies */
	int branch_null;     /* the current alternative matches "" so far */
	int any_null;        /* an ended alternative matches "" */
};

struct re_atom {
	int set, null;
	unsigned long prod, loops, size;
};

/* The atom a is complete: it joins level l. */
static void re_commit(struct re_level *l, struct re_atom *a)
{
	if (!a->set)
		return;
	l->loops += a->loops;
	l->size += a->size;
	l->branch_null &= a->null;
	if (l->prod < a->prod)
		l->prod = a->prod;
	a->set = 0;
}

static int regex_tame(const char *p, char *why, size_t whylen)
{
	size_t len = strlen(p), depth = 0;
	struct re_level *lv = calloc(len + 2, sizeof(*lv));
	struct re_atom a = {0};
	int rc = 0;

	if (!lv) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	lv[0] = (struct re_level){1, 0, 0, 1, 0};
	while (*p && !rc) {
		unsigned long m = 0, n = 0, copies;
		const char *q;
		int unbounded = 0;

		switch (*p) {
		case '\\':
			if (p[1] >= '1' && p[1] <= '9') {
				snprintf(why, whylen, "back-references (\\%c) are not "
						      "supported (RE2 has none)",
					 p[1]);
				rc = -EINVAL;
				break;
			}
			re_commit(&lv[depth], &a);
			a = (struct re_atom){1, 0, 1, 0, 1};
			p += p[1] ? 2 : 1;
			break;
		case '[': /* a bracket expression: []x], [^]x], [[:alpha:]] */
			q = p + 1;
			if (*q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q && *q != ']') {
				if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
					const char *e = strchr(q + 2, q[1]);
					while (e && e[1] != ']')
						e = strchr(e + 1, q[1]);
					q = e ? e + 2 : q + 1;
				} else {
					q++;
				}
			}
			re_commit(&lv[depth], &a);
			a = (struct re_atom){1, 0, 1, 0, 1};
			p = *q ? q + 1 : q;
			break;
		case '(':
			re_commit(&lv[depth], &a);
			lv[++depth] = (struct re_level){1, 0, 0, 1, 0};
			p++;
			break;
		case ')':
			re_commit(&lv[depth], &a);
			if (depth) {
				struct re_level *l = &lv[depth--];
				a = (struct re_atom){1, l->any_null || l->branch_null,
						     l->prod, l->loops,
						     l->size ? l->size : 1};
			} else {
				a = (struct re_atom){1, 0, 1, 0, 1}; /* a literal ) */
			}
			p++;
			break;
		case '|':
			re_commit(&lv[depth], &a);
			lv[depth].any_null |= lv[depth].branch_null;
			lv[depth].branch_null = 1;
			p++;
			break;
		case '^':
		case '$':
			re_commit(&lv[depth], &a);
			a = (struct re_atom){1, 1, 1, 0, 1};
			p++;
			break;
		case '*':
		case '+':
		case '?':
			if (a.set && *p != '?' && a.null)
				a.loops++;
			if (*p != '+')
				a.null = 1;
			p++;
			break;
		case '{':
			q = p + 1;
			for (; *q >= '0' && *q <= '9'; q++) /* saturates past the limit */
				m = m > VG_RR_MAX_REPEAT ? m : m * 10 + (unsigned long)(*q - '0');
			n = m;
			if (*q == ',') {
				q++;
				n = 0;
				unbounded = !(*q >= '0' && *q <= '9');
				for (; *q >= '0' && *q <= '9'; q++)
					n = n > VG_RR_MAX_REPEAT ? n : n * 10 + (unsigned long)(*q - '0');
				if (n < m)
					n = m;
			}
			if (*q != '}' || q == p + 1 || !a.set) {
				re_commit(&lv[depth], &a);
				a = (struct re_atom){1, 0, 1, 0, 1}; /* not an interval */
				p++;
				break;
			}
			copies = n ? n : 1;
			if (n > VG_RR_MAX_REPEAT || a.prod * copies > VG_RR_MAX_REPEAT) {
				snprintf(why, whylen, "counted repetitions that nest to "
						      "more than %d (as RE2 refuses)",
					 VG_RR_MAX_REPEAT);
				rc = -EINVAL;
				break;
			}
			a.prod *= copies;
			a.size *= copies + (unsigned long)unbounded;
			a.loops = a.loops * (copies + (unsigned long)unbounded) +
				  (unsigned long)(unbounded && a.null);
			if (!m)
				a.null = 1;
			p = q + 1;
			break;
		default:
			re_commit(&lv[depth], &a);
			a = (struct re_atom){1, 0, 1, 0, 1};
			p++;
		}
		if (!rc && (a.set ? a.size : 0) + lv[depth].size > VG_RR_MAX_ATOMS) {
			snprintf(why, whylen, "more than %d atoms with its counted "
					      "repetitions unrolled",
				 VG_RR_MAX_ATOMS);
			rc = -EINVAL;
		}
		if (!rc && a.loops + lv[depth].loops > VG_RR_MAX_LOOPS) {
			snprintf(why, whylen, "more than %d loops (*, +) over groups "
					      "that can match nothing, such as (a*)*",
				 VG_RR_MAX_LOOPS);
			rc = -EINVAL;
		}
	}
	free(lv);
	return rc;
}

static void series_free(struct series *s)
{
	for (int i = 0; i < NLABELS; i++)
		free(s->lab[i]);
	free(s->metric);
}

static int add_candidate(void *vctx, json_t *r)
{
	struct rr_ctx *c = vctx;
	const char *type = json_string_value(json_object_get(r, "type"));
	const char *v[NLABELS] = {0};
	json_t *metrics = json_object_get(r, "metrics"), *m;
	const char *key;
	int rtype = type ? vg_rtype_parse(type) : -1;

	if (vg_monotonic_ms() > c->deadline)
		return -ETIMEDOUT; /* matchers over many resources */
	if (rtype < 0)
		return 0;
	v[L_RESOURCE] = json_string_value(json_object_get(r, "id"));
	v[L_RNAME] = json_string_value(json_object_get(r, "name"));
	v[L_TYPE] = type;
	v[L_PROJECT] = json_string_value(json_object_get(r, "project"));
	v[L_HOST] = json_string_value(json_object_get(r, "host"));
	v[L_FLAVOR] = json_string_value(json_object_get(r, "flavor"));
	v[L_PARENT] = json_string_value(json_object_get(r, "parent"));
	if (rtype == VG_RT_DISK || rtype == VG_RT_NIC ||
	    rtype == VG_RT_HOST_DISK || rtype == VG_RT_HOST_NIC)
		v[L_DEVICE] = v[L_RNAME];
	for (int i = 1; i < NLABELS; i++)
		if (v[i] && (!*v[i] || !vg_name_valid(v[i])))
			v[i] = NULL; /* never sent: not a clean value */
	if (!v[L_RESOURCE])
		return 0;
	/* The resource's labels once, not once per metric: a regular
	 * expression at its limit costs milliseconds a match, and a
	 * resource has tens of metrics (32 such matchers on every metric
	 * ran a request 20 s past its deadline, checked per resource) */
	for (size_t i = 0; i < c->nm; i++) {
		int hit;
		if (c->m[i].label == L_NAME)
			continue;
		hit = match_timed(c, &c->m[i], c->m[i].label < 0 ? NULL : v[c->m[i].label]);
		if (hit <= 0)
			return hit;
	}
	json_object_foreach(metrics, key, m) {
		const char *ks = json_string_value(json_object_get(m, "kind"));
		int counter = ks && !strcmp(ks, "counter");
		char fam[VG_NAME_MAX + 16];
		int ok = 1;
		struct series *s;

		if (vg_monotonic_ms() > c->deadline)
			return -ETIMEDOUT;
		vg_api_prom_name(key, counter, fam, sizeof(fam));
		v[L_NAME] = fam;
		for (size_t i = 0; i < c->nm && ok; i++) {
			if (c->m[i].label != L_NAME)
				continue;
			if ((ok = match_timed(c, &c->m[i], fam)) < 0)
				return ok;
		}
		if (!ok)
			continue;
		if (c->n == VG_RR_MAX_SERIES)
			return -E2BIG;
		if (c->n == c->cap) {
			size_t nc = c->cap ? 2 * c->cap : 256;
			struct series *ns = realloc(c->s, nc * sizeof(*ns));
			if (!ns)
				return -ENOMEM;
			c->s = ns;
			c->cap = nc;
		}
		s = &c->s[c->n];
		memset(s, 0, sizeof(*s));
		s->rtype = rtype;
		s->counter = counter;
		s->metric = strdup(key);
		for (int i = 0; i < NLABELS; i++)
			if (v[i] && !(s->lab[i] = strdup(v[i])))
				s->metric = (free(s->metric), NULL);
		c->n++;
		if (!s->metric)
			return -ENOMEM;
	}
	return 0;
}

static int cmp_labels(const struct series *x, const struct series *y)
{
	for (int i = 0; i < NLABELS; i++) {
		const char *p = x->lab[i] ? x->lab[i] : "";
		const char *q = y->lab[i] ? y->lab[i] : "";
		int k = strcmp(p, q);
		if (k)
			return k;
	}
	return 0;
}

/* By labels; one label set's series (two names of one resource that give
 * one __name__: the agent's cpu.util and a project's cpu_util) with the
 * catalogue's first, then by metric: the first is the one answered. */
static int cmp_series(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int k = cmp_labels(x, y), cx, cy;

	if (k)
		return k;
	cx = vg_catalog_find(x->rtype, x->metric) != NULL;
	cy = vg_catalog_find(y->rtype, y->metric) != NULL;
	if (cx != cy)
		return cx ? -1 : 1;
	return strcmp(x->metric, y->metric);
}

/* Answer of one query: fills qr (its arrays malloc'd; freed by
 * free_result). 0, or -errno with a message in err and *status. */
struct answer_budget {
	size_t samples, series;
	int64_t deadline;
	int64_t re_ns; /* thread CPU in regcomp and regexec, VG_RR_MAX_REGEX_MS */
};

/* One answered series in one allocation (ts first: it is what the
 * QueryResult points at, and what is freed). */
struct rr_ts {
	Prometheus__TimeSeries ts;
	Prometheus__Label lab[NLABELS];
	Prometheus__Label *lp[NLABELS];
	Prometheus__Sample *smp;
	Prometheus__Sample **sp;
};

static void free_result(Prometheus__QueryResult *qr)
{
	for (size_t i = 0; i < qr->n_timeseries; i++) {
		struct rr_ts *b = (struct rr_ts *)qr->timeseries[i];
		for (size_t k = 0; k < b->ts.n_labels; k++)
			free(b->lab[k].value);
		free(b->smp);
		free(b->sp);
		free(b);
	}
	free(qr->timeseries);
	qr->timeseries = NULL;
	qr->n_timeseries = 0;
}

static int answer_query(struct vg_api *api, const char *scope,
			const Prometheus__Query *q, Prometheus__QueryResult *qr,
			struct answer_budget *bud, int *status, char *err,
			size_t errlen)
{
	struct vg_store *store = vg_api_store(api);
	struct rr_ctx c = {0};
	struct vg_resource_filter f = {0};
	struct matcher m[VG_RR_MAX_MATCHERS];
	int64_t start_ms, end_ms;
	int rc = 0, empty = 0;
	int labels_only = q->hints && q->hints->func &&
			  !strcmp(q->hints->func, "series");

	*status = 400;
	if (q->n_matchers > VG_RR_MAX_MATCHERS) {
		snprintf(err, errlen, "more than %d matchers in a query",
			 VG_RR_MAX_MATCHERS);
		return -EINVAL;
	}
	if (q->start_timestamp_ms > q->end_timestamp_ms ||
	    q->end_timestamp_ms < 0) {
		snprintf(err, errlen, "bad time range %lld..%lld ms",
			 (long long)q->start_timestamp_ms,
			 (long long)q->end_timestamp_ms);
		return -EINVAL;
	}
	/* Prometheus asks for "all time" (a start near INT64_MIN / 2) for
	 * series and label lookups: nothing is older than the epoch. */
	start_ms = q->start_timestamp_ms < 0 ? 0 : q->start_timestamp_ms;
	/* and nothing is newer than the year 9999: an end of INT64_MAX
	 * (any int64 is a valid request) would overflow the store's
	 * rounding to seconds and read nothing */
	end_ms = q->end_timestamp_ms > VG_RR_MAX_TIME_MS ? VG_RR_MAX_TIME_MS
							 : q->end_timestamp_ms;
	memset(m, 0, sizeof(m));
	for (size_t i = 0; i < q->n_matchers; i++) {
		const Prometheus__LabelMatcher *lm = q->matchers[i];
		m[i].label = label_index(lm->name ? lm->name : "");
		m[i].type = lm->type;
		m[i].value = lm->value ? lm->value : "";
		c.nm = i + 1;
		if (vg_monotonic_ms() > bud->deadline) {
			rc = -ETIMEDOUT; /* compiling many costly matchers */
			goto timeout;
		}
		if (m[i].type < 0 || m[i].type > PROMETHEUS__LABEL_MATCHER__TYPE__NRE) {
			snprintf(err, errlen, "unknown matcher type %d", m[i].type);
			rc = -EINVAL;
			goto out;
		}
		if (m[i].type >= PROMETHEUS__LABEL_MATCHER__TYPE__RE) {
			size_t len = strlen(m[i].value);
			char *pat, why[96];
			int64_t t0;
			int e;
			if (len > VG_RR_MAX_REGEX) {
				snprintf(err, errlen, "regular expression longer "
						      "than %d bytes",
					 VG_RR_MAX_REGEX);
				rc = -EINVAL;
				goto out;
			}
			pat = malloc(len + 5);
			if (!pat) {
				rc = -ENOMEM;
				goto out;
			}
			if (regex_tame(m[i].value, why, sizeof(why))) {
				free(pat);
				snprintf(err, errlen, "regular expression for label "
						      "'%.*s': %s",
					 (int)vg_utf8_prefix(lm->name, 64), lm->name, why);
				rc = -EINVAL;
				goto out;
			}
			if (bud->re_ns > (int64_t)VG_RR_MAX_REGEX_MS * 1000000) {
				free(pat);
				rc = -ECANCELED;
				goto costly;
			}
			snprintf(pat, len + 5, "^(%s)$", m[i].value);
			t0 = vg_thread_cpu_ns();
			e = regcomp(&m[i].re, pat, REG_EXTENDED | REG_NOSUB);
			bud->re_ns += vg_thread_cpu_ns() - t0;
			free(pat);
			if (e) {
				snprintf(err, errlen, "bad regular expression "
						      "'%.*s' for label '%.*s' (POSIX "
						      "extended syntax)",
					 (int)vg_utf8_prefix(m[i].value, 100), m[i].value,
					 (int)vg_utf8_prefix(lm->name, 64), lm->name);
				rc = -EINVAL;
				goto out;
			}
			m[i].has_re = 1;
		}
		/* equality matchers narrow the registry scan */
		if (m[i].type == PROMETHEUS__LABEL_MATCHER__TYPE__EQ) {
			if (m[i].label == L_PROJECT)
				f.project = m[i].value;
			else if (m[i].label == L_HOST)
				f.host = m[i].value;
			else if (m[i].label == L_TYPE) {
				if (vg_rtype_parse(m[i].value) < 0)
					empty = 1;
				f.type = m[i].value;
			}
		}
	}
	c.m = m;
	c.deadline = bud->deadline;
	c.re_ns = &bud->re_ns;
	if (scope) {
		if (f.project && strcmp(f.project, scope))
			empty = 1;
		f.project = scope;
	}
	if ((f.project && !*f.project) || (f.host && !*f.host))
		empty = 1; /* ="" is "label absent": never true of these */
	if (!empty)
		rc = vg_api_scan(api, &f, VG_API_SCAN_MAX, add_candidate, &c);
	if (rc == -E2BIG) {
		snprintf(err, errlen, "more than %d series match: add matchers",
			 VG_RR_MAX_SERIES);
		goto out;
	}
	if (rc == -ETIMEDOUT)
		goto timeout;
	if (rc == -ECANCELED)
		goto costly;
	if (rc) {
		*status = rc == -EAGAIN || rc == -EBUSY ? 503 : 500;
		snprintf(err, errlen, "cannot read the registry: %s", strerror(-rc));
		goto out;
	}
	if (c.n && !store) {
		*status = 503;
		snprintf(err, errlen, "no store configured");
		rc = -EIO;
		goto out;
	}
	if (c.n) /* qsort(NULL, 0) is undefined */
		qsort(c.s, c.n, sizeof(*c.s), cmp_series);
	/* one series per label set (Prometheus takes a second for the same
	 * series), and only the first: another name must not pass for it
	 * when it has no data in the range. Marked before the loop below,
	 * which hands each answered series' labels to the answer. */
	for (size_t i = 1; i < c.n; i++)
		c.s[i].dup = !cmp_labels(&c.s[i - 1], &c.s[i]);
	qr->timeseries = calloc(c.n + 1, sizeof(*qr->timeseries));
	if (!qr->timeseries) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c.n; i++) {
		struct series *s = &c.s[i];
		struct vg_series ser = {0};
		struct rr_ts *b;
		Prometheus__TimeSeries *ts;
		Prometheus__Label *lab;
		Prometheus__Sample *smp;
		size_t nl = 0, ns = 0;
		double total = 0;
		int frc;

		if (vg_monotonic_ms() > bud->deadline) {
			rc = -ETIMEDOUT;
			goto timeout;
		}
		if (s->dup)
			continue;
		/* a series lookup (/api/v1/series, label values) needs the
		 * labels only: answered without reading the RRD file */
		frc = labels_only ? 0
				  : vg_store_fetch(store, s->rtype, s->lab[L_RESOURCE],
						   s->metric, VG_CF_AVERAGE, start_ms,
						   end_ms, 0, 0, &ser);
		if (frc == -ENOENT || frc == -EINVAL || (!frc && !ser.n && !labels_only)) {
			vg_series_free(&ser);
			continue; /* no file yet, or nothing in the range (a
				   * fault has no points either: not skipped) */
		}
		if (frc) { /* a daemon down or refusing: 503 naming it */
			*status = vg_api_storage_fault(store, s->rtype, s->lab[L_RESOURCE],
						       s->metric, frc, !scope, err, errlen);
			if (!*status) {
				*status = 500;
				snprintf(err, errlen, "cannot read %s of %s: %s", s->metric,
					 s->lab[L_RESOURCE], strerror(-frc));
			}
			rc = frc;
			goto out;
		}
		/* a series costs its labels even without samples (a series
		 * lookup): 64 queries of 50,000 each would be gigabytes */
		if (bud->series == VG_RR_MAX_ANSWER_SERIES) {
			vg_series_free(&ser);
			snprintf(err, errlen, "more than %d series in one answer: "
					      "add matchers or send fewer queries",
				 VG_RR_MAX_ANSWER_SERIES);
			rc = -E2BIG;
			goto out;
		}
		if (bud->samples + ser.n > VG_RR_MAX_SAMPLES) {
			vg_series_free(&ser);
			snprintf(err, errlen, "more than %d samples in one answer: "
					      "add matchers or shorten the range",
				 VG_RR_MAX_SAMPLES);
			rc = -E2BIG;
			goto out;
		}
		b = calloc(1, sizeof(*b));
		if (b) {
			b->smp = calloc(ser.n + 1, sizeof(*b->smp));
			b->sp = calloc(ser.n + 1, sizeof(*b->sp));
		}
		if (!b || !b->smp || !b->sp) {
			if (b) {
				free(b->smp);
				free(b->sp);
			}
			free(b);
			vg_series_free(&ser);
			rc = -ENOMEM;
			goto out;
		}
		ts = &b->ts;
		prometheus__time_series__init(ts);
		ts->labels = b->lp;
		ts->samples = b->sp;
		lab = b->lab;
		smp = b->smp;
		qr->timeseries[qr->n_timeseries++] = ts;
		for (int k = 0; k < NLABELS; k++) {
			if (!s->lab[k] || !*s->lab[k])
				continue;
			prometheus__label__init(&lab[nl]);
			lab[nl].name = (char *)label_names[k];
			lab[nl].value = s->lab[k];
			s->lab[k] = NULL; /* now the answer's */
			ts->labels[nl] = &lab[nl];
			nl++;
		}
		ts->n_labels = nl;
		for (size_t k = 0; k < ser.n; k++) {
			double v = ser.points[k].value;
			int64_t t = ser.points[k].time_ms;
			if (isnan(v))
				continue;
			if (s->counter) {
				total += v * ser.resolution_s;
				v = total;
				t += (int64_t)ser.resolution_s * 1000;
			}
			prometheus__sample__init(&smp[ns]);
			smp[ns].value = v;
			smp[ns].timestamp = t;
			ts->samples[ns] = &smp[ns];
			ns++;
		}
		ts->n_samples = ns;
		bud->samples += ns;
		bud->series++;
		vg_series_free(&ser);
	}
	goto out;
timeout:
	*status = 503;
	snprintf(err, errlen, "remote read took longer than %d ms: add matchers "
			      "or shorten the range",
		 VG_RR_MAX_MS);
	goto out;
costly:
	*status = 400;
	snprintf(err, errlen, "regular expressions cost more than %d ms of this "
			      "request (compiling and matching): simplify them (a "
			      "counted repetition, .{n} after .*) or narrow with = "
			      "matchers",
		 VG_RR_MAX_REGEX_MS);
out:
	for (size_t i = 0; i < c.nm; i++)
		if (m[i].has_re)
			regfree(&m[i].re);
	for (size_t i = 0; i < c.n; i++)
		series_free(&c.s[i]);
	free(c.s);
	if (rc == -ENOMEM) {
		*status = 503;
		snprintf(err, errlen, "out of memory");
	}
	return rc;
}

/* protobuf-c allocates for every field it unpacks (a submessage, an
 * unknown field), so a 4 MiB request of empty queries cost 250 MB before
 * the query count could be checked. This walks the wire format first and
 * counts, without allocating: the fields of the ReadRequest, of its
 * queries and of their matchers and hints (kind 0, 1, 2 for a matcher,
 * 3 for hints), at most VG_RR_MAX_FIELDS in all, VG_RR_MAX_QUERIES
 * queries and VG_RR_MAX_MATCHERS matchers a query. It also refuses a
 * matcher's name or value holding a NUL byte: protobuf-c hands strings
 * over NUL-terminated, so name="vm-a\0x" was the matcher name="vm-a"
 * (and != or a regex likewise cut short), where Prometheus matches the
 * whole value, and no vigie label holds a NUL. 0, or -EINVAL with err
 * set; a malformed message is left to the unpacker's answer (0). */
static int wire_count(const uint8_t *p, size_t len, int kind, size_t *fields,
		      char *err, size_t errlen)
{
	const uint8_t *end = p + len;
	size_t nsub = 0;

	while (p < end) {
		uint64_t tag = 0, v = 0;
		int sh = 0;

		while (p < end && sh < 64 && (*p & 0x80))
			tag |= (uint64_t)(*p++ & 0x7f) << sh, sh += 7;
		if (p == end || sh >= 64)
			return 0;
		tag |= (uint64_t)*p++ << sh;
		if (++*fields > VG_RR_MAX_FIELDS) {
			snprintf(err, errlen, "more than %d protobuf fields in one "
					      "request",
				 VG_RR_MAX_FIELDS);
			return -EINVAL;
		}
		switch (tag & 7) {
		case 0: /* varint */
			while (p < end && (*p & 0x80))
				p++;
			if (p == end)
				return 0;
			p++;
			break;
		case 1: /* 64 bits */
		case 5: /* 32 bits */
			if ((size_t)(end - p) < ((tag & 7) == 1 ? 8u : 4u))
				return 0;
			p += (tag & 7) == 1 ? 8 : 4;
			break;
		case 2: /* length-delimited */
			for (sh = 0; p < end && sh < 64 && (*p & 0x80); sh += 7)
				v |= (uint64_t)(*p++ & 0x7f) << sh;
			if (p == end || sh >= 64)
				return 0;
			v |= (uint64_t)*p++ << sh;
			if (v > (uint64_t)(end - p))
				return 0;
			if (kind == 2 && (tag >> 3 == 2 || tag >> 3 == 3) &&
			    memchr(p, 0, (size_t)v)) {
				snprintf(err, errlen, "a matcher's label %s holds a NUL "
						      "byte (no label does)",
					 tag >> 3 == 2 ? "name" : "value");
				return -EINVAL;
			}
			if ((kind == 0 && tag >> 3 == 1) ||
			    (kind == 1 && (tag >> 3 == 3 || tag >> 3 == 4))) {
				if (kind == 0 && ++nsub > VG_RR_MAX_QUERIES) {
					snprintf(err, errlen, "more than %d queries "
							      "in one request",
						 VG_RR_MAX_QUERIES);
					return -EINVAL;
				}
				if (kind == 1 && tag >> 3 == 3 &&
				    ++nsub > VG_RR_MAX_MATCHERS) {
					snprintf(err, errlen, "more than %d matchers "
							      "in a query",
						 VG_RR_MAX_MATCHERS);
					return -EINVAL;
				}
				if (wire_count(p, (size_t)v,
					       kind == 0 ? 1 : tag >> 3 == 3 ? 2
									     : 3,
					       fields, err, errlen))
					return -EINVAL;
			}
			p += v;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

int vg_api_remote_read(struct vg_api *api, const char *scope,
		       const void *body, size_t len, char **out,
		       size_t *outlen, int *status, char *err, size_t errlen)
{
	Prometheus__ReadRequest *rq = NULL;
	Prometheus__ReadResponse rs = PROMETHEUS__READ_RESPONSE__INIT;
	Prometheus__QueryResult *qrs = NULL, **qrp = NULL;
	struct answer_budget bud = {0};
	size_t raw_len = 0, packed_len, clen;
	char *raw = NULL, *packed = NULL, *comp = NULL;
	int rc = -EINVAL;

	*out = NULL;
	*outlen = 0;
	*status = 400;
	if (!body || !len ||
	    snappy_uncompressed_length(body, len, &raw_len) != SNAPPY_OK) {
		snprintf(err, errlen, "the body is not snappy-compressed (block "
				      "format) protobuf");
		return -EINVAL;
	}
	if (raw_len > VG_RR_MAX_RAW) {
		*status = 413;
		snprintf(err, errlen, "the request decompresses to more than %d "
				      "bytes",
			 VG_RR_MAX_RAW);
		return -E2BIG;
	}
	raw = malloc(raw_len + 1);
	if (!raw)
		goto oom;
	if (snappy_uncompress(body, len, raw, &raw_len) != SNAPPY_OK) {
		snprintf(err, errlen, "the body is not valid snappy data");
		goto done;
	}
	{
		size_t fields = 0;
		if (wire_count((const uint8_t *)raw, raw_len, 0, &fields, err,
			       errlen))
			goto done;
	}
	rq = prometheus__read_request__unpack(NULL, raw_len, (uint8_t *)raw);
	if (!rq) {
		snprintf(err, errlen, "the body is not a protobuf ReadRequest");
		goto done;
	}
	if (rq->n_queries > VG_RR_MAX_QUERIES) {
		snprintf(err, errlen, "more than %d queries in one request",
			 VG_RR_MAX_QUERIES);
		goto done;
	}
	qrs = calloc(rq->n_queries + 1, sizeof(*qrs));
	qrp = calloc(rq->n_queries + 1, sizeof(*qrp));
	if (!qrs || !qrp)
		goto oom;
	bud.deadline = vg_monotonic_ms() + VG_RR_MAX_MS;
	for (size_t i = 0; i < rq->n_queries; i++) {
		prometheus__query_result__init(&qrs[i]);
		qrp[i] = &qrs[i];
		rs.n_results = i + 1;
		if ((rc = answer_query(api, scope, rq->queries[i], &qrs[i], &bud,
				       status, err, errlen)))
			goto done;
	}
	rs.results = qrp;
	packed_len = prometheus__read_response__get_packed_size(&rs);
	packed = malloc(packed_len + 1);
	clen = snappy_max_compressed_length(packed_len);
	comp = malloc(clen + 1);
	if (!packed || !comp)
		goto oom;
	prometheus__read_response__pack(&rs, (uint8_t *)packed);
	if (snappy_compress(packed, packed_len, comp, &clen) != SNAPPY_OK)
		goto oom;
	*out = comp;
	*outlen = clen;
	comp = NULL;
	*status = 200;
	rc = 0;
	goto done;
oom:
	*status = 503;
	snprintf(err, errlen, "out of memory");
	rc = -ENOMEM;
done:
	for (size_t i = 0; i < rs.n_results; i++)
		free_result(&qrs[i]);
	free(qrs);
	free(qrp);
	free(packed);
	free(comp);
	if (rq)
		prometheus__read_request__free_unpacked(rq, NULL);
	free(raw);
	return rc;
}

int vg_api_h_remote_read(struct vg_http_req *req, struct vg_http_resp *resp)
{
	char err[320], *out;
	size_t len;
	int status;

	int rc = vg_api_remote_read(req->ctx, req->scope_project, req->body, req->body_len,
				    &out, &len, &status, err, sizeof(err));

	if (rc) {
		vg_http_reply_error(resp, status, "%s", err);
		/* a storage fault's 503: the single-series reads' Retry-After */
		if (status == 503 && (rc == -EHOSTUNREACH || rc == -EREMOTEIO))
			vg_http_resp_header(resp, "Retry-After", "5");
		return 0;
	}
	vg_http_reply_raw(resp, 200, "application/x-protobuf", out, len);
	vg_http_resp_header(resp, "Content-Encoding", "snappy");
	return 0;
}
