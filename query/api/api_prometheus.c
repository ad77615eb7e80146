/*
 * api_prometheus.c — GET /metrics: the Prometheus text exposition format
 * (version 0.0.4), so an existing Prometheus, Thanos or Mimir scrapes
 * vigie like any exporter.
 *
 * Design: one sample per series (resource, metric) with the latest value
 * the collector received — the registry's last_value, so a counter is its
 * running total (exposed as a Prometheus counter named ..._total: rate()
 * works on it) and a gauge its level. Metric names are "vigie_" plus the
 * vigie name with every character outside [a-zA-Z0-9_] turned into '_'
 * (cpu.util -> vigie_cpu_util, disk.read.bytes -> vigie_disk_read_bytes_total).
 * Labels: resource (id), type, project, host, and device (the disk or NIC
 * name) for device resources. Ended resources are left out on purpose:
 * a series missing from a scrape is marked stale by Prometheus at once, so
 * queries, count() and alerts stop seeing a deleted instance; exposed, its
 * last value would stay flat forever (docs/api.md; the RRD files and the
 * API keep its data). The samples carry no timestamp: the scrape time is
 * what Prometheus expects from an exporter.
 *
 * An admin token also gets the collector's own metrics (batches and
 * samples received; rejected, one family with a reason label per
 * receiver counter, whose sum is every rejection, plus the older
 * ..._refused_total name for the signature reasons (deprecated);
 * duplicates, retries; the PUB socket's sent and dropped messages; RRD writes,
 * their errors and the time spent in librrd as a summary; API requests and
 * open connections; the alarm engine's, vigie_alarms_*, when alarms are
 * on: evaluations, transitions, notifications, deliveries by outcome, SSE
 * clients). A project token sees only its own project's series:
 * the self-metrics describe every tenant's traffic.
 *
 * Invariants: every family has exactly one HELP and one TYPE line and its
 * samples are contiguous, each label set once; label values are escaped (backslash, double
 * quote, newline) and HELP text too (backslash, newline), per the format.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "query/api/api_handlers.h"
#include "vigie/cluster.h"
#include "vigie/batch.h"
#include "vigie/catalog.h"
#include "vigie/hmap.h"
#include "vigie/bill_meter.h"
#include "vigie/lifecycle.h"
#include "vigie/log.h"

void vg_api_prom_label_value(struct vg_buf *b, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;
		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '"')
			rep = "\\\"";
		else if (*s == '\n')
			rep = "\\n";
		if (!rep)
			continue;
		vg_buf_append(b, run, (size_t)(s - run));
		vg_buf_append(b, rep, 2);
		run = s + 1;
	}
	vg_buf_append(b, run, (size_t)(s - run));
}

/* A daemon's address as a label value: no quote, backslash or newline. */
static void daemon_label(const char *address, char *lab, size_t size)
{
	size_t j = 0;

	for (const char *c = address; *c && j < size - 1; c++)
		lab[j++] = *c == '"' || *c == '\\' || *c == '\n' ? '_' : *c;
	lab[j] = '\0';
}

static void help_text(struct vg_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			vg_buf_append(b, "\\\\", 2);
		else if (*s == '\n')
			vg_buf_append(b, "\\n", 2);
		else
			vg_buf_append(b, s, 1);
	}
}

