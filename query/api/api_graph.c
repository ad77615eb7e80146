/*
 * api_graph.c — GET /v1/graph: a PNG drawn by librrd's graph function
 * (rrd_graph_v) for up to VG_API_GRAPH_MAX_SERIES series over a time range.
 *
 * Design: rrd_graph takes a small language of arguments ("DEF:v=file:ds:CF",
 * "LINE2:v#color:legend", "--title=..."), where ':' separates fields and a
 * backslash starts an escape. User input must never be able to add a
 * field, a DEF or a PRINT. So:
 *   - every DEF names a file built on the server: vg_store_path() for a
 *     resource the caller may read (the escaping of vigie/name.h leaves no
 *     ':' or '\' in it); a path that still holds one (a data_dir with a
 *     colon) is refused, never escaped;
 *   - variable names (v0..v7) and colours come from the server;
 *   - text from the request (title, legends) and from the registry (ids in
 *     the default legends) is checked: control characters (newlines) and
 *     backslashes are refused with a 400 for what the caller typed and
 *     replaced by '?' in defaults; in legends every ':' becomes "\:", the
 *     escape rrdtool documents for a literal colon; the title goes in one
 *     "--title=..." argument, where nothing is parsed;
 *   - times and sizes are integers the server formats.
 * vg_api_graph_build() is pure and unit-tested with hostile input.
 *
 * librrd's graph code (cairo, pango, fontconfig) is not reliably
 * thread-safe, so renders are serialised by one mutex; the PNG comes back
 * in memory (filename "-"), no file is written.
 *
 * Invariants: argv[i] never contains a newline; every DEF path is one the
 * server built; a scoped request for another project's resource is a 404.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <rrd.h>

#include "query/api/api_handlers.h"
#include "vigie/clock.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/log.h"
#include "vigie/name.h"

static pthread_mutex_t g_render_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const palette[VG_API_GRAPH_MAX_SERIES] = {
	"1f77b4",
	"d62728",
	"2ca02c",
	"ff7f0e",
	"9467bd",
	"8c564b",
	"e377c2",
	"17becf",
};

/* ---- text ------------------------------------------------------------------- */

int vg_api_graph_text(const char *in, int legend, int strict, char *out,
		      size_t outlen)
{
	size_t o = 0, max = legend ? VG_API_GRAPH_LEGEND_MAX : VG_API_GRAPH_TITLE_MAX;

	if (!in || !outlen)
		return -EINVAL;
	if (strlen(in) > max)
		return -ENAMETOOLONG;
	/* valid UTF-8 without control characters (vg_name_valid's rule, for
	 * any length up to max) */
	if (*in && strlen(in) <= VG_NAME_MAX && !vg_name_valid(in) && strict)
		return -EINVAL;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		unsigned char ch = *p;
		int bad = ch < 0x20 || ch == 0x7f || ch == '\\';

		if (bad && strict)
			return -EINVAL;
		if (o + 3 >= outlen)
			return -ENAMETOOLONG;
		if (bad) {
			out[o++] = '?';
		} else if (ch == ':' && legend) {
			out[o++] = '\\';
			out[o++] = ':';
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return 0;
}

void vg_api_graph_default_legend(const char *res, const char *metric,
				 const char *unit, char *out, size_t outlen)
{
	char tail[VG_API_GRAPH_LEGEND_MAX + 1];
	size_t room, m = vg_utf8_prefix(metric, 40);

	if (!outlen)
		return;
	snprintf(tail, sizeof(tail), " %.*s%s%s%s", (int)m, metric,
		 unit && *unit ? " (" : "", unit ? unit : "",
		 unit && *unit ? ")" : "");
	/* the id gets at most 60 bytes, less when the legend would pass
	 * VG_API_GRAPH_LEGEND_MAX (vg_api_graph_text refuses longer ones) */
	room = strlen(tail) < VG_API_GRAPH_LEGEND_MAX
		       ? VG_API_GRAPH_LEGEND_MAX - strlen(tail)
		       : 0;
	if (room > 60)
		room = 60;
	snprintf(out, outlen, "%.*s%s", (int)vg_utf8_prefix(res, room), res, tail);
}

/* ---- the argument vector ------------------------------------------------------ */

static int add(struct vg_api_graph_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int add(struct vg_api_graph_args *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->argc + 1 >= (int)(sizeof(a->argv) / sizeof(a->argv[0])))
		return -E2BIG;
	va_start(ap, fmt);
	n = vsnprintf(a->buf + a->used, sizeof(a->buf) - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(a->buf) - a->used)
		return -E2BIG;
	a->argv[a->argc++] = a->buf + a->used;
	a->argv[a->argc] = NULL;
	a->used += (size_t)n + 1;
	return 0;
}

static int path_safe(const char *p)
{
	if (!*p)
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == ':' || *p == '\\' ||
		    *p == 0x7f)
			return 0;
	return 1;
}

