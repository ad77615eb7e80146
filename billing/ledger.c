/*
 * ledger.c — the hand-written usage ledger: parse it, turn it into
 * batches, check invoices against its expectations (billing/ledger.h).
 *
 * Format (one record per line, '#' starts a comment):
 *   ratecard FILE                       relative to the ledger's folder
 *   host NAME                           the agent host of every batch
 *   instance ID project=P name=N flavor=F vcpus=V ram_mb=R disk_gb=D
 *   disk ID parent=INSTANCE name=N capacity_gib=G
 *   nic ID parent=INSTANCE name=N
 *   event TIME RESOURCE TYPE [DETAIL-JSON]   travels in the next poll
 *   poll TIME [CHANGE...]               one batch: every present resource
 *   expect MONTH PROJECT RESOURCE ITEM RATE QUANTITY AMOUNT
 *   total MONTH PROJECT AMOUNT
 *   lines MONTH PROJECT COUNT
 *   document MONTH PROJECT invoice|credit-note|usage-statement
 *   tax MONTH PROJECT RATE AMOUNT       the tax line (rate "0.20")
 *   due MONTH PROJECT AMOUNT            the amount due (total + tax)
 *   per-instance MONTH PROJECT INSTANCE AMOUNT   per-instance summary
 *   per-service MONTH PROJECT SERVICE AMOUNT     per-service summary
 *   finalize MONTH TIME                 finalize after the batches so far,
 *                                       with the rate card named so far
 * `host` and `ratecard` may appear again: later polls come from that host,
 * later finalizations and the checks use that card.
 * A CHANGE is RES=running|shutoff (instances), RES=present (disks, nics),
 * RES=gone (reported ended in this poll, absent afterwards), or
 * RES.FIELD=VALUE (flavor, vcpus, ram_mb, disk_gb, capacity_gib, tx, rx).
 * Resources are absent until a change makes them present; they then
 * appear in every poll with their current state.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing/ledger.h"
#include "vigie/clock.h"

#define MAX_RES 256
#define MAX_PENDING 256

struct lres {
	char id[128], name[64], parent[128], project[64], flavor[64];
	int type;
	int present, gone_now, running;
	long long vcpus, ram_mb, disk_gb, capacity, tx, rx;
};

struct pev {
	char res[128];
	int type;
	int64_t t;
	char detail[256];
};

struct lp {
	const char *path;
	int line;
	char *err;
	size_t errlen;
	struct lres res[MAX_RES];
	size_t nres;
	struct pev pend[MAX_PENDING];
	size_t npend;
	struct vg_bill_ledger *l;
};

static int bad(struct lp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct lp *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%d: %s", p->path, p->line, msg);
	return -EINVAL;
}

static struct lres *find(struct lp *p, const char *id)
{
	for (size_t i = 0; i < p->nres; i++)
		if (!strcmp(p->res[i].id, id))
			return &p->res[i];
	return NULL;
}

static int set_field(struct lp *p, struct lres *r, const char *k, const char *v)
{
	char *end;
	long long x = strtoll(v, &end, 10);
	int num = *v && !*end;

	if (!strcmp(k, "project")) snprintf(r->project, sizeof(r->project), "%s", v);
	else if (!strcmp(k, "name")) snprintf(r->name, sizeof(r->name), "%s", v);
	else if (!strcmp(k, "parent")) snprintf(r->parent, sizeof(r->parent), "%s", v);
	else if (!strcmp(k, "flavor")) snprintf(r->flavor, sizeof(r->flavor), "%s", v);
	else if (!num) return bad(p, "%s=%s: not a number", k, v);
	else if (!strcmp(k, "vcpus")) r->vcpus = x;
	else if (!strcmp(k, "ram_mb")) r->ram_mb = x;
	else if (!strcmp(k, "disk_gb")) r->disk_gb = x;
	else if (!strcmp(k, "capacity_gib")) r->capacity = x << 30;
	else if (!strcmp(k, "tx")) r->tx = x;
	else if (!strcmp(k, "rx")) r->rx = x;
	else return bad(p, "unknown field '%s'", k);
	return 0;
}

static int parse_time(struct lp *p, const char *s, int64_t *t)
{
	if (!s || vg_time_parse(s, 0, t) || !strchr(s, '-'))
		return bad(p, "bad time '%s' (ISO 8601 UTC)", s ? s : "");
	return 0;
}

static int event_type(const char *s)
{
	static const char *const names[] = {NULL, "started", "stopped", "suspended",
					    "resumed", "defined", "undefined", "resized", "gap"};
	for (int i = 1; i <= 8; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static int emit_poll(struct lp *p, int64_t t)
{
	struct vg_bill_ledger *l = p->l;
	struct vg_batch *b;
	char num[32];

	struct vg_batch **nb = realloc(l->batches, (l->nbatches + 1) * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	l->batches = nb;
	b = vg_batch_new(l->host ? l->host : "ledger-host", 1, l->nbatches + 1, t);
	if (!b)
		return -ENOMEM;
	l->batches[l->nbatches++] = b;
	for (size_t i = 0; i < p->nres; i++) {
		struct lres *r = &p->res[i];
		if (!r->present && !r->gone_now)
			continue;
		struct vg_resource *vr = vg_batch_resource(b, (uint8_t)r->type, r->id,
							   r->name[0] ? r->name : NULL, r->parent[0] ? r->parent : NULL, t);
		if (!vr)
			return -ENOMEM;
		vr->state = r->gone_now ? VG_RSTATE_ENDED : VG_RSTATE_ACTIVE;
		const char *proj = r->project;
		if (!proj[0] && r->parent[0]) {
			struct lres *pa = find(p, r->parent);
			proj = pa ? pa->project : "";
		}
		if (vg_batch_identity(b, proj[0] ? proj : NULL, NULL,
				      r->type == VG_RT_INSTANCE && r->flavor[0] ? r->flavor : NULL))
			return -ENOMEM;
		if (r->gone_now) {
			r->gone_now = 0;
			continue;
		}
		int rc = 0;
		switch (r->type) {
		case VG_RT_INSTANCE:
			rc = vg_batch_sample(b, "power.state", VG_KIND_GAUGE, r->running ? 1 : 5);
			if (!rc && r->vcpus >= 0) {
				snprintf(num, sizeof(num), "%lld", r->vcpus);
				rc = vg_batch_attr(b, "flavor_vcpus", num);
			}
			if (!rc && r->ram_mb >= 0) {
				snprintf(num, sizeof(num), "%lld", r->ram_mb);
				rc = vg_batch_attr(b, "flavor_memory_mb", num);
			}
			if (!rc && r->disk_gb >= 0) {
				snprintf(num, sizeof(num), "%lld", r->disk_gb);
				rc = vg_batch_attr(b, "flavor_disk_gb", num);
			}
			break;
		case VG_RT_DISK:
			if (r->capacity >= 0)
				rc = vg_batch_sample(b, "disk.capacity", VG_KIND_GAUGE, (double)r->capacity);
			break;
		case VG_RT_NIC:
			rc = vg_batch_sample(b, "net.tx.bytes", VG_KIND_COUNTER, (double)r->tx);
			if (!rc)
				rc = vg_batch_sample(b, "net.rx.bytes", VG_KIND_COUNTER, (double)r->rx);
			break;
		}
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < p->npend; i++)
		if (vg_batch_event(b, p->pend[i].res, (uint8_t)p->pend[i].type, p->pend[i].t,
				   p->pend[i].detail[0] ? p->pend[i].detail : NULL))
			return -ENOMEM;
	p->npend = 0;
	return 0;
}

static int poll_change(struct lp *p, char *tok)
{
	char *eq = strchr(tok, '=');
	if (!eq)
		return bad(p, "change '%s' needs '='", tok);
	*eq = '\0';
	char *val = eq + 1, *dot = strchr(tok, '.');
	if (dot)
		*dot = '\0';
	struct lres *r = find(p, tok);
	if (!r)
		return bad(p, "unknown resource '%s'", tok);
	if (dot)
		return set_field(p, r, dot + 1, val);
	if (!strcmp(val, "gone")) {
		r->present = 0;
		r->gone_now = 1;
	} else if (!strcmp(val, "running") || !strcmp(val, "shutoff")) {
		if (r->type != VG_RT_INSTANCE)
			return bad(p, "%s is not an instance", tok);
		r->present = 1;
		r->running = val[0] == 'r';
	} else if (!strcmp(val, "present")) {
		r->present = 1;
	} else {
		return bad(p, "unknown state '%s'", val);
	}
	return 0;
}

static int add_expect(struct lp *p, const struct vg_bill_ledger_expect *e)
{
	struct vg_bill_ledger *l = p->l;
	struct vg_bill_ledger_expect *n = realloc(l->expect, (l->nexpect + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	l->expect = n;
	l->expect[l->nexpect++] = *e;
	return 0;
}

static char *sdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int parse_line(struct lp *p, char *line, const char *dir)
{
	char *tok[16];
	int n = 0;
	char *save, *s;

	/* an event's JSON detail is the rest of the line after 4 words */
	for (s = strtok_r(line, " \t", &save); s && n < 16; s = strtok_r(NULL, " \t", &save)) {
		tok[n++] = s;
		if (n == 4 && !strcmp(tok[0], "event")) {
			char *rest = strtok_r(NULL, "", &save);
			if (rest)
				tok[n++] = rest;
			break;
		}
	}
	if (n == 0)
		return 0;
	if (!strcmp(tok[0], "ratecard") && n == 2) {
		char buf[1024];
		snprintf(buf, sizeof(buf), "%s/%s", dir, tok[1]);
		free(p->l->ratecard);
		p->l->ratecard = strdup(buf);
		return p->l->ratecard ? 0 : -ENOMEM;
	}
	if (!strcmp(tok[0], "host") && n == 2) {
		free(p->l->host);
		p->l->host = strdup(tok[1]);
		return p->l->host ? 0 : -ENOMEM;
	}
	if ((!strcmp(tok[0], "instance") || !strcmp(tok[0], "disk") ||
	     !strcmp(tok[0], "nic")) &&
	    n >= 2) {
		if (p->nres == MAX_RES || find(p, tok[1]))
			return bad(p, "too many or duplicate resource '%s'", tok[1]);
		struct lres *r = &p->res[p->nres++];
		memset(r, 0, sizeof(*r));
		snprintf(r->id, sizeof(r->id), "%s", tok[1]);
		r->type = tok[0][0] == 'i' ? VG_RT_INSTANCE : tok[0][0] == 'd' ? VG_RT_DISK
									       : VG_RT_NIC;
		r->vcpus = r->ram_mb = r->disk_gb = r->capacity = -1;
		for (int i = 2; i < n; i++) {
			char *eq = strchr(tok[i], '=');
			if (!eq)
				return bad(p, "'%s': expected key=value", tok[i]);
			*eq = '\0';
			int rc = set_field(p, r, tok[i], eq + 1);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (!strcmp(tok[0], "event") && n >= 4) {
		struct pev *e;
		int ty = event_type(tok[3]);
		if (ty < 0)
			return bad(p, "unknown event type '%s'", tok[3]);
		if (p->npend == MAX_PENDING)
			return bad(p, "too many events before a poll");
		e = &p->pend[p->npend++];
		memset(e, 0, sizeof(*e));
		snprintf(e->res, sizeof(e->res), "%s", tok[2]);
		e->type = ty;
		if (n == 5)
			snprintf(e->detail, sizeof(e->detail), "%s", tok[4]);
		return parse_time(p, tok[1], &e->t);
	}
	if (!strcmp(tok[0], "poll") && n >= 2) {
		int64_t t;
		int rc = parse_time(p, tok[1], &t);
		for (int i = 2; i < n && !rc; i++)
			rc = poll_change(p, tok[i]);
		return rc ? rc : emit_poll(p, t);
	}
	struct vg_bill_ledger_expect e = {0};
	e.lineno = p->line;
	if (n >= 3 && vg_bill_month_parse(tok[1], &e.month))
		return bad(p, "bad month '%s'", tok[1]);
	if (!strcmp(tok[0], "expect") && n == 8) {
		e.kind = 'e';
		e.project = sdup(tok[2]);
		e.resource = sdup(tok[3]);
		e.item = sdup(tok[4]);
		e.rate = sdup(tok[5]);
		e.quantity = sdup(tok[6]);
		e.amount = sdup(tok[7]);
		return add_expect(p, &e);
	}
	if (!strcmp(tok[0], "total") && n == 4) {
		e.kind = 't';
		e.project = sdup(tok[2]);
		e.amount = sdup(tok[3]);
		return add_expect(p, &e);
	}
	if (!strcmp(tok[0], "finalize") && n == 3) {
		struct vg_bill_ledger *l = p->l;
		struct vg_bill_ledger_final *nf = realloc(l->final, (l->nfinal + 1) * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		l->final = nf;
		nf = &l->final[l->nfinal];
		memset(nf, 0, sizeof(*nf));
		nf->after = l->nbatches;
		nf->month = e.month;
		if (!l->ratecard)
			return bad(p, "finalize before any ratecard");
		if (!(nf->ratecard = strdup(l->ratecard)))
			return -ENOMEM;
		l->nfinal++;
		return parse_time(p, tok[2], &nf->at_ms);
	}
	if ((!strcmp(tok[0], "document") && n == 4) || (!strcmp(tok[0], "due") && n == 4) ||
	    (!strcmp(tok[0], "tax") && n == 5) || (!strcmp(tok[0], "per-instance") && n == 5) ||
	    (!strcmp(tok[0], "per-service") && n == 5)) {
		e.kind = 'x';
		e.item = sdup(tok[0][0] == 'p' ? tok[0] + 4 : tok[0]);
		e.project = sdup(tok[2]);
		if (tok[0][0] == 't') {
			e.rate = sdup(tok[3]);
			e.amount = sdup(tok[4]);
		} else if (n == 5) {
			e.resource = sdup(tok[3]);
			e.amount = sdup(tok[4]);
		} else {
			e.amount = sdup(tok[3]);
		}
		return add_expect(p, &e);
	}
	if (!strcmp(tok[0], "lines") && n == 4) {
		e.kind = 'n';
		e.project = sdup(tok[2]);
		e.nlines = (size_t)strtoul(tok[3], NULL, 10);
		return add_expect(p, &e);
	}
	return bad(p, "cannot read this record ('%s' with %d fields)", tok[0], n);
}

int vg_bill_ledger_load(const char *path, struct vg_bill_ledger **out, char *err, size_t errlen)
{
	struct lp *p = calloc(1, sizeof(*p));
	char line[2048], dir[1024];
	FILE *f;
	int rc = 0;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	if (!(f = fopen(path, "r"))) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(p);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	p->path = path;
	p->err = err;
	p->errlen = errlen;
	p->l = calloc(1, sizeof(*p->l));
	if (!p->l)
		rc = -ENOMEM;
	while (!rc && fgets(line, sizeof(line), f)) {
		p->line++;
		char *h = strchr(line, '#');
		if (h && strncmp(line, "event", 5))
			*h = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		rc = parse_line(p, line, dir);
	}
	fclose(f);
	if (!rc && p->npend)
		rc = bad(p, "events after the last poll");
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", path);
		vg_bill_ledger_free(p->l);
	} else {
		*out = p->l;
	}
	free(p);
	return rc;
}

void vg_bill_ledger_free(struct vg_bill_ledger *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nbatches; i++)
		vg_batch_free(l->batches[i]);
	for (size_t i = 0; i < l->nexpect; i++) {
		struct vg_bill_ledger_expect *e = &l->expect[i];
		free(e->project);
		free(e->resource);
		free(e->item);
		free(e->rate);
		free(e->quantity);
		free(e->amount);
	}
	free(l->expect);
	for (size_t i = 0; i < l->nfinal; i++)
		free(l->final[i].ratecard);
	free(l->final);
	free(l->batches);
	free(l->ratecard);
	free(l->host);
	free(l);
}