void vg_api_prom_name(const char *metric, int counter, char *out, size_t len)
{
	size_t o = 0;

	o = (size_t)snprintf(out, len, "vigie_");
	for (const char *p = metric; *p && o + 7 < len; p++) {
		char c = *p;
		out[o++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					   (c >= '0' && c <= '9') || c == '_'
				   ? c
				   : '_';
	}
	out[o] = '\0';
	if (counter)
		snprintf(out + o, len - o, "_total");
}

void vg_api_prom_value(struct vg_buf *b, double v)
{
	char tmp[40];

	if (isnan(v)) {
		vg_buf_append(b, "NaN", 3);
		return;
	}
	if (isinf(v)) {
		vg_buf_printf(b, "%sInf", v > 0 ? "+" : "-");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	vg_buf_append(b, tmp, strlen(tmp));
}

/* ---- series ------------------------------------------------------------------ */

struct sample {
	char *family;     /* malloc'd */
	char *line;       /* "name{labels} value\n", malloc'd */
	const char *help; /* static (catalogue) or NULL */
	int counter;
	size_t seq; /* scan order: keeps resources sorted within a family */
};

struct prom_ctx {
	struct sample *s;
	size_t n, cap;
};

static int is_device(int rtype)
{
	return rtype == VG_RT_DISK || rtype == VG_RT_NIC ||
	       rtype == VG_RT_HOST_DISK || rtype == VG_RT_HOST_NIC;
}

static int add_resource(void *vctx, json_t *r)
{
	struct prom_ctx *c = vctx;
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *type = json_string_value(json_object_get(r, "type"));
	const char *project = json_string_value(json_object_get(r, "project"));
	const char *host = json_string_value(json_object_get(r, "host"));
	const char *name = json_string_value(json_object_get(r, "name"));
	int rtype = type ? vg_rtype_parse(type) : -1;
	json_t *metrics = json_object_get(r, "metrics"), *m;
	const char *key;

	if (!id || !type)
		return 0;
	json_object_foreach(metrics, key, m) {
		json_t *lv = json_object_get(m, "last_value");
		const char *ks = json_string_value(json_object_get(m, "kind"));
		int counter = ks && !strcmp(ks, "counter");
		const struct vg_metric_def *def = vg_catalog_find(rtype, key);
		char fam[300];
		struct vg_buf b = {0};

		if (!json_is_number(lv))
			continue;
		vg_api_prom_name(key, counter, fam, sizeof(fam));
		vg_buf_printf(&b, "%s{resource=\"", fam);
		vg_api_prom_label_value(&b, id);
		vg_buf_printf(&b, "\",type=\"%s\",project=\"", type);
		vg_api_prom_label_value(&b, project ? project : "");
		vg_buf_append(&b, "\",host=\"", 8);
		vg_api_prom_label_value(&b, host ? host : "");
		if (is_device(rtype)) {
			vg_buf_append(&b, "\",device=\"", 10);
			vg_api_prom_label_value(&b, name ? name : "");
		}
		vg_buf_append(&b, "\"} ", 3);
		vg_api_prom_value(&b, json_number_value(lv));
		vg_buf_append(&b, "\n", 1);
		if (c->n == c->cap) {
			size_t nc = c->cap ? 2 * c->cap : 256;
			struct sample *ns = realloc(c->s, nc * sizeof(*ns));
			if (!ns) {
				vg_buf_release(&b);
				return -ENOMEM;
			}
			c->s = ns;
			c->cap = nc;
		}
		c->s[c->n].line = vg_buf_take(&b, NULL);
		c->s[c->n].family = strdup(fam);
		c->s[c->n].help = def ? def->description : NULL;
		c->s[c->n].counter = counter;
		c->s[c->n].seq = c->n;
		if (!c->s[c->n].line || !c->s[c->n].family) {
			free(c->s[c->n].line);
			free(c->s[c->n].family);
			return -ENOMEM;
		}
		c->n++;
	}
	return 0;
}

/* By family; in a family the catalogue's samples first (their type is
 * the family's), then scan order. */
static int cmp_sample(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	int k = strcmp(x->family, y->family);

	if (k)
		return k;
	if (!x->help != !y->help)
		return x->help ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The family names the self-metrics wrote into b ("# TYPE name type"
 * lines), with the _sum, _count and _bucket samples of a summary or a
 * histogram, into own (a map that copies keys): names a series may not
 * take. 0 or -ENOMEM. */
static int own_families(const struct vg_buf *b, struct vg_hmap *own)
{
	static const char *const parts[] = {"", "_sum", "_count", "_bucket"};
	static char yes = 1;
	const char *p = b->p, *end = b->p + b->len;

	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		if (e - p > 7 && !memcmp(p, "# TYPE ", 7)) {
			const char *name = p + 7, *sp = memchr(name, ' ', (size_t)(e - name));
			size_t len = sp ? (size_t)(sp - name) : (size_t)(e - name);
			size_t nparts = sp && ((e - sp == 8 && !memcmp(sp, " summary", 8)) ||
					       (e - sp == 10 && !memcmp(sp, " histogram", 10)))
						? 4
						: 1;
			for (size_t k = 0; k < nparts; k++) {
				char n[320];
				snprintf(n, sizeof(n), "%.*s%s", (int)(len < 300 ? len : 300), name,
					 parts[k]);
				if (vg_hmap_puts(own, n, &yes))
					return -ENOMEM;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

/* Series left out of /metrics (their name: vg_api_h_metrics); also the
 * rate limit of its log line. */
static uint64_t g_left_out;

/* ---- self-metrics ---------------------------------------------------------------- */

static void family(struct vg_buf *b, const char *name, const char *type,
		   const char *help)
{
	vg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct vg_buf *b, const char *name, const char *type,
		const char *help, double v)
{
	family(b, name, type, help);
	vg_buf_printf(b, "%s ", name);
	vg_api_prom_value(b, v);
	vg_buf_append(b, "\n", 1);
}

/* One sample told apart by one label: name{label="value"} n. value is
 * written as it is: the caller's own names, or escaped (daemon_label). */
static void label_sample(struct vg_buf *b, const char *name, const char *label,
			 const char *value, uint64_t n)
{
	vg_buf_printf(b, "%s{%s=\"%s\"} %llu\n", name, label, value,
		      (unsigned long long)n);
}

/* A family of samples told apart by one label: name{label="values[i]"} n[i]. */
static void labelled(struct vg_buf *b, const char *name, const char *type,
		     const char *help, const char *label,
		     const char *const *values, const uint64_t *n, size_t count)
{
	family(b, name, type, help);
	for (size_t i = 0; i < count; i++)
		label_sample(b, name, label, values[i], n[i]);
}

/* The same, the label values an enum's names: name{label="name_of(i)"} n[i]
 * for i in 0..count-1. */
static void labelled_enum(struct vg_buf *b, const char *name, const char *type,
			  const char *help, const char *label,
			  const char *(*name_of)(int), const uint64_t *n, int count)
{
	family(b, name, type, help);
	for (int i = 0; i < count; i++)
		label_sample(b, name, label, name_of(i), n[i]);
}

/* A summary of time spent: name_sum in seconds, name_count events. */
static void summary(struct vg_buf *b, const char *name, const char *help,
		    uint64_t ns_total, uint64_t count)
{
	family(b, name, "summary", help);
	vg_buf_printf(b, "%s_sum ", name);
	vg_api_prom_value(b, (double)ns_total / 1e9);
	vg_buf_printf(b, "\n%s_count %llu\n", name, (unsigned long long)count);
}

/* The data directory's own file system: RRD files, the registry and the
 * journal all grow there, and a full one stops the collector. */
static void datadir_metrics(struct vg_api *api, struct vg_buf *b)
{
	struct statvfs sv;

	if (statvfs(vg_api_data_dir(api), &sv) != 0 || sv.f_blocks == 0)
		return;
	double bs = (double)sv.f_frsize;
	one(b, "vigie_collector_datadir_size_bytes", "gauge",
	    "Size of the file system holding the data directory",
	    (double)sv.f_blocks * bs);
	one(b, "vigie_collector_datadir_free_bytes", "gauge",
	    "Bytes free for the collector on the data directory's file system (f_bavail)",
	    (double)sv.f_bavail * bs);
	if (sv.f_files > 0) {
		one(b, "vigie_collector_datadir_inodes", "gauge",
		    "Inodes of the data directory's file system", (double)sv.f_files);
		one(b, "vigie_collector_datadir_inodes_free", "gauge",
		    "Inodes free for the collector on the data directory's file system",
		    (double)sv.f_favail);
	}
}

static void self_metrics(struct vg_api *api, struct vg_buf *b)
{
	datadir_metrics(api, b);
	struct vg_receiver_stats cs;
	struct vg_store_stats ss;
	struct vg_http_stats hs;
	struct vg_store *store = vg_api_store(api);

	if (vg_api_collector_stats(api, &cs) == 0) {
		/* Every reason a batch is answered REJECTED; the family's sum
		 * is batches_rejected. The first six are also exposed under
		 * their older name, ..._refused_total (deprecated). */
		static const char *const reasons[] = {
			"unsigned", "forged", "wrong_host", "no_key", "stale",
			"future", "malformed", "oversize", "clock_unset",
			"bad_name"};
		const uint64_t by[] = {cs.batches_unsigned, cs.batches_forged,
				       cs.batches_wrong_host, cs.batches_no_key,
				       cs.batches_stale, cs.batches_future,
				       cs.batches_malformed, cs.batches_oversize,
				       cs.batches_clock_unset, cs.batches_bad_name};
		const size_t nby = sizeof(by) / sizeof(by[0]);

		one(b, "vigie_collector_batches_received_total", "counter",
		    "Batches received from agents (all outcomes)",
		    (double)cs.batches_received);
		labelled(b, "vigie_collector_batches_rejected_total", "counter",
			 "Batches answered REJECTED, by reason (sum() is every "
			 "rejection)",
			 "reason", reasons, by, nby);
		labelled(b, "vigie_collector_batches_refused_total", "counter",
			 "Deprecated: the signature and time reasons of "
			 "vigie_collector_batches_rejected_total",
			 "reason", reasons, by, 6);
		one(b, "vigie_collector_batches_duplicate_total", "counter",
		    "Batches already acknowledged (re-sent), dropped",
		    (double)cs.batches_duplicate);
		one(b, "vigie_collector_batches_retry_total", "counter",
		    "Batches answered RETRY (storage not ready)",
		    (double)cs.batches_retry);
		one(b, "vigie_collector_samples_received_total", "counter",
		    "Samples of acknowledged batches",
		    (double)cs.samples_received);
		one(b, "vigie_receiver_groups_total", "counter",
		    "Groups of two or more batches, already waiting together, "
		    "handed to the consumers at once (one billing transaction, "
		    "one registry commit)",
		    (double)cs.groups);
		one(b, "vigie_receiver_batches_grouped_total", "counter",
		    "Batches that went in such groups (divided by "
		    "vigie_receiver_groups_total: batches per group)",
		    (double)cs.batches_grouped);
		one(b, "vigie_receiver_batches_deferred_total", "counter",
		    "Batches held back to the next group because a batch of "
		    "their host's stream was in the current one",
		    (double)cs.batches_deferred);
		one(b, "vigie_receiver_batches_held_elsewhere_total", "counter",
		    "Batches answered RETRY, not stored, because another live "
		    "collector holds values of their host that a storage daemon "
		    "has not taken yet (also in the RETRY count)",
		    (double)cs.batches_held_elsewhere);
		one(b, "vigie_receiver_batches_unverified_total", "counter",
		    "Batches answered RETRY, not stored, because another "
		    "collector committed their host's last batch after the time "
		    "its verified row covers ([cluster] wait_verified; also in "
		    "the RETRY count)",
		    (double)cs.batches_unverified);
		one(b, "vigie_receiver_batches_proven_total", "counter",
		    "Batches stored at once although another collector's commit "
		    "of their host was not verified yet: this collector FLUSHed "
		    "their host's files over connections made before that commit "
		    "([cluster] wait_verified)",
		    (double)cs.batches_proven);
		one(b, "vigie_receiver_proofs_timed_out_total", "counter",
		    "Proofs of another collector's values cut off by their bound "
		    "([cluster] proof_timeout_ms: a slow storage daemon), their "
		    "batches answered RETRY (also in the unverified count)",
		    (double)cs.proofs_timed_out);
		one(b, "vigie_receiver_batch_deadline_total", "counter",
		    "Batches whose one deadline (three quarters of [agent] "
		    "ack_timeout_ms from their arrival) cut a phase short: "
		    "answered RETRY before their proof, opens or write-through "
		    "ended, or acknowledged with the rest of their write-through "
		    "left to the storage thread",
		    (double)cs.batch_deadline);
		one(b, "vigie_receiver_commit_deadline_total", "counter",
		    "Batches whose work in the state database (PostgreSQL: duplicate "
		    "check, registry transaction, commit of their sequence number; a "
		    "lock held by another session, a slow server) did not end by their "
		    "deadline: rolled back, nothing recorded, answered RETRY (also in "
		    "the batch deadline and RETRY counts)",
		    (double)cs.commit_deadline);
		one(b, "vigie_receiver_state_canceled_total", "counter",
		    "Batches whose work in the state database was cancelled well "
		    "before their deadline (an operator's pg_cancel_backend): rolled "
		    "back, answered RETRY (not in the commit deadline count)",
		    (double)cs.state_canceled);
		one(b, "vigie_receiver_verified_write_failures_total", "counter",
		    "Writes of this collector's verified row that failed in the "
		    "state database (retried at the next tick)",
		    (double)cs.verified_write_failed);
		one(b, "vigie_receiver_hold_marks_refused_total", "counter",
		    "Holding marks not written because another collector marked "
		    "the host after this one's duplicate check; the batch was "
		    "answered RETRY (DUPLICATE if that collector recorded it)",
		    (double)cs.hold_marks_refused);
		one(b, "vigie_receiver_hold_marks_failed_total", "counter",
		    "Holding marks whose write failed in the state database; "
		    "the batch was answered RETRY",
		    (double)cs.hold_marks_failed);
		one(b, "vigie_receiver_hold_marks_renew_failed_total", "counter",
		    "Renewals of this collector's holding marks that failed in "
		    "the state database (retried at the next tick)",
		    (double)cs.hold_marks_renew_failed);
		one(b, "vigie_receiver_hold_marks_clear_failed_total", "counter",
		    "Clears of this collector's holding marks that failed in "
		    "the state database (retried at the next tick)",
		    (double)cs.hold_marks_clear_failed);
		one(b, "vigie_receiver_marks_holding", "gauge",
		    "1 while this collector's holding marks may be in the "
		    "shared state (it holds values a storage daemon has not "
		    "taken), else 0",
		    (double)cs.marks_holding);
		one(b, "vigie_registry_flush_failures_total", "counter",
		    "Writes of the last values and last-seen times by the "
		    "registry's flusher thread (PostgreSQL) that failed; the "
		    "values stay in memory and are written by a later one",
		    (double)cs.registry_flush_failures);
		one(b, "vigie_registry_gone_resources_total", "counter",
		    "Resources whose rows another collector's sweep of ended "
		    "resources deleted while this one held values of them: "
		    "forgotten, those values dropped, registered anew at their "
		    "next report",
		    (double)cs.registry_gone_resources);
		one(b, "vigie_collector_resources_foreign_total", "counter",
		    "Host, host disk, host NIC and host file system resources "
		    "of another host than their batch's, dropped",
		    (double)cs.resources_foreign);
		one(b, "vigie_collector_projects_trimmed_total", "counter",
		    "Resources whose project began or ended with white space, "
		    "taken as the project without it",
		    (double)cs.projects_trimmed);
	}
	{
		/* the state database, as reachable from this node */
		int shared = 0;
		char serr[256];
		int rc = vg_api_state_ping(api, &shared, serr, sizeof(serr));
		one(b, "vigie_state_db_up", "gauge",
		    "1 if the state database (registry, tokens, alarms, "
		    "billing) answers this node",
		    rc ? 0.0 : 1.0);
		one(b, "vigie_state_db_shared", "gauge",
		    "1 if the state is a shared server ([state] url), 0 for "
		    "the local sqlite files",
		    (double)shared);
	}
	if (store) {
		vg_store_get_stats(store, &ss);
		one(b, "vigie_store_files_created_total", "counter",
		    "RRD files created", (double)ss.files_created);
		one(b, "vigie_store_values_written_total", "counter",
		    "Values written to RRD files", (double)ss.values_written);
		one(b, "vigie_store_values_pending", "gauge",
		    "Values acknowledged and cached, not yet written to their "
		    "series (write-behind; storage flush writes them)",
		    (double)ss.values_pending);
		one(b, "vigie_store_values_duplicate_total", "counter",
		    "Values at or before their file's last update, skipped",
		    (double)ss.values_duplicate);
		one(b, "vigie_store_values_rejected_total", "counter",
		    "Values refused (non-finite, bad name)",
		    (double)ss.values_rejected);
		labelled_enum(b, "vigie_store_write_errors_total", "counter",
			      "Acknowledged values that could not be written to "
			      "their RRD files, by reason (their journal segments "
			      "are kept; sum() is every such value)",
			      "reason", vg_store_err_reason, ss.write_errors_by,
			      VG_STORE_ERR_N);
		labelled_enum(b, "vigie_store_backend_syncs_total", "counter",
			      "Syncs of the storage backend before journal segments are "
			      "retired (rrdcached: a FLUSH of every file sent since the "
			      "last one), by what asked for it (docs/operations.md, "
			      "\"Watching the store's syncs\")",
			      "cause", vg_store_sync_cause, ss.backend_syncs_by,
			      VG_STORE_SYNC_N);
		{ /* the lifecycle thread's last walk (hourly) */
			struct vg_lifecycle_result lr;
			struct vg_store_usage u;
			int64_t at = 0;
			vg_lifecycle_get_stats(vg_api_lifecycle(api), &lr);
			if (vg_api_lifecycle(api)) {
				one(b, "vigie_store_ended_series_waiting", "gauge",
				    "Series of ended resources not yet keep_ended old "
				    "(at the last sweep)",
				    (double)lr.series_waiting);
				one(b, "vigie_store_ended_resources_waiting", "gauge",
				    "Ended resources not yet keep_ended old (at the "
				    "last sweep)",
				    (double)lr.resources_waiting);
			}
			if (!vg_lifecycle_get_usage(vg_api_lifecycle(api), &u, &at)) {
				static const char *const fam[][3] = {
					{"vigie_store_series", "gauge", "Series files on each disk or daemon"},
					{"vigie_store_bytes", "gauge", "Bytes the series use on each disk or daemon"},
					{"vigie_store_bytes_free", "gauge", "Bytes free on each disk or daemon"},
					{"vigie_store_growth_bytes_per_day", "gauge",
					 "Bytes of series created in the last 7 days (birth time), divided by 7"},
				};
				for (int k = 0; k < 4; k++) {
					family(b, fam[k][0], fam[k][1], fam[k][2]);
					for (size_t i = 0; i < u.n; i++) {
						const struct vg_store_holder *h = &u.h[i];
						double v = k == 0   ? (double)h->series
							   : k == 1 ? (double)h->bytes
							   : k == 2 ? (double)h->bytes_free
								    : (double)h->bytes_recent / 7;
						if (k == 2 && h->bytes_free == UINT64_MAX)
							continue;
						vg_buf_printf(b, "%s{where=", fam[k][0]);
						vg_buf_json_string(b, h->where);
						vg_buf_printf(b, "} %.0f\n", v);
					}
				}
				one(b, "vigie_store_usage_timestamp_seconds", "gauge",
				    "When the usage above was measured", (double)(at / 1000));
			}
		}
		if (vg_api_meter(api)) { /* billing's ingest (docs/billing.md) */
			uint64_t imp[VG_BILL_IMPL_N];
			vg_bill_meter_implausible(vg_api_meter(api), imp);
			labelled_enum(b, "vigie_billing_implausible_total", "counter",
				      "Usage values billing ignored as implausible (past what "
				      "any guest can use: docs/billing.md), by what they were",
				      "what", vg_bill_implausible_name, imp, VG_BILL_IMPL_N);
			one(b, "vigie_billing_adjustments_withheld_total", "counter",
			    "Invoice answers that withheld an adjustment of late usage "
			    "past 10^12 currency units (named in the invoice's "
			    "warnings, billed once the card or usage is fixed: "
			    "docs/billing.md)",
			    (double)vg_api_invoices_withheld());
			one(b, "vigie_billing_lock_timeouts_total", "counter",
			    "Batches billing answered RETRY because locks another "
			    "collector held were not granted within [billing] "
			    "lock_timeout_ms (docs/billing.md)",
			    (double)vg_bill_meter_lock_timeouts(vg_api_meter(api)));
		}
		one(b, "vigie_store_series_removed_total", "counter",
		    "Series deleted by the lifecycle of ended resources "
		    "([storage] keep_ended)",
		    (double)ss.series_removed);
		one(b, "vigie_store_series_recreated_total", "counter",
		    "Series files created again by a write that found them missing "
		    "(deleted while the collector ran: docs/operations.md)",
		    (double)ss.series_recreated);
		one(b, "vigie_store_series_dir_missing_total", "counter",
		    "Series whose file a write found missing with its type directory (a "
		    "volume not mounted, a directory renamed away): not created again, "
		    "their values wait until it is back (docs/operations.md)",
		    (double)ss.series_dir_missing);
		one(b, "vigie_store_series_dir_waiting", "gauge",
		    "Series whose values wait now because their type directory is "
		    "missing or on another file system (a volume not mounted): "
		    "docs/operations.md",
		    (double)ss.series_dir_waiting);
		one(b, "vigie_store_cache_refusing", "gauge",
		    "1 while batches are answered RETRY because the write-behind cache "
		    "is full (one refused in the last 10 s)",
		    (double)ss.cache_refusing);
		{
			struct vg_store_daemon dm[16];
			size_t nd = vg_store_daemons(store, dm, sizeof(dm) / sizeof(dm[0]));
			static const char *const fam[14][2] = {
				{"vigie_storage_daemon_up", "1 if the last call reached the storage daemon"},
				{"vigie_storage_daemon_errors_total", "Failures that broke a connection to the storage daemon"},
				{"vigie_storage_daemon_pending_files", "Files updated on the daemon, not yet FLUSHed (their journal segments are kept)"},
				{"vigie_storage_daemon_lost_files", "Files whose accepted values the daemon lost (it restarted before writing them), waiting for their re-send from the journal"},
				{"vigie_storage_daemon_repairs_total", "Files whose cache entry the restarted daemon had ahead of the file (its journal replay), FLUSHed and FORGOTten so the values it refused could be written"},
				{"vigie_storage_daemon_checks_cut_total", "Checks of a new connection to the storage daemon (the files sent before, verified durable) that reached their bound ([storage] check_max, 30 s by default); the next connection checks the rest"},
				{"vigie_storage_daemon_overtaken_total", "Files lacking a value of this collector's that another collector's newer ones overtook, so it cannot be written: acknowledged and lost by the daemon (a restart), or, found by the start replay's check, journaled and maybe never sent (docs/operations.md, \"A replay that skips a value\")"},
				{"vigie_storage_daemon_create_errors_total", "Creates of new series the storage daemon refused because it cannot create their directories (started without -R); their batches answer RETRY"},
				{"vigie_storage_daemon_flush_refused_total", "FLUSHes of a file that the storage daemon refused during a sync (one per file and attempt): the values stay in the journal and the sync backs off, 250 ms doubling to 2 s (docs/operations.md, \"A daemon that refuses a FLUSH\")"},
				{"vigie_storage_daemon_flush_refusing", "1 from a sync's FLUSH the storage daemon refused until a sync's FLUSHes pass again (/v1/health shows the daemon degraded meanwhile)"},
				{"vigie_storage_daemon_vanished_total", "Files a sync found gone from the storage daemon's disk (deleted under it) while values of this collector's were accepted for them: those values are lost (docs/operations.md, \"A file deleted under the daemon\")"},
				{"vigie_storage_daemon_unwritten_total", "Files a sync FLUSHed whose last update, read back, was behind the newest value the storage daemon took of this collector's: its write failed (an unwritable file, a full disk); the values are sent again from the journal (docs/operations.md, \"A file the daemon cannot write\")"},
				{"vigie_storage_daemon_resend_watch_files", "Files found lost whose re-send from the journal is watched (its refusal as older than the file counted in vigie_storage_daemon_overtaken_total); each leaves once its re-send was written or refused, or the file removed: above 0 with no lost files for long, a re-send never decided (docs/operations.md, \"A replay that skips a value\")"},
				{"vigie_storage_daemon_round_trips_skipped_total", "Write-through round trips to the storage daemon not started because the batch's time left could not hold the daemon's recent round-trip time; their values wait for the storage thread (docs/operations.md, \"One deadline per batch\")"}};
			for (int k = 0; k < 14 && nd; k++) {
				family(b, fam[k][0],
				       k == 1 || (k >= 4 && k <= 8) || k == 10 || k == 11 || k == 13 ? "counter"
												     : "gauge",
				       fam[k][1]);
				for (size_t i = 0; i < nd; i++) {
					char lab[256];
					daemon_label(dm[i].address, lab, sizeof(lab));
					label_sample(b, fam[k][0], "daemon", lab,
						     k == 0    ? (uint64_t)dm[i].up
						     : k == 1  ? dm[i].errors
						     : k == 2  ? dm[i].pending
						     : k == 3  ? dm[i].lost
						     : k == 4  ? dm[i].repairs
						     : k == 5  ? dm[i].checks_cut
						     : k == 6  ? dm[i].overtaken
						     : k == 7  ? dm[i].create_errors
						     : k == 8  ? dm[i].flush_refused
						     : k == 9  ? (uint64_t)dm[i].flush_refusing
						     : k == 10 ? dm[i].vanished
						     : k == 11 ? dm[i].unwritten
						     : k == 12 ? dm[i].resend_watch
							       : dm[i].round_trips_skipped);
				}
			}
			if (nd)
				family(b, "vigie_storage_daemon_readback_files_total", "counter",
				       "Files the syncs' read-back read (verify_writes): from the "
				       "daemon's disk here (how=\"local\", [storage] daemon_base) "
				       "or by the daemon's INFO (how=\"info\") (docs/operations.md, "
				       "\"A file the daemon cannot write\")");
			for (size_t i = 0; i < nd; i++) {
				char lab[256];
				daemon_label(dm[i].address, lab, sizeof(lab));
				vg_buf_printf(b,
					      "vigie_storage_daemon_readback_files_total{daemon=\"%s\","
					      "how=\"local\"} %llu\n"
					      "vigie_storage_daemon_readback_files_total{daemon=\"%s\","
					      "how=\"info\"} %llu\n",
					      lab, (unsigned long long)dm[i].readback_local, lab,
					      (unsigned long long)dm[i].readback_info);
			}
			if (nd)
				family(b, "vigie_storage_daemon_flushes_total", "counter",
				       "FLUSHes sent to the storage daemon, one per file, by what "
				       "sent them (docs/operations.md, \"Watching the store's "
				       "syncs\")");
			for (size_t i = 0; i < nd; i++) {
				char lab[256];
				daemon_label(dm[i].address, lab, sizeof(lab));
				for (int k = 0; k < VG_STORE_FLUSH_N; k++)
					vg_buf_printf(b,
						      "vigie_storage_daemon_flushes_total{daemon=\"%s\","
						      "site=\"%s\"} %llu\n",
						      lab, vg_store_flush_site(k),
						      (unsigned long long)dm[i].flushes_by[k]);
			}
		}
		{ /* series recorded on a daemon not in [storage] daemons */
			struct vg_store_unlisted ul[16];
			size_t nu = vg_store_unlisted(store, ul, sizeof(ul) / sizeof(ul[0]), 0);
			if (nu)
				family(b, "vigie_storage_unlisted_series", "gauge",
				       "Series recorded on a storage daemon that is not in [storage] "
				       "daemons (their reads answer 503; move them before removing "
				       "a daemon)");
			for (size_t i = 0; i < nu; i++) {
				char lab[256];
				daemon_label(ul[i].address, lab, sizeof(lab));
				label_sample(b, "vigie_storage_unlisted_series", "daemon", lab,
					     ul[i].series);
			}
		}
		{
			struct vg_store_placement pl;
			vg_store_placement(store, &pl);
			if (pl.shared) {
				one(b, "vigie_storage_placement_up", "gauge",
				    "1 if the last call to the shared placement record (the "
				    "state database) succeeded",
				    (double)pl.up);
				one(b, "vigie_storage_placement_lookups_total", "counter",
				    "Series looked up in the shared placement record (not known "
				    "to this collector)",
				    (double)pl.lookups);
				one(b, "vigie_storage_placement_claims_total", "counter",
				    "New series claimed in the shared placement record",
				    (double)pl.claims);
				one(b, "vigie_storage_placement_errors_total", "counter",
				    "Calls to the shared placement record that failed (new series "
				    "wait: their batches are answered RETRY)",
				    (double)pl.errors);
			}
		}
		{
			static const char *const why[] = {"cache_full", "new_series", "no_memory"};
			const uint64_t nwhy[] = {ss.cache_full, ss.series_unreachable,
						 ss.batches_nomem};
			labelled(b, "vigie_store_batches_retry_total", "counter",
				 "Batches the store could not take now (answered RETRY, the "
				 "agent re-sends them), by reason: the write-behind cache "
				 "full, or a series new to the store whose storage daemon "
				 "could not read or create it in time (or cannot create it: "
				 "started without -R), or no memory to cache a value of "
				 "a series already open",
				 "reason", why, nwhy, 3);
		}
		one(b, "vigie_store_values_resent_total", "counter",
		    "Values read back from the journal and written again: a storage "
		    "daemon lost them (it restarted before writing them)",
		    (double)ss.values_resent);
		one(b, "vigie_store_write_retries_total", "counter",
		    "librrd calls refused and retried value by value",
		    (double)ss.write_retries);
		one(b, "vigie_store_journal_segments_kept_total", "counter",
		    "Journal segments kept (*.kept) for values not written",
		    (double)ss.segments_kept);
		one(b, "vigie_store_journal_segments_kept_dropped_total", "counter",
		    "Journal segments with such values deleted: 16 were kept already",
		    (double)ss.segments_kept_dropped);
		summary(b, "vigie_store_write_seconds",
			"Time spent in librrd updates (one per value)",
			ss.write_ns_total, ss.values_written + ss.write_errors);
	}
	vg_api_http_stats(api, &hs);
	one(b, "vigie_api_metrics_series_left_out_total", "counter",
	    "Series left out of /metrics scrapes: named like the collector's own family or another type's",
	    (double)__atomic_load_n(&g_left_out, __ATOMIC_RELAXED));
	one(b, "vigie_api_connections", "gauge",
	    "Open HTTP connections to the API (its queue)",
	    (double)hs.connections);
	one(b, "vigie_api_connections_limit", "gauge",
	    "HTTP connections the API holds at most: 1024, or less when the "
	    "open-file limit is low (docs/operations.md \"Open files\")",
	    (double)hs.conn_limit);
	one(b, "vigie_api_connections_refused_total", "counter",
	    "New HTTP connections closed at once: the connection limit was "
	    "reached or no file descriptor was left",
	    (double)hs.conn_refused);
	{
		static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
		labelled(b, "vigie_api_requests_total", "counter",
			 "API requests answered, by status class", "code",
			 classes, hs.responses + 2, 4);
	}
	one(b, "vigie_api_stream_probes_total", "counter",
	    "Rounds of the prober that ends the streamed replies (alarm "
	    "streams) whose client left: one about every second while a "
	    "stream is open, none otherwise",
	    (double)hs.stream_probes);
	one(b, "vigie_api_requests_in_flight", "gauge",
	    "API requests with a token running now (the per-project cap's count; a "
	    "scrape counts itself)",
	    (double)hs.in_flight);
	{
		static const char *const why[] = {"project_concurrency",
						  "admin_concurrency"};
		labelled(b, "vigie_api_requests_refused_total", "counter",
			 "API requests answered 429 by the per-project cap, by reason: "
			 "a project (or the admin tokens) already had [collector] "
			 "http_max_concurrent_per_project requests in flight and "
			 "http_queue_per_project waiting, or the request waited "
			 "http_queue_wait without a place",
			 "reason", why, hs.cap_refused, 2);
	}
	one(b, "vigie_api_requests_queued", "gauge",
	    "API requests with a token waiting now for a place (over their "
	    "project's cap) or for a worker",
	    (double)hs.queued);
	one(b, "vigie_api_requests_queued_total", "counter",
	    "API requests that found their project's places all taken and "
	    "waited in its queue (answered in turn, or 429 after http_queue_wait)",
	    (double)hs.queued_total);
}

/* The alarm subsystem's self-metrics, when the API has an alarm engine. */
static void alarm_metrics(struct vg_api *api, struct vg_buf *b)
{
	struct vg_api_alarm_stats st;
	const struct vg_alarm_engine_stats *e = &st.engine;

	if (vg_api_alarms_stats(api, &st))
		return;
	one(b, "vigie_alarms_defined", "gauge", "Alarm definitions loaded",
	    (double)e->alarms);
	one(b, "vigie_alarms_instances", "gauge",
	    "Alarm instances: one per alarm and resource it watches",
	    (double)e->instances);
	one(b, "vigie_alarms_series", "gauge",
	    "Series the alarm engine keeps period windows for",
	    (double)e->series);
	one(b, "vigie_alarms_resources", "gauge",
	    "Resources the alarm engine knows (for selectors)",
	    (double)e->resources);
	one(b, "vigie_alarms_samples_total", "counter",
	    "Samples fed to alarm period windows", (double)e->samples);
	one(b, "vigie_alarms_samples_late_total", "counter",
	    "Samples for an alarm period already closed, not used",
	    (double)e->samples_late);
	one(b, "vigie_alarms_cooldowns_total", "counter",
	    "Alarm notifications held back by the alarm's cooldown",
	    (double)e->cooldowns);
	one(b, "vigie_alarms_samples_duplicate_total", "counter",
	    "Samples at or before their series' last sample time, not used",
	    (double)e->samples_duplicate);
	one(b, "vigie_alarms_datapoints_total", "counter",
	    "Periods closed into datapoints", (double)e->datapoints);
	one(b, "vigie_alarms_evaluations_total", "counter",
	    "Alarm evaluations (one per datapoint and watching instance)",
	    (double)e->evaluations);
	one(b, "vigie_alarms_transitions_total", "counter",
	    "Alarm state transitions", (double)e->transitions);
	one(b, "vigie_alarms_state_writes_total", "counter",
	    "Alarm instance state rows written to the alarm store",
	    (double)e->state_writes);
	one(b, "vigie_alarms_quiet_evaluations_total", "counter",
	    "Evaluations that kept a quiet state (ok, all datapoints good) "
	    "quiet: no state row written",
	    (double)e->quiet_evaluations);
	one(b, "vigie_alarms_logged_steps_total", "counter",
	    "Evaluations that changed only an instance's datapoints: appended "
	    "to the step log, no state row written",
	    (double)e->logged_steps);
	one(b, "vigie_alarms_notifications_total", "counter",
	    "Notifications published (transitions and repeats)",
	    (double)e->notifications);
	one(b, "vigie_alarms_store_errors_total", "counter",
	    "alarms.db writes that failed (the changes are kept in memory "
	    "and written later)",
	    (double)e->store_errors);
	one(b, "vigie_alarms_pending_notifications", "gauge",
	    "Notifications held in memory until alarms.db can be written",
	    (double)e->pending);
	one(b, "vigie_alarms_pending_dropped_total", "counter",
	    "Notifications dropped beyond the in-memory bound while alarms.db "
	    "could not be written",
	    (double)e->pending_dropped);
	summary(b, "vigie_alarms_batch_seconds",
		"Time the alarm engine spent on each batch (receiver thread)",
		e->batch_ns_total, e->batches);
	{
		static const char *const outcomes[] = {"delivered", "retry",
						       "failed"};
		const uint64_t n[] = {st.outbox.delivered, st.outbox.retried,
				      st.outbox.failed};
		labelled(b, "vigie_alarms_deliveries_total", "counter",
			 "Webhook, exec and Alertmanager delivery attempts, by "
			 "outcome",
			 "outcome", outcomes, n, 3);
	}
	one(b, "vigie_alarms_silenced_total", "counter",
	    "Notifications not sent because a silence matched (history keeps them)",
	    (double)e->silenced);
	one(b, "vigie_alarms_rate_limited_total", "counter",
	    "Notifications not sent: over [alarms] max_notifications_per_minute "
	    "of their project (history keeps them)",
	    (double)e->rate_limited);
	one(b, "vigie_alarms_outside_time_constraints_total", "counter",
	    "Notifications not sent: outside their alarm's time_constraints "
	    "(history keeps them)",
	    (double)e->outside_time);
	one(b, "vigie_alarms_inhibited_total", "counter",
	    "Notifications not sent: an alarm that inhibits theirs is in alarm "
	    "(history keeps them)",
	    (double)e->inhibited);
	one(b, "vigie_alarms_silences_active", "gauge",
	    "Silences in force now", (double)e->silences_active);
	one(b, "vigie_alarms_webhooks_refused_total", "counter",
	    "Project webhooks refused by the fence (loopback, link-local, "
	    "private or own addresses; counted in failed too)",
	    (double)st.outbox.refused);
	one(b, "vigie_alarms_delivery_store_errors_total", "counter",
	    "Delivery outcomes that could not be recorded in alarms.db",
	    (double)st.outbox.store_errors);
	if (st.have_pub) {
		static const char *const topics[] = {"alarm", "metric"};
		static const char *const drops[] = {"queue_full", "send_error"};
		const uint64_t sent[] = {st.pub.alarm_sent, st.pub.metric_sent};
		const uint64_t dropped[] = {st.pub.dropped_queue,
					    st.pub.send_errors};
		labelled(b, "vigie_alarms_pub_messages_total", "counter",
			 "Messages sent on the PUB socket, by topic class", "topic",
			 topics, sent, 2);
		labelled(b, "vigie_alarms_pub_dropped_total", "counter",
			 "PUB messages dropped by vigie: queue_full (metric "
			 "messages beyond the queue bound) or send_error (nn_send "
			 "failed); nanomsg's own per-subscriber drops are not "
			 "countable",
			 "reason", drops, dropped, 2);
		one(b, "vigie_alarms_pub_queued_bytes", "gauge",
		    "Bytes waiting in the PUB socket's queue",
		    (double)st.pub.queued_bytes);
	}
	if (!st.have_sse)
		return;
	one(b, "vigie_alarms_sse_clients", "gauge",
	    "Clients following GET /v1/alarms/stream", (double)st.sse.subscribers);
	one(b, "vigie_alarms_sse_events_total", "counter",
	    "Events published to the SSE stream", (double)st.sse.published);
	one(b, "vigie_alarms_sse_lost_total", "counter",
	    "SSE events a client fell too far behind to receive",
	    (double)st.sse.lost);
	one(b, "vigie_alarms_sse_evicted_total", "counter",
	    "SSE events dropped from a project's ring (its 1024, or the "
	    "project holding the most when all rings hold 8192)",
	    (double)st.sse.evicted);
	one(b, "vigie_alarms_sse_held_events", "gauge",
	    "SSE events kept for replay, every project's together",
	    (double)st.sse.held);
	one(b, "vigie_alarms_sse_refused_total", "counter",
	    "Alarm streams refused (429): the project already held "
	    "VG_ALARM_HUB_PER_PROJECT (64)",
	    (double)st.sse.refused);
	one(b, "vigie_alarms_sse_evict_looked_total", "counter",
	    "Projects looked at to choose which one loses an SSE event when "
	    "all rings hold 8192: one per such eviction",
	    (double)st.sse.evict_looked);
}

/* Several collectors (vigie/cluster.h): this node's view. */
static void cluster_metrics(struct vg_api *api, struct vg_buf *b)
{
	struct vg_cluster *c = vg_api_cluster(api);
	struct vg_cluster_stats cs;
	struct vg_api_alarm_stats st;
	json_t *nodes;
	size_t i;
	json_t *n;

	if (!c)
		return;
	vg_cluster_get_stats(c, &cs);
	one(b, "vigie_cluster_state_database_up", "gauge",
	    "1 when the last registry round reached the state database",
	    (double)cs.db_ok);
	one(b, "vigie_cluster_nodes_live", "gauge",
	    "Collectors seen alive at the last registry round (this one included)",
	    (double)cs.live_nodes);
	one(b, "vigie_cluster_round_errors_total", "counter",
	    "Registry rounds that could not reach the state database",
	    (double)cs.round_errors);
	one(b, "vigie_cluster_node_name_conflicts_total", "counter",
	    "Registry rounds refused because another collector holds this node's name",
	    (double)cs.name_conflicts);
	nodes = vg_cluster_peers_json(c);
	family(b, "vigie_cluster_node_last_seen_seconds", "gauge",
	       "Age of each live collector's registry row at the last round");
	json_array_foreach(nodes, i, n) {
		vg_buf_printf(b, "vigie_cluster_node_last_seen_seconds{node=\"");
		vg_api_prom_label_value(b, json_string_value(json_object_get(n, "node")));
		vg_buf_printf(b, "\"} ");
		vg_api_prom_value(b, (double)json_integer_value(json_object_get(n, "last_seen_ms_ago")) / 1000);
		vg_buf_printf(b, "\n");
	}
	json_decref(nodes);
	if (!vg_api_alarms_stats(api, &st)) {
		one(b, "vigie_alarms_leases_held", "gauge",
		    "Alarms this collector holds the lease of (evaluates)",
		    (double)st.engine.owned);
		one(b, "vigie_alarms_takeovers_total", "counter",
		    "Alarm leases this collector gained (state reloaded, kept periods replayed)",
		    (double)st.engine.takeovers);
		one(b, "vigie_alarms_leases_taken_total", "counter",
		    "Alarm leases this collector took from another one whose lease had expired (an ownership move)",
		    (double)st.engine.leases_taken);
		one(b, "vigie_alarms_fenced_total", "counter",
		    "Alarm leases found lost at a commit (the decisions dropped)",
		    (double)st.engine.fenced);
		one(b, "vigie_alarms_unseen_periods_total", "counter",
		    "Alarm periods left out: their host's batches reached another collector, not this one",
		    (double)st.engine.unseen_periods);
		one(b, "vigie_alarms_kept_periods_dropped_total", "counter",
		    "Periods of alarms other collectors own dropped beyond the kept bound",
		    (double)st.engine.shadow_dropped);
		one(b, "vigie_alarms_peer_notifications_total", "counter",
		    "Notifications other collectors decided, published on this collector's SSE stream",
		    (double)st.engine.peer_notices);
	}
	one(b, "vigie_cluster_stream_published_total", "counter",
	    "Accepted batches published on the metric stream", (double)cs.published);
	one(b, "vigie_cluster_stream_dropped_total", "counter",
	    "Batches not published: the stream's queue was full or encoding failed",
	    (double)cs.stream_dropped);
	one(b, "vigie_cluster_stream_received_total", "counter",
	    "Peers' batches received on the metric stream (fed to the alarms only)",
	    (double)cs.peer_batches);
	one(b, "vigie_cluster_stream_missed_total", "counter",
	    "Peers' batches missed (gaps in their sequence numbers)",
	    (double)cs.stream_gaps);
	one(b, "vigie_cluster_stream_bad_total", "counter",
	    "Peers' stream messages that could not be read", (double)cs.peer_bad);
	labelled_enum(b, "vigie_cluster_stream_refused_total", "counter",
		      "Peers' stream messages refused, by reason: unsigned, bad "
		      "signature, replayed, stale (outside [cluster] stream_window), "
		      "signed while this collector has no key",
		      "reason", vg_cluster_refusal_name, cs.refused, VG_CLUSTER_REFUSED_N);
	one(b, "vigie_cluster_stream_peers", "gauge",
	    "Peers' metric streams this collector is subscribed to (kept a lease after the rounds stop listing them)",
	    (double)cs.stream_peers);
	one(b, "vigie_cluster_stream_hangups_total", "counter",
	    "Subscriptions to a peer's stream ended: no round listed it for a lease, or it moved",
	    (double)cs.stream_hangups);
	{
		static const char *const result[] = {"ok", "error"};
		const uint64_t nk[] = {cs.keys_reloaded, cs.keys_kept};
		labelled(b, "vigie_cluster_stream_key_reloads_total", "counter",
			 "The metric stream's key files re-read on SIGHUP, by result "
			 "(error: a file unreadable or bad, the keys in use kept)",
			 "result", result, nk, 2);
	}
}

int vg_api_h_metrics(struct vg_http_req *req, struct vg_http_resp *resp)
{
	struct vg_api *api = req->ctx;
	struct vg_resource_filter f = {.state = "active",
				       .project = req->scope_project};
	struct prom_ctx c = {0};
	struct vg_buf b = {0};
	const char *last = "";
	int last_counter = 0;
	struct vg_hmap own, seen;
	char *body;
	size_t len;
	int rc;

	rc = vg_api_scan(api, &f, (size_t)-1, add_resource, &c);
	if (rc) {
		for (size_t i = 0; i < c.n; i++) {
			free(c.s[i].family);
			free(c.s[i].line);
		}
		free(c.s);
		return vg_api_reply_errno(resp, rc, "resources");
	}
	if (!req->scope_project) {
		self_metrics(api, &b);
		alarm_metrics(api, &b);
		cluster_metrics(api, &b);
	}
	/* A series whose name is one of the collector's own families (a
	 * project publishing "collector.batches.received" as a counter) or
	 * whose family another type already holds (a gauge "cpu.time_total"
	 * beside the agents' counter cpu.time) is left out: a second HELP
	 * or TYPE line makes Prometheus refuse the whole scrape, so one
	 * tenant's metric name would blind the operator's monitoring. */
	/* Two names of one resource may give one family ("q.len" and
	 * "q_len", a project's "cpu_util" on its instance beside the agent's
	 * cpu.util), and its labels are the resource's: two samples with one
	 * label set, which the format forbids (Prometheus keeps one and
	 * counts an error each scrape; other scrapers' behaviour is
	 * undefined). The first of the family is kept (the catalogue's, then
	 * scan order), the others left out as above. */
	vg_hmap_init(&own);
	vg_hmap_init(&seen);
	if (b.len && own_families(&b, &own)) {
		rc = -ENOMEM;
		goto out;
	}
	if (c.n)
		qsort(c.s, c.n, sizeof(*c.s), cmp_sample);
	for (size_t i = 0; i < c.n; i++) {
		const char *labels = c.s[i].line + strlen(c.s[i].family);
		size_t llen = (size_t)(strrchr(labels, '}') - labels);
		static char yes = 1;
		int dup = 0;

		if (strcmp(last, c.s[i].family))
			vg_hmap_clear(&seen);
		else
			dup = vg_hmap_get(&seen, labels, llen) != NULL;
		if (dup || vg_hmap_gets(&own, c.s[i].family) ||
		    (!strcmp(last, c.s[i].family) && c.s[i].counter != last_counter)) {
			vg_log_limited(VG_LOG_WARN, &g_left_out,
				       "api: /metrics leaves out a series of family %s: "
				       "the name is the collector's own or another "
				       "type's, or another name of its resource gives "
				       "the same (%.*s)",
				       c.s[i].family,
				       (int)strcspn(c.s[i].line, "\n") > 200
					       ? 200
					       : (int)strcspn(c.s[i].line, "\n"),
				       c.s[i].line);
			continue;
		}
		if (strcmp(last, c.s[i].family)) {
			vg_buf_printf(&b, "# HELP %s ", c.s[i].family);
			if (c.s[i].help)
				help_text(&b, c.s[i].help);
			else
				vg_buf_printf(&b, "vigie metric");
			vg_buf_printf(&b, "%s\n# TYPE %s %s\n",
				      c.s[i].counter ? " (running total)" : "",
				      c.s[i].family,
				      c.s[i].counter ? "counter" : "gauge");
		}
		if (vg_hmap_put(&seen, labels, llen, &yes, NULL)) {
			rc = -ENOMEM;
			goto out;
		}
		vg_buf_append(&b, c.s[i].line, strlen(c.s[i].line));
		last = c.s[i].family;
		last_counter = c.s[i].counter;
	}
out:
	vg_hmap_release(&own);
	vg_hmap_release(&seen);
	for (size_t i = 0; i < c.n; i++) {
		free(c.s[i].family);
		free(c.s[i].line);
	}
	free(c.s);
	if (rc) {
		vg_buf_release(&b);
		return vg_http_reply_error(resp, 503, "out of memory");
	}
	if (!b.len)
		vg_buf_append(&b, "", 0);
	body = vg_buf_take(&b, &len);
	if (!body)
		return vg_http_reply_error(resp, 503, "out of memory");
	return vg_http_reply_raw(resp, 200,
				 "text/plain; version=0.0.4; charset=utf-8", body,
				 len);
}
