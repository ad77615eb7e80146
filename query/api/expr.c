/*
 * expr.c — GET/POST /v1/query: evaluate an expression over many series
 * (the language: query/api/expr.h, docs/api.md "Expressions"; models:
 * CloudWatch metric math and Gnocchi's aggregation operations).
 *
 * Design: every value is either a scalar or a list of series on one grid
 * (a step, the time of the first slot, a number of slots), each series a
 * dense array of doubles with NaN for a missing point, a key that binary
 * operators match on (the resource id for a selected series, the group's
 * value after an aggregation) and labels for the answer. Selectors read
 * the registry (the same scan as /v1/aggregates, with the project forced
 * to the token's) and then each series through vg_store_fetch at the
 * request's granularity, so every selected series shares the request grid;
 * resample() makes a coarser one. A binary operator between two lists
 * needs the same grid; a one-series list is broadcast over the other;
 * otherwise series are paired by key and unpaired ones dropped.
 *
 * Invariants: a request reads at most VG_EXPR_MAX_SERIES series, holds at
 * most VG_EXPR_MAX_CELLS values over its whole evaluation (every
 * intermediate counted) and gives up after VG_EXPR_MAX_MS; each bound is a
 * 400 (the deadline a 503) that says which. A project token's selector
 * only ever scans its project (a selector naming another project, or an id
 * of another project, is an empty list, as for /v1/aggregates). Division
 * by zero and any other non-finite result is a missing point.
 *
 * Why one file (~1,100 lines): one evaluator over one value type. The
 * selectors, the operators and the endpoint share the series-list
 * representation, its grid rules and the request's running bounds (series,
 * cells, deadline), which every step checks; the parser is already its own
 * file (expr_parse.c).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/api_handlers.h"
#include "query/api/expr.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/clock.h"
#include "vigie/name.h"

struct xs {
	char *key;
	json_t *labels; /* owned */
	json_t *attrs;  /* metadata of a selected series (owned), or NULL */
	int members;    /* series an aggregation combined; 0 otherwise */
	double *v;
};

struct xv {
	int scalar;
	double c;
	uint32_t step;
	int64_t base; /* ms of slot 0 */
	size_t np, n, cap;
	struct xs *s;
};

struct ectx {
	struct vg_api *api;
	struct vg_store *store;
	const char *scope;
	int64_t start_ms, end_ms, deadline;
	uint32_t gran; /* 0 until the grid is set (auto) */
	int gran_auto;
	size_t series_read, points_read, cells;
	int status, epos;
	int storage_fault; /* the error is vg_api_storage_fault's 503 */
	char err[1024];
};

static int eerr(struct ectx *c, int status, int pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int eerr(struct ectx *c, int status, int pos, const char *fmt, ...)
{
	va_list ap;

	if (c->status)
		return -EINVAL;
	c->status = status;
	c->epos = pos;
	/* cut between characters: a quoted name (a resource id, a storage
	 * fault's file) cut inside one made the error unbuildable, a 500 */
	char full[2048];
	va_start(ap, fmt);
	vsnprintf(full, sizeof(full), fmt, ap);
	va_end(ap);
	size_t n = vg_utf8_prefix(full, sizeof(c->err) - 1);
	memcpy(c->err, full, n);
	c->err[n] = '\0';
	return -EINVAL;
}

static void xv_free(struct xv *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->s[i].key);
		json_decref(x->s[i].labels);
		json_decref(x->s[i].attrs);
		free(x->s[i].v);
	}
	free(x->s);
	memset(x, 0, sizeof(*x));
}

static int check_time(struct ectx *c, int pos)
{
	if (vg_monotonic_ms() > c->deadline)
		return eerr(c, 503, pos, "evaluation took longer than %d ms: "
					 "select fewer series or a shorter range",
			    VG_EXPR_MAX_MS);
	return 0;
}

/* Append a series of x->np NaN values; its key is copied. */
static struct xs *xv_add(struct ectx *c, struct xv *x, const char *key,
			 int pos)
{
	struct xs *s;

	if (c->cells + x->np > VG_EXPR_MAX_CELLS) {
		eerr(c, 400, pos, "more than %d values to hold: select fewer "
				  "series, a shorter range or a coarser granularity",
		     VG_EXPR_MAX_CELLS);
		return NULL;
	}
	if (x->n == x->cap) {
		size_t nc = x->cap ? 2 * x->cap : 16;
		struct xs *ns = realloc(x->s, nc * sizeof(*ns));
		if (!ns)
			goto oom;
		x->s = ns;
		x->cap = nc;
	}
	s = &x->s[x->n];
	memset(s, 0, sizeof(*s));
	s->key = strdup(key ? key : "");
	s->v = malloc((x->np ? x->np : 1) * sizeof(double));
	if (!s->key || !s->v) {
		free(s->key);
		free(s->v);
		goto oom;
	}
	for (size_t i = 0; i < x->np; i++)
		s->v[i] = NAN;
	c->cells += x->np;
	x->n++;
	return s;
oom:
	eerr(c, 503, pos, "out of memory");
	return NULL;
}