size_t vg_bill_ledger_months(const struct vg_bill_ledger *l, struct vg_bill_month *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < l->nexpect; i++) {
		size_t k;
		for (k = 0; k < n; k++)
			if (!vg_bill_month_cmp(out[k], l->expect[i].month))
				break;
		if (k == n && n < max)
			out[n++] = l->expect[i].month;
	}
	for (size_t i = 1; i < n; i++) /* insertion sort */
		for (size_t k = i; k > 0 && vg_bill_month_cmp(out[k - 1], out[k]) > 0; k--) {
			struct vg_bill_month t = out[k];
			out[k] = out[k - 1];
			out[k - 1] = t;
		}
	return n;
}

static struct vg_bill_invoice *inv_of(struct vg_bill_invoice *const *inv, size_t n, const char *project)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(inv[i]->project, project))
			return inv[i];
	return NULL;
}

static void qtext(const struct vg_bill_invoice_line *l, char *buf, size_t len)
{
	buf[0] = '-';
	vg_bill_u128_decimal(l->qty, l->qty_den, 6, buf + 1, len - 1);
	if (!(l->qty_neg && l->qty))
		memmove(buf, buf + 1, strlen(buf + 1) + 1);
}

int vg_bill_ledger_check(const struct vg_bill_ledger *l, struct vg_bill_month m,
			 struct vg_bill_invoice *const *inv, size_t n, FILE *report)
{
	int bad_n = 0;
	char ms[16];