int vg_api_graph_build(const struct vg_api_graph_spec *g, struct vg_api_graph_args *a,
		       char *err, size_t errlen)
{
	static const char *const cfn[] = {"AVERAGE", "MIN", "MAX"};
	char text[4 * VG_API_GRAPH_TITLE_MAX + 8];
	int rc = 0;

	memset(a, 0, sizeof(*a));
	if (!g->n || g->n > VG_API_GRAPH_MAX_SERIES || g->end_ms <= g->start_ms ||
	    g->width < VG_API_GRAPH_MIN_WIDTH || g->width > VG_API_GRAPH_MAX_WIDTH ||
	    g->height < VG_API_GRAPH_MIN_HEIGHT || g->height > VG_API_GRAPH_MAX_HEIGHT) {
		snprintf(err, errlen, "bad graph specification");
		return -EINVAL;
	}
	rc |= add(a, "graph");
	rc |= add(a, "-");
	rc |= add(a, "--imgformat=PNG");
	rc |= add(a, "--start=%lld", (long long)(g->start_ms / 1000));
	rc |= add(a, "--end=%lld", (long long)vg_ms_to_s_ceil(g->end_ms));
	rc |= add(a, "--width=%u", g->width);
	rc |= add(a, "--height=%u", g->height);
	rc |= add(a, "--slope-mode");
	if (g->title && *g->title) {
		if (vg_api_graph_text(g->title, 0, 1, text, sizeof(text))) {
			snprintf(err, errlen,
				 "bad title: at most %d bytes of UTF-8 without "
				 "control characters (newlines) or backslashes",
				 VG_API_GRAPH_TITLE_MAX);
			return -EINVAL;
		}
		rc |= add(a, "--title=%s", text);
	}
	/* Series on rrdcached: rrd_graph reads them through their daemon
	 * (--daemon: one per graph, so the daemon writes them out first). */
	if (g->n && g->line[0].daemon[0]) {
		for (size_t i = 1; i < g->n; i++)
			if (strcmp(g->line[i].daemon, g->line[0].daemon)) {
				snprintf(err, errlen, "these series are on different storage "
						      "daemons: draw one graph per daemon");
				return -ENOTSUP;
			}
		rc |= add(a, "--daemon=%s", g->line[0].daemon);
	}
	if (g->vlabel[0] &&
	    !vg_api_graph_text(g->vlabel, 0, 0, text, sizeof(text)))
		rc |= add(a, "--vertical-label=%s", text);
	for (size_t i = 0; i < g->n; i++) {
		const struct vg_api_graph_line *l = &g->line[i];
		int cf = l->cf >= VG_CF_AVERAGE && l->cf <= VG_CF_MAX ? l->cf : 0;

		if (!path_safe(l->path)) {
			snprintf(err, errlen,
				 "the data directory's path holds a character "
				 "rrdtool cannot take (':' or '\\')");
			return -ENOTSUP;
		}
		if (vg_api_graph_text(l->legend, 1, l->legend_strict, text,
				      sizeof(text))) {
			snprintf(err, errlen,
				 "bad legend%zu: at most %d bytes of UTF-8 "
				 "without control characters (newlines) or "
				 "backslashes",
				 i + 1, VG_API_GRAPH_LEGEND_MAX);
			return -EINVAL;
		}
		rc |= add(a, "DEF:v%zu=%s:value:%s", i, l->path, cfn[cf]);
		rc |= add(a, "LINE2:v%zu#%s:%s", i, palette[i], text);
	}
	if (rc) {
		snprintf(err, errlen, "graph arguments too long");
		return -E2BIG;
	}
	return 0;
}