/* ---- selectors ------------------------------------------------------------ */

struct pick {
	char *id;
	int rtype;
	json_t *labels, *attrs;
};

struct sel_ctx {
	const struct vg_expr_node *n;
	struct pick *p;
	size_t np, cap, max;
	unsigned types; /* mask of the types selected, 0 for all */
};

static const char *field(json_t *r, const char *label)
{
	if (!strncmp(label, "metadata.", 9))
		return json_string_value(
			json_object_get(json_object_get(r, "attributes"), label + 9));
	return json_string_value(json_object_get(r, label));
}

static int matches(const struct vg_expr_node *n, json_t *r)
{
	for (size_t i = 0; i < n->nm; i++) {
		const char *v = field(r, n->m[i].label);
		int eq = v && !strcmp(v, n->m[i].value);
		if (eq == n->m[i].neg)
			return 0;
	}
	return 1;
}

static int sel_collect(void *vctx, json_t *r)
{
	static const char *const keys[] = {"id", "type", "name", "project",
					   "host", "flavor", "parent", NULL};
	struct sel_ctx *s = vctx;
	struct pick *p;
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *type = json_string_value(json_object_get(r, "type"));

	if (!id || !type ||
	    !json_object_get(json_object_get(r, "metrics"), s->n->name) ||
	    !matches(s->n, r))
		return 0;
	if (s->types && (vg_rtype_parse(type) < 1 ||
			 !(s->types & (1u << vg_rtype_parse(type)))))
		return 0;
	if (s->np == s->max)
		return -E2BIG;
	if (s->np == s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 64;
		struct pick *np = realloc(s->p, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		s->p = np;
		s->cap = nc;
	}
	p = &s->p[s->np];
	p->id = strdup(id);
	p->rtype = vg_rtype_parse(type);
	p->labels = json_object();
	p->attrs = json_incref(json_object_get(r, "attributes"));
	if (!p->id || !p->labels) {
		free(p->id);
		json_decref(p->labels);
		json_decref(p->attrs);
		return -ENOMEM;
	}
	for (int i = 0; keys[i]; i++) {
		const char *v = json_string_value(json_object_get(r, keys[i]));
		if (v)
			json_object_set_new(p->labels, keys[i], json_string(v));
		if (i == 0)
			json_object_set_new(p->labels, "metric",
					    json_string(s->n->name));
	}
	s->np++;
	return 0;
}

static const char *eq_value(const struct vg_expr_node *n, const char *label)
{
	for (size_t i = 0; i < n->nm; i++)
		if (!n->m[i].neg && !strcmp(n->m[i].label, label))
			return n->m[i].value;
	return NULL;
}

static int has_label(const struct vg_expr_node *n, const char *label)
{
	for (size_t i = 0; i < n->nm; i++)
		if (!strcmp(n->m[i].label, label))
			return 1;
	return 0;
}

/* Set the request grid: explicit, or for auto the finest that fits
 * VG_API_MAX_POINTS and whose archive holds start (from this series). */
static int set_grid(struct ectx *c, const struct pick *p, const char *metric)
{
	struct vg_series s = {0};
	size_t n;

	if (c->gran)
		return 0;
	(void)vg_api_pick_granularity(c->start_ms, c->end_ms, 0,
				      VG_API_MAX_POINTS, &c->gran, &n);
	if (vg_store_fetch(c->store, p->rtype, p->id, metric, VG_CF_AVERAGE,
			   c->start_ms, c->end_ms, 0, 0, &s) == 0 &&
	    s.resolution_s > c->gran)
		c->gran = s.resolution_s;
	vg_series_free(&s);
	return 0;
}

static void grid_of(const struct ectx *c, struct xv *x)
{
	int64_t gm = (int64_t)c->gran * 1000;

	x->step = c->gran;
	x->base = c->start_ms / gm * gm;
	x->np = vg_api_points_in(c->start_ms, c->end_ms, c->gran);
}

/* The files of one selector, read by up to VG_EXPR_FETCH_THREADS threads
 * (vg_store_fetch is thread-safe); each series' points go into its
 * preallocated slot, its status into st[i]. */
struct fetch_pool {
	struct ectx *c;
	const struct vg_expr_node *n;
	const struct pick *p;
	struct xs *xs;
	size_t np;
	const struct xv *out;
	int *st;
	size_t next;   /* atomic: the next series to read */
	size_t points; /* atomic */
	int late;      /* atomic: the deadline passed */
};

static void *fetch_worker(void *arg)
{
	struct fetch_pool *f = arg;
	int64_t gm = (int64_t)f->out->step * 1000;

	for (;;) {
		size_t i = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED);
		struct vg_series ser = {0};
		size_t got = 0;

		if (i >= f->np)
			break;
		if (__atomic_load_n(&f->late, __ATOMIC_RELAXED) ||
		    vg_monotonic_ms() > f->c->deadline) {
			__atomic_store_n(&f->late, 1, __ATOMIC_RELAXED);
			f->st[i] = -ETIMEDOUT;
			continue;
		}
		f->st[i] = vg_store_fetch(f->c->store, f->p[i].rtype, f->p[i].id,
					  f->n->name, VG_CF_AVERAGE,
					  f->c->start_ms, f->c->end_ms,
					  f->out->step, 0, &ser);
		for (size_t k = 0; !f->st[i] && k < ser.n; k++) {
			int64_t slot = (ser.points[k].time_ms - f->out->base) / gm;
			if (slot >= 0 && (size_t)slot < f->out->np) {
				f->xs[i].v[slot] = ser.points[k].value;
				got++;
			}
		}
		__atomic_fetch_add(&f->points, got, __ATOMIC_RELAXED);
		vg_series_free(&ser);
	}
	return NULL;
}