	vg_bill_month_format(m, ms, sizeof(ms));
	for (size_t i = 0; i < l->nexpect; i++) {
		const struct vg_bill_ledger_expect *e = &l->expect[i];
		if (vg_bill_month_cmp(e->month, m))
			continue;
		struct vg_bill_invoice *v = inv_of(inv, n, e->project);
		char got[64], q[64], r[48];
		if (e->kind == 'x') {
			char want[96], got2[96] = "";
			snprintf(want, sizeof(want), "%s%s%s", e->rate ? e->rate : "",
				 e->rate ? " " : "", e->amount);
			if (!v) {
				snprintf(got2, sizeof(got2), "no document");
			} else if (!strcmp(e->item, "document")) {
				static const char *const dn[] = {"usage-statement", "invoice", "credit-note"};
				snprintf(got2, sizeof(got2), "%s", dn[v->doc >= 0 && v->doc <= 2 ? v->doc : 0]);
			} else if (!strcmp(e->item, "tax")) {
				char a[40];
				vg_bill_rate_format(v->has_tax ? v->tax_rate_micro : 0, 2, r, sizeof(r));
				vg_bill_money_format(v->tax_micro, v->digits, a, sizeof(a));
				snprintf(got2, sizeof(got2), "%s %s", v->has_tax ? r : "none", a);
			} else if (!strcmp(e->item, "due")) {
				vg_bill_money_format(v->amount_due_micro, v->digits, got2, sizeof(got2));
			} else {
				int64_t sum = 0;
				for (size_t k = 0; k < v->nlines; k++) {
					const struct vg_bill_invoice_line *x = &v->lines[k];
					const char *sv = x->adjustment_for                     ? "adjustment"
							 : x->usage_type == VG_BILL_UT_COMPUTE ? "compute"
							 : x->usage_type == VG_BILL_UT_STORAGE ? "storage"
											       : "network";
					const char *inst = x->instance_id ? x->instance_id : x->resource_id;
					if (!strcmp(e->resource, e->item[0] == 'i' ? inst : sv))
						sum += x->amount_micro;
				}
				vg_bill_money_format(sum, v->digits, got2, sizeof(got2));
			}
			if (strcmp(got2, want)) {
				bad_n++;
				if (report)
					fprintf(report, "line %d: %s %s: %s%s%s %s, expected %s\n",
						e->lineno, ms, e->project, e->item,
						e->resource ? " " : "", e->resource ? e->resource : "",
						got2, want);
			}
			continue;
		}
		if (e->kind == 't' || e->kind == 'n') {
			if (e->kind == 't')
				vg_bill_money_format(v ? v->total_micro : 0, v ? v->digits : 2, got, sizeof(got));
			else
				snprintf(got, sizeof(got), "%zu", v ? v->nlines : 0);
			char want[32];
			if (e->kind == 'n')
				snprintf(want, sizeof(want), "%zu", e->nlines);
			else
				snprintf(want, sizeof(want), "%s", e->amount);
			if (strcmp(got, want)) {
				bad_n++;
				if (report)
					fprintf(report, "line %d: %s %s: %s %s, expected %s\n",
						e->lineno, ms, e->project,
						e->kind == 't' ? "total" : "lines", got, want);
			}
			continue;
		}
		const struct vg_bill_invoice_line *hit = NULL;
		for (size_t k = 0; v && k < v->nlines; k++) {
			const struct vg_bill_invoice_line *x = &v->lines[k];
			vg_bill_rate_format(x->rate_micro, v->digits, r, sizeof(r));
			if (!strcmp(x->resource_id, e->resource) && !strcmp(x->item, e->item) &&
			    !strcmp(r, e->rate) && !x->adjustment_for) {
				hit = x;
				break;
			}
		}
		if (!hit) {
			bad_n++;
			if (report)
				fprintf(report, "line %d: %s %s: no line %s %s at %s\n", e->lineno,
					ms, e->project, e->resource, e->item, e->rate);
			continue;
		}
		qtext(hit, q, sizeof(q));
		vg_bill_money_format(hit->amount_micro, v->digits, got, sizeof(got));
		if (strcmp(q, e->quantity) || strcmp(got, e->amount)) {
			bad_n++;
			if (report)
				fprintf(report, "line %d: %s %s %s %s at %s: quantity %s amount "
						"%s, expected %s and %s\n",
					e->lineno, ms, e->project,
					e->resource, e->item, e->rate, q, got, e->quantity,
					e->amount);
		}
	}
	return bad_n;
}