int vg_api_graph_render(const struct vg_api_graph_args *a, char **png, size_t *len,
			json_t **legends, char *err, size_t errlen)
{
	rrd_info_t *info, *i;
	char *argv[sizeof(a->argv) / sizeof(a->argv[0])];
	int rc = -EIO;

	*png = NULL;
	*len = 0;
	if (legends)
		*legends = json_array();
	memcpy(argv, a->argv, sizeof(argv));
	pthread_mutex_lock(&g_render_lock);
	rrd_clear_error();
	info = rrd_graph_v(a->argc, argv);
	if (!info) {
		snprintf(err, errlen, "rrd_graph: %s", rrd_get_error());
		rrd_clear_error();
	}
	for (i = info; i; i = i->next) {
		if (i->type == RD_I_BLO && !strcmp(i->key, "image") && !*png) {
			*png = malloc(i->value.u_blo.size ? i->value.u_blo.size : 1);
			if (!*png) {
				rc = -ENOMEM;
				break;
			}
			memcpy(*png, i->value.u_blo.ptr, i->value.u_blo.size);
			*len = i->value.u_blo.size;
			rc = 0;
		} else if (legends && i->type == RD_I_STR &&
			   !strncmp(i->key, "legend[", 7)) {
			json_array_append_new(*legends, json_string(i->value.u_str));
		} else if (legends && !strncmp(i->key, "print[", 6)) {
			/* never produced by our arguments; tests look for it */
			json_array_append_new(*legends, json_string("PRINT"));
		}
	}
	rrd_info_free(info);
	pthread_mutex_unlock(&g_render_lock);
	if (rc == -EIO && info)
		snprintf(err, errlen, "rrd_graph returned no image");
	return rc;
}

/* ---- GET /v1/graph ------------------------------------------------------------- */

/* Renders that failed (vg_log_limited: the 1st and every 1000th logged). */
static uint64_t n_render_errors;

/* "resource", "resource2" .. "resource8" and the same for metric/legend. */
static const char *pname(char *buf, size_t len, const char *base, size_t i)
{
	if (i == 0)
		snprintf(buf, len, "%s", base);
	else
		snprintf(buf, len, "%s%u", base, (unsigned)(i + 1) % 10u);
	return buf;
}