static void fetch_parallel(struct fetch_pool *f)
{
	pthread_t t[VG_EXPR_FETCH_THREADS];
	size_t nt = f->np >= 16 ? VG_EXPR_FETCH_THREADS - 1 : 0, started = 0;

	for (size_t i = 0; i < nt; i++)
		if (pthread_create(&t[started], NULL, fetch_worker, f) == 0)
			started++;
	fetch_worker(f);
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
}

static int eval_selector(struct ectx *c, const struct vg_expr_node *n,
			 struct xv *out)
{
	struct sel_ctx s = {.n = n};
	struct vg_resource_filter f = {0};
	const char *id = eq_value(n, "id"), *proj = eq_value(n, "project");
	int rc = 0, empty = 0;

	s.max = VG_EXPR_MAX_SERIES - c->series_read;
	f.type = eq_value(n, "type");
	f.host = eq_value(n, "host");
	f.name = eq_value(n, "name");
	f.parent = eq_value(n, "parent");
	f.project = proj;
	if (c->scope) {
		if (proj && strcmp(proj, c->scope))
			empty = 1;
		f.project = c->scope;
	}
	/* a catalogue name selects the types the catalogue defines it for
	 * unless the selector has a type matcher or names an id: a
	 * project's custom resources may carry cpu.util too, and must not
	 * join every cloud-wide cpu.util unasked */
	if (!id && !has_label(n, "type")) {
		s.types = vg_catalog_rtypes(n->name);
		for (int t = 1; t <= VG_RT_MAX; t++)
			if (s.types == 1u << t)
				f.type = vg_rtype_name(t);
	}
	if (empty) {
		/* nothing */
	} else if (id) {
		struct vg_registry *reg;
		json_t *r = NULL;
		int rt;
		if ((rc = vg_api_registry(c->api, &reg)))
			return eerr(c, 503, n->pos, "registry unavailable");
		rc = vg_registry_visible(reg, id, c->scope, &rt);
		if (rc == 0)
			rc = vg_registry_get(reg, id, &r);
		if (rc == 0)
			rc = sel_collect(&s, r);
		json_decref(r);
		if (rc == -ENOENT)
			rc = 0;
	} else {
		rc = vg_api_scan(c->api, &f, VG_API_SCAN_MAX, sel_collect, &s);
	}
	if (rc == -E2BIG)
		eerr(c, 400, n->pos, "more than %d series selected in this "
				     "request: narrow the selector",
		     VG_EXPR_MAX_SERIES);
	else if (rc)
		eerr(c, rc == -EAGAIN || rc == -EBUSY ? 503 : 500, n->pos,
		     "cannot read the registry: %s", strerror(-rc));
	if (!rc && s.np && !c->store)
		rc = eerr(c, 503, n->pos, "no store configured");
	if (!rc && s.np)
		set_grid(c, &s.p[0], n->name);
	if (!c->gran) /* no series: any grid will do */
		(void)vg_api_pick_granularity(c->start_ms, c->end_ms, 0,
					      VG_API_MAX_POINTS, &c->gran,
					      &(size_t){0});
	grid_of(c, out);
	c->series_read += s.np;
	/* a slot for every selected series first (on this thread), then the
	 * files are read in parallel, then the slots of series without a file
	 * are dropped, keeping the registry's order */
	{
		size_t first = out->n, kept = out->n;
		int *st = calloc(s.np + 1, sizeof(*st));
		if (!rc && !st)
			rc = eerr(c, 503, n->pos, "out of memory");
		for (size_t i = 0; i < s.np && !rc; i++) {
			struct xs *x = xv_add(c, out, s.p[i].id, n->pos);
			if (!x) {
				rc = -ENOMEM;
				break;
			}
			x->labels = s.p[i].labels;
			x->attrs = s.p[i].attrs;
			s.p[i].labels = s.p[i].attrs = NULL;
		}
		if (!rc && s.np) {
			struct fetch_pool fp = {.c = c, .n = n, .p = s.p, .xs = out->s + first, .np = s.np, .out = out, .st = st};
			fetch_parallel(&fp);
			c->points_read += fp.points;
			if (fp.late)
				rc = check_time(c, n->pos);
			for (size_t i = 0; i < s.np && !rc; i++) {
				char msg[2048];
				int code;

				if (!st[i] || st[i] == -ENOENT || st[i] == -EINVAL)
					continue;
				/* a daemon down or refusing: 503 naming it */
				code = vg_api_storage_fault(c->store, s.p[i].rtype, s.p[i].id,
							    n->name, st[i], !c->scope, msg,
							    sizeof(msg));
				if (code) {
					if (!c->status) /* eerr keeps a first error */
						c->storage_fault = 1;
					rc = eerr(c, code, n->pos, "%s", msg);
				} else
					rc = eerr(c, 500, n->pos, "cannot read %s of %s: %s",
						  n->name, s.p[i].id, strerror(-st[i]));
			}
		}
		for (size_t i = 0; i < out->n - first && !rc; i++) {
			struct xs *x = &out->s[first + i];
			if (st[i]) { /* no file yet / another archive layout */
				free(x->key);
				json_decref(x->labels);
				json_decref(x->attrs);
				free(x->v);
				c->cells -= out->np;
				continue;
			}
			out->s[kept++] = *x;
		}
		if (!rc)
			out->n = kept;
		free(st);
	}
	for (size_t i = 0; i < s.np; i++) {
		free(s.p[i].id);
		json_decref(s.p[i].labels);
		json_decref(s.p[i].attrs);
	}
	free(s.p);
	return rc ? -EINVAL : 0;
}

/* ---- operators --------------------------------------------------------------- */

static double apply(char op, double a, double b)
{
	double r;

	switch (op) {
	case '+': r = a + b; break;
	case '-': r = a - b; break;
	case '*': r = a * b; break;
	default: r = a / b; break;
	}
	return isfinite(r) ? r : NAN;
}

static struct xs *copy_meta(struct ectx *c, struct xv *out,
			    const struct xs *from, int pos)
{
	struct xs *x = xv_add(c, out, from->key, pos);
	if (x) {
		x->labels = json_incref(from->labels);
		x->attrs = json_incref(from->attrs);
		x->members = from->members;
	}
	return x;
}

static int eval(struct ectx *c, const struct vg_expr_node *n, struct xv *out);

static int eval_bin(struct ectx *c, const struct vg_expr_node *n,
		    struct xv *out)
{
	struct xv l = {0}, r = {0};
	int rc;

	if ((rc = eval(c, n->a[0], &l)) || (rc = eval(c, n->a[1], &r)))
		goto done;
	if (l.scalar && r.scalar) {
		out->scalar = 1;
		out->c = apply(n->op, l.c, r.c);
		goto done;
	}
	if (!l.scalar && !r.scalar &&
	    (l.step != r.step || l.base != r.base || l.np != r.np)) {
		rc = eerr(c, 400, n->pos, "'%c' between series at %u s and %u s "
					  "granularity: resample() one side",
			  n->op, l.step,
			  r.step);
		goto done;
	}
	{
		const struct xv *g = l.scalar ? &r : &l;
		out->step = g->step;
		out->base = g->base;
		out->np = g->np;
	}
	if (l.scalar || r.scalar || l.n == 1 || r.n == 1) {
		/* broadcast the scalar or the single series */
		const struct xv *many = l.scalar ? &r : r.scalar       ? &l
						: l.n == 1 && r.n != 1 ? &r
								       : &l;
		for (size_t i = 0; i < many->n; i++) {
			struct xs *x = copy_meta(c, out, &many->s[i], n->pos);
			if (!x) {
				rc = -EINVAL;
				goto done;
			}
			for (size_t k = 0; k < out->np; k++) {
				double a = l.scalar ? l.c
						    : l.s[many == &l ? i : 0].v[k];
				double b = r.scalar ? r.c
						    : r.s[many == &r ? i : 0].v[k];
				x->v[k] = apply(n->op, a, b);
			}
		}
		goto done;
	}
	for (size_t i = 0; i < l.n; i++) {
		size_t j;
		struct xs *x;
		for (j = 0; j < r.n && strcmp(l.s[i].key, r.s[j].key); j++)
			;
		if (j == r.n)
			continue;
		if (!(x = copy_meta(c, out, &l.s[i], n->pos))) {
			rc = -EINVAL;
			goto done;
		}
		for (size_t k = 0; k < out->np; k++)
			x->v[k] = apply(n->op, l.s[i].v[k], r.s[j].v[k]);
	}
done:
	xv_free(&l);
	xv_free(&r);
	return rc;
}

static double fold(int agg, const double *v, size_t n, size_t *known)
{
	double acc = NAN;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		if (!k++) {
			acc = v[i];
			continue;
		}
		if (agg == VG_AGG_MIN)
			acc = v[i] < acc ? v[i] : acc;
		else if (agg == VG_AGG_MAX)
			acc = v[i] > acc ? v[i] : acc;
		else
			acc += v[i];
	}
	*known = k;
	if (!k)
		return NAN;
	if (agg == VG_AGG_MEAN)
		return acc / (double)k;
	if (agg == VG_AGG_COUNT)
		return (double)k;
	return acc;
}