int vg_api_h_graph(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_store *store = vg_api_store(api);
	struct vg_api_graph_spec *g;
	struct vg_api_graph_args *args;
	struct vg_registry *reg;
	const char *as = vg_http_param(req, "aggregation"), *agg_name;
	const char *ws = vg_http_param(req, "width"), *hs = vg_http_param(req, "height");
	char err[512], k1[24], k2[24], k3[24];
	const char *res[VG_API_GRAPH_MAX_SERIES], *met[VG_API_GRAPH_MAX_SERIES],
		*leg[VG_API_GRAPH_MAX_SERIES];
	char *png = NULL;
	size_t png_len = 0, n = 0;
	int cf, rc;

	if (vg_api_parse_aggregation(as, &cf, &agg_name))
		return vg_http_reply_error(resp, 400,
					   "bad aggregation '%.32s' (one of: mean, "
					   "min, max)",
					   as);
	for (size_t i = 0; i < VG_API_GRAPH_MAX_SERIES; i++) {
		const char *r = vg_http_param(req, pname(k1, sizeof(k1), "resource", i));
		const char *m = vg_http_param(req, pname(k2, sizeof(k2), "metric", i));
		const char *l = vg_http_param(req, pname(k3, sizeof(k3), "legend", i));

		if (!m) {
			if ((r && i) || l)
				return vg_http_reply_error(resp, 400,
							   "'%s' given without '%s'",
							   r && i ? k1 : k3, k2);
			if (i == 0)
				return vg_http_reply_error(resp, 400,
							   "missing parameter "
							   "'metric'");
			continue;
		}
		if (!r)
			r = vg_http_param(req, "resource");
		if (!r || !*r)
			return vg_http_reply_error(resp, 400,
						   "missing parameter 'resource'");
		if (!*m)
			return vg_http_reply_error(resp, 400,
						   "parameter '%s' is empty", k2);
		res[n] = r;
		met[n] = m;
		leg[n] = l;
		n++;
	}
	g = calloc(1, sizeof(*g));
	args = calloc(1, sizeof(*args));
	if (!g || !args) {
		free(g);
		free(args);
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	if (vg_api_parse_uint(ws, VG_API_GRAPH_DEF_WIDTH, VG_API_GRAPH_MIN_WIDTH,
			      VG_API_GRAPH_MAX_WIDTH, &g->width) ||
	    vg_api_parse_uint(hs, VG_API_GRAPH_DEF_HEIGHT, VG_API_GRAPH_MIN_HEIGHT,
			      VG_API_GRAPH_MAX_HEIGHT, &g->height)) {
		rc = vg_http_reply_error(resp, 400,
					 "bad size: width %d..%d, height %d..%d "
					 "pixels",
					 VG_API_GRAPH_MIN_WIDTH,
					 VG_API_GRAPH_MAX_WIDTH, VG_API_GRAPH_MIN_HEIGHT,
					 VG_API_GRAPH_MAX_HEIGHT);
		goto out;
	}
	if (vg_api_window_param(req, resp, &g->start_ms, &g->end_ms)) {
		rc = 0;
		goto out;
	}
	if (g->end_ms - g->start_ms < 1000) {
		rc = vg_http_reply_error(resp, 400,
					 "the range must be at least one second");
		goto out;
	}
	g->title = vg_http_param(req, "title");
	/* the caller's own text first: a 400 for it leaks nothing */
	for (size_t i = 0; i < n; i++) {
		char tmp[4 * VG_API_GRAPH_LEGEND_MAX + 8];
		if (leg[i] && vg_api_graph_text(leg[i], 1, 1, tmp, sizeof(tmp))) {
			rc = vg_http_reply_error(resp, 400,
						 "bad legend%s: at most %d bytes "
						 "of UTF-8 without control "
						 "characters (newlines) or "
						 "backslashes",
						 i ? pname(k3, sizeof(k3), "", i) : "",
						 VG_API_GRAPH_LEGEND_MAX);
			goto out;
		}
	}
	if (g->title) {
		char tmp[4 * VG_API_GRAPH_TITLE_MAX + 8];
		if (vg_api_graph_text(g->title, 0, 1, tmp, sizeof(tmp))) {
			rc = vg_http_reply_error(resp, 400,
						 "bad title: at most %d bytes of "
						 "UTF-8 without control characters "
						 "(newlines) or backslashes",
						 VG_API_GRAPH_TITLE_MAX);
			goto out;
		}
	}
	if ((rc = vg_api_registry(api, &reg))) {
		rc = vg_http_reply_error(resp, 503, "registry unavailable (%s)",
					 strerror(-rc));
		goto out;
	}
	/* every resource must be visible before any metric is looked at */
	for (size_t i = 0; i < n; i++) {
		int rtype;

		rc = vg_name_valid(res[i])
			     ? vg_registry_visible(reg, res[i], req->scope_project,
						   &rtype)
			     : -ENOENT;
		if (rc == -ENOENT) {
			rc = vg_http_reply_error(resp, 404, "no resource '%.200s'",
						 res[i]);
			goto out;
		}
		if (rc) {
			rc = vg_api_reply_errno(resp, rc, "resource");
			goto out;
		}
		g->line[i].rtype = rtype;
	}
	if (!store) {
		rc = vg_http_reply_error(resp, 503, "no store configured");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct vg_api_graph_line *l = &g->line[i];

		if (vg_name_valid(met[i]))
			rc = vg_store_locate(store, l->rtype, res[i], met[i], l->path,
					     sizeof(l->path), l->daemon, sizeof(l->daemon));
		if (rc == -EHOSTUNREACH || rc == -EADDRNOTAVAIL) {
			/* its daemon does not answer, recorded on an unlisted
			 * daemon, or the placement record does not answer:
			 * the measures' own answer (the daemon named to
			 * admin tokens only) */
			rc = vg_api_reply_unreachable(resp, store, l->rtype, res[i], met[i],
						      !req->scope_project);
			goto out;
		}
		if (rc == -EIO && l->daemon[0]) {
			/* its daemon answers but refused to FLUSH or read the
			 * file: a fault of the daemon or file, never a 404 */
			rc = vg_api_reply_refused(resp, store, l->rtype, res[i], met[i],
						  !req->scope_project);
			goto out;
		}
		if (rc == -EIO) {
			/* files: the file exists and librrd cannot read it
			 * (damaged): the measures' 500, never a 404 */
			rc = vg_http_reply_error(resp, 500, "error reading '%s' of '%.200s': %s",
						 met[i], res[i], strerror(EIO));
			goto out;
		}
		if (!vg_name_valid(met[i]) || rc) {
			rc = vg_http_reply_error(resp, 404,
						 "resource '%s' has no metric '%.200s'",
						 res[i], met[i]);
			goto out;
		}
		l->cf = cf;
		if (leg[i]) {
			snprintf(l->legend, sizeof(l->legend), "%s", leg[i]);
			l->legend_strict = 1;
		} else {
			char unit[64];
			/* the catalogue's, or a published series' own */
			vg_api_series_unit(api, l->rtype, res[i], met[i], 0, unit,
					   sizeof(unit));
			vg_api_graph_default_legend(res[i], met[i], unit, l->legend,
						    sizeof(l->legend));
			l->legend_strict = 0;
		}
		if (i == 0)
			vg_api_series_unit(api, l->rtype, res[i], met[i], 0, g->vlabel,
					   sizeof(g->vlabel));
	}
	g->n = n;
	rc = vg_api_graph_build(g, args, err, sizeof(err));
	if (rc) {
		rc = vg_http_reply_error(resp, rc == -EINVAL ? 400 : 500, "%s", err);
		goto out;
	}
	rc = vg_api_graph_render(args, &png, &png_len, NULL, err, sizeof(err));
	if (rc) {
		/* librrd's error names the file's path (and a daemon's
		 * address): the storage's, shown to admin tokens only, as
		 * the storage 503s (vg_api_storage_fault) */
		vg_log_limited(VG_LOG_WARN, &n_render_errors, "api: graph: %s", err);
		if (req->scope_project)
			rc = vg_http_reply_error(resp, 500,
						 "cannot draw the graph (the operator finds "
						 "the cause in the collector's log)");
		else
			rc = vg_http_reply_error(resp, 500, "cannot draw the graph: %s", err);
		goto out;
	}
	rc = vg_http_reply_raw(resp, 200, "image/png", png, png_len);
out:
	free(g);
	free(args);
	return rc;
}

const char *const vg_api_graph_params[] = {
	"resource", "metric", "legend", "resource2", "metric2", "legend2",
	"resource3", "metric3", "legend3", "resource4", "metric4", "legend4",
	"resource5", "metric5", "legend5", "resource6", "metric6", "legend6",
	"resource7", "metric7", "legend7", "resource8", "metric8", "legend8",
	"start", "end", "title", "width", "height", "aggregation", NULL};