static int eval_resample(struct ectx *c, const struct vg_expr_node *n,
			 const struct xv *in, struct xv *out)
{
	int64_t gm = (int64_t)n->iarg * 1000, last;
	size_t ratio;

	if (in->scalar) {
		*out = *in;
		return 0;
	}
	if (n->iarg < in->step || n->iarg % in->step)
		return eerr(c, 400, n->pos, "resample() to %ld s from %u s: the "
					    "new granularity must be a multiple of the old",
			    n->iarg, in->step);
	last = in->base + (int64_t)(in->np ? in->np - 1 : 0) * in->step * 1000;
	out->step = (uint32_t)n->iarg;
	out->base = in->base / gm * gm;
	out->np = (size_t)((last - out->base) / gm) + 1;
	ratio = (size_t)(n->iarg / in->step);
	for (size_t i = 0; i < in->n; i++) {
		struct xs *x = copy_meta(c, out, &in->s[i], n->pos);
		if (!x)
			return -EINVAL;
		for (size_t k = 0; k < out->np; k++) {
			int64_t t0 = out->base + (int64_t)k * gm;
			int64_t first = (t0 - in->base) / ((int64_t)in->step * 1000);
			size_t lo = first < 0 ? 0 : (size_t)first;
			size_t hi = (size_t)(first + (int64_t)ratio);
			size_t known;
			if (hi > in->np)
				hi = in->np;
			x->v[k] = lo < hi ? fold(n->agg, in->s[i].v + lo, hi - lo,
						 &known)
					  : NAN;
		}
	}
	return 0;
}

/* Trailing window of K slots; a slot whose window has no known value is
 * missing. Sums and counts run; min and max keep a monotonic deque. */
static int eval_rolling(struct ectx *c, const struct vg_expr_node *n,
			const struct xv *in, struct xv *out)
{
	size_t K = (size_t)n->iarg;
	size_t *dq;

	if (in->scalar) {
		*out = *in;
		return 0;
	}
	out->step = in->step;
	out->base = in->base;
	out->np = in->np;
	dq = malloc((in->np ? in->np : 1) * sizeof(*dq));
	if (!dq)
		return eerr(c, 503, n->pos, "out of memory");
	for (size_t i = 0; i < in->n; i++) {
		const double *v = in->s[i].v;
		struct xs *x = copy_meta(c, out, &in->s[i], n->pos);
		double sum = 0;
		size_t cnt = 0, h = 0, t = 0;
		if (!x) {
			free(dq);
			return -EINVAL;
		}
		for (size_t k = 0; k < in->np; k++) {
			if (!isnan(v[k])) {
				sum += v[k];
				cnt++;
				if (n->agg == VG_AGG_MIN || n->agg == VG_AGG_MAX) {
					while (t > h &&
					       (n->agg == VG_AGG_MIN
							? v[dq[t - 1]] >= v[k]
							: v[dq[t - 1]] <= v[k]))
						t--;
					dq[t++] = k;
				}
			}
			if (k >= K && !isnan(v[k - K])) {
				sum -= v[k - K];
				cnt--;
			}
			while (t > h && dq[h] + K <= k)
				h++;
			if (!cnt)
				continue;
			switch (n->agg) {
			case VG_AGG_MEAN: x->v[k] = sum / (double)cnt; break;
			case VG_AGG_SUM: x->v[k] = sum; break;
			default: x->v[k] = v[dq[h]]; break;
			}
		}
	}
	free(dq);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static const char *group_of(const struct xs *s, const char *by)
{
	if (!strncmp(by, "metadata.", 9))
		return json_string_value(json_object_get(s->attrs, by + 9));
	return json_string_value(json_object_get(s->labels, by));
}

static int cmp_str_null(const char *a, const char *b)
{
	if (!a || !b)
		return !!a - !!b;
	return strcmp(a, b);
}

/* Aggregation across the members of a list, per group of `by`. Each
 * series' group is found once; sums, counts and extremes then run series
 * by series over contiguous arrays (percentiles gather each slot's values
 * and sort them). */
static int eval_across(struct ectx *c, const struct vg_expr_node *n,
		       const struct xv *in, struct xv *out)
{
	const char **keys;
	size_t nk = 0, *gid, *members;
	double *vals;
	uint32_t *cnt;
	int rc = 0;

	if (in->scalar) {
		*out = *in;
		return 0;
	}
	out->step = in->step;
	out->base = in->base;
	out->np = in->np;
	keys = calloc(in->n + 1, sizeof(*keys));
	gid = calloc(in->n + 1, sizeof(*gid));
	members = calloc(in->n + 1, sizeof(*members));
	vals = malloc((in->n + 1) * sizeof(*vals));
	cnt = malloc((in->np + 1) * sizeof(*cnt));
	if (!keys || !gid || !members || !vals || !cnt) {
		rc = eerr(c, 503, n->pos, "out of memory");
		goto out;
	}
	/* the distinct group values, in order of first appearance */
	for (size_t i = 0; i < in->n; i++) {
		const char *g = n->by ? group_of(&in->s[i], n->by) : "";
		size_t j;
		for (j = 0; j < nk && cmp_str_null(keys[j], g); j++)
			;
		if (j == nk)
			keys[nk++] = g;
		gid[i] = j;
		members[j]++;
	}
	for (size_t gi = 0; gi < nk && !rc; gi++) {
		struct xs *x = xv_add(c, out, keys[gi] ? keys[gi] : "", n->pos);
		double *acc;
		if (!x) {
			rc = -EINVAL;
			break;
		}
		acc = x->v;
		x->labels = json_object();
		if (n->by)
			json_object_set_new(x->labels, n->by,
					    keys[gi] ? json_string(keys[gi])
						     : json_null());
		x->members = (int)members[gi];
		if (n->fn == VG_FN_PCT) {
			for (size_t k = 0; k < out->np; k++) {
				size_t m = 0;
				for (size_t i = 0; i < in->n; i++)
					if (gid[i] == gi && !isnan(in->s[i].v[k]))
						vals[m++] = in->s[i].v[k];
				qsort(vals, m, sizeof(*vals), cmp_double);
				acc[k] = m ? vg_api_percentile(vals, m, n->pct)
					   : NAN;
			}
		} else {
			memset(cnt, 0, out->np * sizeof(*cnt));
			for (size_t i = 0; i < in->n; i++) {
				const double *v = in->s[i].v;
				if (gid[i] != gi)
					continue;
				for (size_t k = 0; k < out->np; k++) {
					if (isnan(v[k]))
						continue;
					if (!cnt[k]++)
						acc[k] = v[k];
					else if (n->fn == VG_FN_MIN)
						acc[k] = v[k] < acc[k] ? v[k] : acc[k];
					else if (n->fn == VG_FN_MAX)
						acc[k] = v[k] > acc[k] ? v[k] : acc[k];
					else
						acc[k] += v[k];
				}
			}
			for (size_t k = 0; k < out->np; k++) {
				if (!cnt[k])
					continue; /* stays NaN */
				if (n->fn == VG_FN_MEAN)
					acc[k] /= cnt[k];
				else if (n->fn == VG_FN_COUNT)
					acc[k] = cnt[k];
			}
		}
		rc = check_time(c, n->pos);
	}
out:
	free(keys);
	free(gid);
	free(members);
	free(vals);
	free(cnt);
	return rc;
}

struct rank {
	size_t i;
	double score;
};

static int cmp_rank_desc(const void *a, const void *b)
{
	const struct rank *x = a, *y = b;
	if (isnan(x->score) || isnan(y->score))
		return isnan(x->score) - isnan(y->score);
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	return (x->i > y->i) - (x->i < y->i);
}

static int cmp_rank_asc(const void *a, const void *b)
{
	const struct rank *x = a, *y = b;
	if (isnan(x->score) || isnan(y->score))
		return isnan(x->score) - isnan(y->score);
	if (x->score != y->score)
		return x->score > y->score ? 1 : -1;
	return (x->i > y->i) - (x->i < y->i);
}

static int eval_rank(struct ectx *c, const struct vg_expr_node *n,
		     const struct xv *in, struct xv *out)
{
	struct rank *r;
	size_t keep;

	if (in->scalar) {
		*out = *in;
		return 0;
	}
	out->step = in->step;
	out->base = in->base;
	out->np = in->np;
	r = malloc((in->n + 1) * sizeof(*r));
	if (!r)
		return eerr(c, 503, n->pos, "out of memory");
	for (size_t i = 0; i < in->n; i++) {
		size_t known;
		r[i].i = i;
		r[i].score = fold(n->agg, in->s[i].v, in->np, &known);
	}
	qsort(r, in->n, sizeof(*r),
	      n->fn == VG_FN_TOP ? cmp_rank_desc : cmp_rank_asc);
	keep = in->n < (size_t)n->iarg ? in->n : (size_t)n->iarg;
	for (size_t j = 0; j < keep; j++) {
		struct xs *x;
		if (isnan(r[j].score))
			break; /* a series without any point is not ranked */
		if (!(x = copy_meta(c, out, &in->s[r[j].i], n->pos))) {
			free(r);
			return -EINVAL;
		}
		memcpy(x->v, in->s[r[j].i].v, in->np * sizeof(double));
	}
	free(r);
	return 0;
}

static int eval_map(struct ectx *c, const struct vg_expr_node *n,
		    const struct xv *in, struct xv *out)
{
	if (in->scalar) {
		*out = *in;
		if (n->fn == VG_FN_ABS)
			out->c = fabs(out->c);
		return 0;
	}
	out->step = in->step;
	out->base = in->base;
	out->np = in->np;
	for (size_t i = 0; i < in->n; i++) {
		struct xs *x = copy_meta(c, out, &in->s[i], n->pos);
		double prev = NAN;
		if (!x)
			return -EINVAL;
		for (size_t k = 0; k < in->np; k++) {
			double v = in->s[i].v[k];
			if (n->fn == VG_FN_ABS)
				x->v[k] = fabs(v);
			else if (!isnan(v))
				x->v[k] = prev = v;
			else
				x->v[k] = n->fill_prev ? prev : n->a[1]->num;
		}
	}
	return 0;
}

static int eval(struct ectx *c, const struct vg_expr_node *n, struct xv *out)
{
	struct xv in = {0};
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_time(c, n->pos)))
		return rc;
	switch (n->kind) {
	case VG_EXPR_NUM:
		out->scalar = 1;
		out->c = n->num;
		return 0;
	case VG_EXPR_SEL:
		rc = eval_selector(c, n, out);
		break;
	case VG_EXPR_NEG: {
		if ((rc = eval(c, n->a[0], &in)))
			break;
		if (in.scalar) {
			out->scalar = 1;
			out->c = -in.c;
			break;
		}
		*out = in; /* negate in place, the list is ours */
		memset(&in, 0, sizeof(in));
		for (size_t i = 0; i < out->n; i++)
			for (size_t k = 0; k < out->np; k++)
				out->s[i].v[k] = -out->s[i].v[k];
		break;
	}
	case VG_EXPR_BIN:
		rc = eval_bin(c, n, out);
		break;
	case VG_EXPR_CALL:
		if ((rc = eval(c, n->a[0], &in)))
			break;
		switch (n->fn) {
		case VG_FN_RESAMPLE: rc = eval_resample(c, n, &in, out); break;
		case VG_FN_ROLLING: rc = eval_rolling(c, n, &in, out); break;
		case VG_FN_FILL:
		case VG_FN_ABS: rc = eval_map(c, n, &in, out); break;
		case VG_FN_TOP:
		case VG_FN_BOTTOM: rc = eval_rank(c, n, &in, out); break;
		default: rc = eval_across(c, n, &in, out); break;
		}
		if (in.scalar) /* handed over as is */
			memset(&in, 0, sizeof(in));
		break;
	default:
		rc = eerr(c, 400, n->pos, "unexpected argument");
	}
	xv_free(&in);
	if (rc)
		xv_free(out);
	return rc;
}

/* ---- the endpoint -------------------------------------------------------------- */

static int reply_expr_error(struct vg_http_resp *resp, int status,
			    const char *msg, int pos)
{
	json_t *e = json_pack("{s:i,s:s}", "code", status, "message", msg);
	if (pos >= 0)
		json_object_set_new(e, "position", json_integer(pos));
	return vg_http_reply_json(resp, status, json_pack("{s:o}", "error", e));
}

/* POST: the parameters from a JSON object body (strings; granularity may
 * be a number). 0 or a reply was set. */
static int body_params(struct vg_http_req *req, struct vg_http_resp *resp,
		       json_t **doc, const char **v)
{
	static const char *const keys[] = {"expr", "start", "end",
					   "granularity"};
	json_error_t je;
	const char *k;
	json_t *val;

	*doc = json_loadb(req->body ? req->body : "", req->body_len,
			  JSON_REJECT_DUPLICATES, &je);
	if (!*doc) { /* say why: a duplicate key, a NUL, where it is */
		vg_http_reply_error(resp, 400, "bad JSON at byte %d: %.120s",
				    je.position, je.text);
		return -EINVAL;
	}
	if (!json_is_object(*doc)) {
		vg_http_reply_error(resp, 400, "the body must be a JSON object "
					       "{\"expr\":..., \"start\":..., \"end\":..., "
					       "\"granularity\":...}");
		return -EINVAL;
	}
	json_object_foreach(*doc, k, val) {
		int i;
		for (i = 0; i < 4 && strcmp(k, keys[i]); i++)
			;
		if (i == 4) {
			vg_http_reply_error(resp, 400, "unknown field '%.64s' "
						       "(accepted: expr, start, end, "
						       "granularity)",
					    k);
			return -EINVAL;
		}
		if (json_is_integer(val) && i == 3) {
			static __thread char g[24];
			snprintf(g, sizeof(g), "%lld",
				 (long long)json_integer_value(val));
			v[i] = g;
		} else if (json_is_string(val)) {
			v[i] = json_string_value(val);
		} else {
			vg_http_reply_error(resp, 400, "field '%s' must be a "
						       "string%s",
					    k,
					    i == 3 ? " or a whole number of "
						     "seconds (60, 300, 3600)"
						   : "");
			return -EINVAL;
		}
	}
	return 0;
}

static void put_series(struct vg_buf *b, const struct xv *x)
{
	int64_t gm = (int64_t)x->step * 1000;

	for (size_t i = 0; i < x->n; i++) {
		const struct xs *s = &x->s[i];
		char *labels = s->labels ? json_dumps(s->labels, JSON_COMPACT |
									 JSON_SORT_KEYS)
					 : NULL;
		int first = 1;
		vg_buf_append(b, i ? ",{\"key\":" : "{\"key\":", i ? 8 : 7);
		vg_buf_json_string(b, s->key);
		vg_buf_printf(b, ",\"labels\":%s", labels ? labels : "{}");
		free(labels);
		if (s->members)
			vg_buf_printf(b, ",\"members\":%d", s->members);
		vg_buf_append(b, ",\"points\":[", 11);
		for (size_t k = 0; k < x->np; k++) {
			char t[32];
			if (!isfinite(s->v[k]))
				continue;
			vg_iso_time(x->base + (int64_t)k * gm, t);
			vg_buf_printf(b, "%s[\"%s\",", first ? "" : ",", t);
			vg_buf_json_number(b, s->v[k]);
			vg_buf_append(b, "]", 1);
			first = 0;
		}
		vg_buf_append(b, "]}", 2);
	}
}

int vg_api_h_query(struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *v[4] = {NULL, NULL, NULL, NULL};
	struct ectx c = {0};
	struct vg_expr *e = NULL;
	struct xv res = {0};
	json_t *doc = NULL;
	char err[320], ts[32], te[32];
	uint32_t g;
	size_t npoints;
	int pos, rc;
	struct vg_buf b = {0};
	char *body;
	size_t len;

	if (req->method == VG_HTTP_POST) {
		if (body_params(req, resp, &doc, v)) {
			json_decref(doc);
			return 0;
		}
	} else {
		v[0] = vg_http_param(req, "expr");
		v[1] = vg_http_param(req, "start");
		v[2] = vg_http_param(req, "end");
		v[3] = vg_http_param(req, "granularity");
	}
	if (!v[0] || !*v[0]) {
		rc = vg_http_reply_error(resp, 400, "missing parameter 'expr'");
		goto out;
	}
	if (vg_api_granularity_param(resp, v[3], &g)) {
		rc = 0;
		goto out;
	}
	if (vg_api_parse_window(v[1], v[2], req->now_ms, &c.start_ms,
				&c.end_ms, err, sizeof(err))) {
		rc = vg_http_reply_error(resp, 400, "%s", err);
		goto out;
	}
	vg_time_format(c.start_ms, ts, sizeof(ts));
	vg_time_format(c.end_ms, te, sizeof(te));
	if (g && vg_api_pick_granularity(c.start_ms, c.end_ms, g,
					 VG_API_MAX_POINTS, &c.gran, &npoints)) {
		rc = vg_http_reply_error(resp, 400, "too many points: %zu at %u "
						    "s granularity between %s and %s; the "
						    "limit is %d per series",
					 npoints, g,
					 ts, te, VG_API_MAX_POINTS);
		goto out;
	}
	rc = vg_expr_parse(v[0], &e, err, sizeof(err), &pos);
	if (rc) {
		rc = rc == -ENOMEM ? vg_http_reply_error(resp, 503, "out of memory")
				   : reply_expr_error(resp, 400, err, pos);
		goto out;
	}
	c.api = req->ctx;
	c.store = vg_api_store(c.api);
	c.scope = req->scope_project;
	c.deadline = vg_monotonic_ms() + VG_EXPR_MAX_MS;
	if (eval(&c, e->root, &res)) {
		rc = reply_expr_error(resp, c.status ? c.status : 500,
				      c.status ? c.err : "evaluation failed",
				      c.epos);
		if (c.storage_fault && c.status == 503) /* the reads' Retry-After */
			vg_http_resp_header(resp, "Retry-After", "5");
		goto out;
	}
	if (!res.step) { /* a constant expression */
		if (!c.gran)
			(void)vg_api_pick_granularity(c.start_ms, c.end_ms, 0,
						      VG_API_MAX_POINTS,
						      &c.gran, &npoints);
		res.step = c.gran;
	}
	vg_buf_append(&b, "{\"expr\":", 8);
	vg_buf_json_string(&b, v[0]);
	vg_buf_printf(&b, ",\"start\":\"%s\",\"end\":\"%s\",\"granularity\":%u",
		      ts, te, res.step);
	if (res.scalar) {
		vg_buf_append(&b, ",\"scalar\":", 10);
		vg_buf_json_number(&b, res.c);
	}
	vg_buf_append(&b, ",\"series\":[", 11);
	put_series(&b, &res);
	vg_buf_printf(&b, "],\"read\":{\"series\":%zu,\"points\":%zu}}",
		      c.series_read, c.points_read);
	body = vg_buf_take(&b, &len);
	rc = body ? vg_http_reply_raw(resp, 200, "application/json", body, len)
		  : vg_http_reply_error(resp, 503, "out of memory");
out:
	xv_free(&res);
	vg_expr_free(e);
	json_decref(doc);
	return rc;
}

const char *const vg_api_query_params[] = {"expr", "start", "end",
					   "granularity", NULL};
