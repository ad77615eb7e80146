/*
 * wire.c — encoder and decoder of the agent -> collector protocol.
 *
 * Layout (docs/protocol.md has it byte by byte), little-endian:
 *   header   48 bytes: magic "VGB1", version u8, type u8, flags u16
 *            (bit 0 = signed: a 32-byte HMAC trailer follows the events;
 *            the decoders skip it, sign.c checks it),
 *            stream u64, seq u64, time_ms i64,
 *            nstrings u32, nresources u32, nsamples u32, nevents u32
 *   host     u32 string index
 *   strings  nstrings x (u16 length, bytes)
 *   resources nresources x 44 bytes (see put_resource)
 *   attrs    per resource, nattrs x (key u32, value u32), after that resource
 *   samples  nsamples x 13 bytes (metric u32, kind u8, value f64)
 *   events   nevents x 17 bytes (resource u32, type u8, time_ms i64, detail u32)
 *
 * The encoder interns strings in a small open-addressing hash table so a
 * metric name repeated over every resource is stored once. The decoder
 * checks every count against the bytes that remain before allocating, so
 * a forged count cannot make it allocate more than the message could
 * describe; every string index and enum is range-checked; values must be
 * finite. Decoding either returns a whole batch or nothing.
 *
 * A batch over a limit is not lost: vg_wire_split cuts it, at resource
 * and event boundaries and in order, into batches that each fit, and
 * leaves out, counted, only what fits no message alone or breaks the
 * name rules. The encoder and the split size a message with the same
 * functions (msg_*: what each item adds, each distinct string once per
 * message) and judge names with the same per-item rules (attr_ok...), so
 * a part the split makes is one the encoder takes, within its bound.
 *
 * Names (docs/protocol.md "Names"): both ends apply check_names, so what
 * the decoder accepts the registry and the store can hold, and what the
 * encoder produces the decoder accepts.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/hash.h"
#include "vigie/name.h"
#include "vigie/wire.h"

#define HDR_LEN 48
#define RES_LEN 44
#define SAMPLE_LEN 13
#define EVENT_LEN 17
#define MSG_BATCH 1

/* ---- little-endian helpers ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}
static void putf64(uint8_t *p, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	put64(p, v);
}
static double getf64(const uint8_t *p)
{
	uint64_t v = get64(p);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

/* ---- names ---- */

/* A name that must be there: host, resource id, metric, attribute key,
 * an event's resource. */
static int name_ok(const char *s)
{
	return s && vg_name_valid(s);
}

/* An identity name that may be absent or empty: parent, project, user,
 * flavor (each also names things: at most VG_NAME_MAX bytes). */
static int opt_name_ok(const char *s)
{
	return !s || !*s || vg_name_valid(s);
}

/* Free text that may be absent or empty: a display name, an attribute's
 * value. */
static int opt_text_ok(const char *s)
{
	return !s || !*s || vg_text_valid(s, VG_WIRE_MAX_STRING);
}

/* Whether one item's strings follow the rules: a resource's own six (its
 * attributes and samples are items of their own), an attribute, a
 * sample, an event (its detail is free text, only bounded). The encoder
 * refuses a batch with one that does not (check_names); vg_wire_split
 * leaves that item out. */
static int resource_names_ok(const struct vg_resource *r)
{
	return name_ok(r->id) && opt_text_ok(r->name) && opt_name_ok(r->parent) &&
	       opt_name_ok(r->project) && opt_name_ok(r->user) &&
	       opt_name_ok(r->flavor);
}

static int attr_ok(const struct vg_attr *a)
{
	return name_ok(a->key) && opt_text_ok(a->value);
}

static int sample_ok(const struct vg_sample *s)
{
	return name_ok(s->metric);
}

static int event_ok(const struct vg_event *e)
{
	return name_ok(e->resource) &&
	       (!e->detail || strlen(e->detail) <= VG_WIRE_MAX_STRING);
}

/* Every name of b follows the rules: 0 or -EILSEQ. (The encoder's
 * check; the decoder classifies each string of its table once instead.
 * An event's detail over the bound never gets here: interning it already
 * failed with -EINVAL.) */
static int check_names(const struct vg_batch *b)
{
	if (!name_ok(b->host))
		return -EILSEQ;
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		const struct vg_attr *a = vg_resource_attrs(b, r);

		if (!resource_names_ok(r))
			return -EILSEQ;
		for (uint32_t k = 0; k < r->nattrs; k++)
			if (!attr_ok(&a[k]))
				return -EILSEQ;
	}
	for (size_t i = 0; i < b->nsamples; i++)
		if (!sample_ok(&b->samples[i]))
			return -EILSEQ;
	for (size_t i = 0; i < b->nevents; i++)
		if (!event_ok(&b->events[i]))
			return -EILSEQ;
	return 0;
}

/* The decoder's view of the same rules: each string of a message's table
 * is classified once (a metric repeated over thousands of resources is
 * checked once), then each field checks its string's class. */
enum { C_NAME = 1,
       C_TEXT = 2,
       C_EMPTY = 4 };

static uint8_t class_of(const char *s, size_t len)
{
	if (!len)
		return C_EMPTY;
	if (!vg_text_valid(s, VG_WIRE_MAX_STRING))
		return 0;
	return (uint8_t)(C_TEXT | (len <= VG_NAME_MAX ? C_NAME : 0));
}

/* Whether string index i may fill a field that accepts `want` (a mask of
 * classes; optional fields also take VG_WIRE_NO_STRING). Indices are
 * range-checked by str_at before. */
static int class_ok(const uint8_t *cls, uint32_t i, unsigned want, int optional)
{
	if (i == VG_WIRE_NO_STRING)
		return optional;
	return (cls[i] & want) != 0;
}

/* ---- encoder: string interning ---- */

struct strtab {
	const char **strs; /* index -> string */
	uint32_t n, cap;
	uint32_t *slots; /* hash -> index+1 (0 = empty) */
	uint32_t nslots;
	size_t bytes; /* encoded size of all strings */
};

static uint32_t hash_str(const char *s)
{
	uint64_t h = vg_fnv1a(VG_FNV_OFFSET, s);

	return (uint32_t)(h ^ (h >> 32));
}

static int strtab_rehash(struct strtab *t, uint32_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->n; i++) {
		uint32_t h = hash_str(t->strs[i]) & (nslots - 1);
		while (slots[h])
			h = (h + 1) & (nslots - 1);
		slots[h] = i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	return 0;
}

/* Intern s; *idx gets its index (VG_WIRE_NO_STRING for NULL). */
static int strtab_add(struct strtab *t, const char *s, uint32_t *idx)
{
	if (!s) {
		*idx = VG_WIRE_NO_STRING;
		return 0;
	}
	size_t len = strlen(s);
	if (len > VG_WIRE_MAX_STRING)
		return -EINVAL;
	if ((t->n + 1) * 2 > t->nslots) {
		int rc = strtab_rehash(t, t->nslots ? t->nslots * 2 : 256);
		if (rc)
			return rc;
	}
	uint32_t h = hash_str(s) & (t->nslots - 1);
	while (t->slots[h]) {
		if (!strcmp(t->strs[t->slots[h] - 1], s)) {
			*idx = t->slots[h] - 1;
			return 0;
		}
		h = (h + 1) & (t->nslots - 1);
	}
	if (t->n >= VG_WIRE_MAX_STRINGS)
		return -E2BIG;
	if (t->n == t->cap) {
		uint32_t ncap = t->cap ? t->cap * 2 : 128;
		const char **p = realloc(t->strs, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->strs = p;
		t->cap = ncap;
	}
	t->strs[t->n] = s;
	t->slots[h] = t->n + 1;
	*idx = t->n++;
	t->bytes += 2 + len;
	return 0;
}

static void strtab_free(struct strtab *t)
{
	free(t->strs);
	free(t->slots);
}

/* ---- what each item adds to a message ---- */

/* A message's encoded size, item by item: the fixed part of each item
 * (header and host index, 44 bytes a resource, 8 an attribute, 13 a
 * sample, 17 an event) and each distinct string once (2 + its length).
 * The encoder sums a batch with it before writing; vg_wire_split sums
 * each part with it, so a part it makes encodes within its bound. Each
 * msg_* function interns the item's strings, gives their indices in
 * idx (in the order the encoder writes them) and returns 0, or what
 * strtab_add returned (the message then holds part of the item). */
struct msg_size {
	struct strtab t;
	size_t fixed; /* bytes outside the string table */
};

static size_t msg_bytes(const struct msg_size *m)
{
	return m->fixed + m->t.bytes;
}

static int msg_strings(struct msg_size *m, const char *const *strs, size_t n,
		       uint32_t *idx)
{
	for (size_t i = 0; i < n; i++) {
		int rc = strtab_add(&m->t, strs[i], &idx[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* An empty message of this host (the header, its index and its string);
 * any earlier accounting of m is dropped. */
static int msg_begin(struct msg_size *m, const char *host, uint32_t idx[1])
{
	strtab_free(&m->t);
	memset(m, 0, sizeof(*m));
	m->fixed = HDR_LEN + 4;
	return msg_strings(m, &host, 1, idx);
}

static void msg_end(struct msg_size *m)
{
	strtab_free(&m->t);
	memset(m, 0, sizeof(*m));
}

/* A resource without its attributes and samples (items of their own). */
static int msg_resource(struct msg_size *m, const struct vg_resource *r,
			uint32_t idx[6])
{
	const char *strs[6] = {r->id, r->name, r->parent,
			       r->project, r->user, r->flavor};

	m->fixed += RES_LEN;
	return msg_strings(m, strs, 6, idx);
}

static int msg_attr(struct msg_size *m, const struct vg_attr *a, uint32_t idx[2])
{
	const char *strs[2] = {a->key, a->value};

	m->fixed += 8;
	return msg_strings(m, strs, 2, idx);
}

static int msg_sample(struct msg_size *m, const struct vg_sample *s,
		      uint32_t idx[1])
{
	m->fixed += SAMPLE_LEN;
	return msg_strings(m, &s->metric, 1, idx);
}

static int msg_event(struct msg_size *m, const struct vg_event *e,
		     uint32_t idx[2])
{
	const char *strs[2] = {e->resource, e->detail};

	m->fixed += EVENT_LEN;
	return msg_strings(m, strs, 2, idx);
}

static int encode(const struct vg_batch *b, uint8_t **out, size_t *len,
		  int check)
{
	struct msg_size m = {0};
	uint32_t *idx = NULL; /* string indices, in encoding order */
	size_t nidx = 0, need_idx, total;
	uint8_t *buf = NULL, *p;
	int rc;

	*out = NULL;
	*len = 0;
	if (b->nres > VG_WIRE_MAX_RESOURCES || b->nsamples > VG_WIRE_MAX_SAMPLES ||
	    b->nevents > VG_WIRE_MAX_EVENTS)
		return -E2BIG;
	for (size_t i = 0; i < b->nres; i++)
		if (b->res[i].nattrs > VG_WIRE_MAX_ATTRS_PER_RES)
			return -E2BIG;
	/* 1 host + 6 per resource + 2 per attr + 1 per sample + 2 per event */
	need_idx = 1 + 6 * b->nres + 2 * b->nattrs + b->nsamples + 2 * b->nevents;
	idx = malloc(need_idx * sizeof(*idx));
	if (!idx)
		return -ENOMEM;

	if ((rc = msg_begin(&m, b->host, &idx[nidx])))
		goto fail;
	nidx += 1;
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		const struct vg_attr *a = vg_resource_attrs(b, r);

		if ((rc = msg_resource(&m, r, &idx[nidx])))
			goto fail;
		nidx += 6;
		for (uint32_t k = 0; k < r->nattrs; k++, nidx += 2)
			if ((rc = msg_attr(&m, &a[k], &idx[nidx])))
				goto fail;
	}
	for (size_t i = 0; i < b->nsamples; i++, nidx++)
		if ((rc = msg_sample(&m, &b->samples[i], &idx[nidx])))
			goto fail;
	for (size_t i = 0; i < b->nevents; i++, nidx += 2)
		if ((rc = msg_event(&m, &b->events[i], &idx[nidx])))
			goto fail;
	if (check && (rc = check_names(b)))
		goto fail;

	total = msg_bytes(&m);
	if (total > VG_WIRE_MAX_MESSAGE) {
		rc = -E2BIG;
		goto fail;
	}
	buf = malloc(total);
	if (!buf) {
		rc = -ENOMEM;
		goto fail;
	}
	p = buf;
	memcpy(p, VG_WIRE_BATCH_MAGIC, 4);
	p[4] = VG_WIRE_VERSION;
	p[5] = MSG_BATCH;
	put16(p + 6, 0);
	put64(p + 8, b->stream);
	put64(p + 16, b->seq);
	put64(p + 24, (uint64_t)b->time_ms);
	put32(p + 32, m.t.n);
	put32(p + 36, (uint32_t)b->nres);
	put32(p + 40, (uint32_t)b->nsamples);
	put32(p + 44, (uint32_t)b->nevents);
	p += HDR_LEN;
	nidx = 0;
	put32(p, idx[nidx++]);
	p += 4;
	for (uint32_t i = 0; i < m.t.n; i++) {
		size_t l = strlen(m.t.strs[i]);
		put16(p, (uint16_t)l);
		memcpy(p + 2, m.t.strs[i], l);
		p += 2 + l;
	}
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		p[0] = r->type;
		p[1] = r->state;
		put16(p + 2, (uint16_t)r->nattrs);
		for (int k = 0; k < 6; k++)
			put32(p + 4 + 4 * k, idx[nidx++]);
		put64(p + 28, (uint64_t)r->time_ms);
		put32(p + 36, r->nsamples);
		put32(p + 40, 0); /* reserved */
		p += RES_LEN;
		for (uint32_t k = 0; k < r->nattrs; k++) {
			put32(p, idx[nidx++]);
			put32(p + 4, idx[nidx++]);
			p += 8;
		}
	}
	for (size_t i = 0; i < b->nsamples; i++) {
		const struct vg_sample *s = &b->samples[i];
		put32(p, idx[nidx++]);
		p[4] = s->kind;
		putf64(p + 5, s->value);
		p += SAMPLE_LEN;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		const struct vg_event *e = &b->events[i];
		put32(p, idx[nidx++]);
		p[4] = e->type;
		put64(p + 5, (uint64_t)e->time_ms);
		put32(p + 13, idx[nidx++]);
		p += EVENT_LEN;
	}
	free(idx);
	msg_end(&m);
	*out = buf;
	*len = total;
	return 0;
fail:
	free(idx);
	msg_end(&m);
	return rc;
}

int vg_wire_encode(const struct vg_batch *b, uint8_t **out, size_t *len)
{
	return encode(b, out, len, 1);
}

int vg_wire_encode_unchecked(const struct vg_batch *b, uint8_t **out,
			     size_t *len)
{
	return encode(b, out, len, 0);
}

/* ---- splitting a batch that does not fit one message ---- */

/* The part being filled: its batch and its size so far (msg_size, so
 * each distinct string counts once, as the encoder writes it). */
struct part {
	struct vg_batch *b;
	struct msg_size m;
	int nomem; /* the table could not grow: the split fails */
};

/* An item's msg_* answer for p: 0, or -E2BIG (the table is full, or it
 * could not grow: nomem then fails the split). Every string given here
 * passed the name rules: at most VG_WIRE_MAX_STRING bytes. */
static int part_item(struct part *p, int rc)
{
	if (rc == -ENOMEM)
		p->nomem = 1;
	return rc ? -E2BIG : 0;
}

/* Add resource r of src (its attributes and samples that follow the name
 * rules, at most VG_WIRE_MAX_ATTRS_PER_RES attributes) to p's accounting:
 * 0 if the part still fits max_bytes and every count limit, -E2BIG if not
 * (p's table then holds strings of r: the caller starts a new part). */
static int part_fits_resource(struct part *p, const struct vg_batch *src,
			      const struct vg_resource *r, size_t max_bytes,
			      uint32_t *nattrs, uint32_t *nsamples)
{
	const struct vg_attr *a = vg_resource_attrs(src, r);
	const struct vg_sample *s = vg_resource_samples(src, r);
	uint32_t idx[6];

	*nattrs = *nsamples = 0;
	if (p->b->nres + 1 > VG_WIRE_MAX_RESOURCES ||
	    part_item(p, msg_resource(&p->m, r, idx)))
		return -E2BIG;
	for (uint32_t k = 0; k < r->nattrs && *nattrs < VG_WIRE_MAX_ATTRS_PER_RES; k++) {
		if (!attr_ok(&a[k]))
			continue;
		if (part_item(p, msg_attr(&p->m, &a[k], idx)))
			return -E2BIG;
		(*nattrs)++;
	}
	for (uint32_t k = 0; k < r->nsamples; k++) {
		if (!sample_ok(&s[k]))
			continue;
		if (part_item(p, msg_sample(&p->m, &s[k], idx)))
			return -E2BIG;
		(*nsamples)++;
	}
	if (msg_bytes(&p->m) > max_bytes ||
	    p->b->nsamples + *nsamples > VG_WIRE_MAX_SAMPLES)
		return -E2BIG;
	return 0;
}

/* Copy resource r of src into p's batch, with the attributes and
 * samples part_fits_resource counted. 0 or -ENOMEM. */
static int part_copy_resource(struct part *p, const struct vg_batch *src,
			      const struct vg_resource *r)
{
	const struct vg_attr *a = vg_resource_attrs(src, r);
	const struct vg_sample *s = vg_resource_samples(src, r);
	struct vg_resource *d;
	uint32_t na = 0;
	int rc;

	d = vg_batch_resource(p->b, r->type, r->id, r->name, r->parent, r->time_ms);
	if (!d)
		return -ENOMEM;
	d->state = r->state;
	if ((rc = vg_batch_identity(p->b, r->project, r->user, r->flavor)))
		return rc;
	for (uint32_t k = 0; k < r->nattrs && na < VG_WIRE_MAX_ATTRS_PER_RES; k++) {
		if (!attr_ok(&a[k]))
			continue;
		if ((rc = vg_batch_attr(p->b, a[k].key, a[k].value)))
			return rc;
		na++;
	}
	for (uint32_t k = 0; k < r->nsamples; k++) {
		if (!sample_ok(&s[k]))
			continue;
		if ((rc = vg_batch_sample(p->b, s[k].metric, s[k].kind, s[k].value)))
			return rc;
	}
	return 0;
}

static int part_fits_event(struct part *p, const struct vg_event *e,
			   size_t max_bytes)
{
	uint32_t idx[2];

	if (p->b->nevents + 1 > VG_WIRE_MAX_EVENTS ||
	    part_item(p, msg_event(&p->m, e, idx)))
		return -E2BIG;
	return msg_bytes(&p->m) > max_bytes ? -E2BIG : 0;
}

static int part_empty(const struct part *p)
{
	return !p->b->nres && !p->b->nevents;
}

/* Start p's accounting over for an empty part: its table holds the host
 * only. 0, or what strtab_add returned (nomem set on -ENOMEM). */
static int part_restart(struct part *p, const char *host)
{
	uint32_t idx[1];
	int rc = msg_begin(&p->m, host, idx);

	if (rc == -ENOMEM)
		p->nomem = 1;
	return rc;
}

/* Append the part being filled (if any) to the list and open the next
 * one: sequence number b->seq + its index, the same host, stream, time. */
static int part_next(struct part *p, const struct vg_batch *b,
		     struct vg_batch ***parts, size_t *n, size_t *cap)
{
	if (p->b) {
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 4;
			struct vg_batch **np = realloc(*parts, ncap * sizeof(*np));
			if (!np)
				return -ENOMEM;
			*parts = np;
			*cap = ncap;
		}
		(*parts)[(*n)++] = p->b;
		p->b = NULL;
	}
	p->b = vg_batch_new(b->host, b->stream, b->seq + *n, b->time_ms);
	if (!p->b)
		return -ENOMEM;
	p->b->published = b->published;
	return part_restart(p, b->host);
}

int vg_wire_split(const struct vg_batch *b, size_t max_bytes,
		  struct vg_batch ***parts, size_t *nparts,
		  struct vg_wire_split_stats *st)
{
	struct part p = {0};
	size_t n = 0, cap = 0;
	int rc;

	*parts = NULL;
	*nparts = 0;
	memset(st, 0, sizeof(*st));
	if (!max_bytes || max_bytes > VG_WIRE_MAX_MESSAGE)
		max_bytes = VG_WIRE_MAX_MESSAGE;
	if (!name_ok(b->host))
		return -EILSEQ;
	if ((rc = part_next(&p, b, parts, &n, &cap)))
		goto fail;
	for (size_t i = 0; i < b->nres; i++) {
		const struct vg_resource *r = &b->res[i];
		uint32_t na, ns;

		if (resource_names_ok(r)) {
			if (!part_fits_resource(&p, b, r, max_bytes, &na, &ns))
				goto copy;
			if (!part_empty(&p)) {
				if ((rc = part_next(&p, b, parts, &n, &cap)))
					goto fail;
				if (!part_fits_resource(&p, b, r, max_bytes, &na, &ns))
					goto copy;
			}
			/* r fits no message on its own */
			if ((rc = part_restart(&p, b->host)))
				goto fail;
		}
		st->resources++;
		st->attrs += r->nattrs;
		st->samples += r->nsamples;
		continue;
	copy:
		st->attrs += r->nattrs - na;
		st->samples += r->nsamples - ns;
		if ((rc = part_copy_resource(&p, b, r)))
			goto fail;
	}
	for (size_t i = 0; i < b->nevents; i++) {
		const struct vg_event *e = &b->events[i];

		if (event_ok(e)) {
			if (!part_fits_event(&p, e, max_bytes))
				goto add;
			if (!part_empty(&p)) {
				if ((rc = part_next(&p, b, parts, &n, &cap)))
					goto fail;
				if (!part_fits_event(&p, e, max_bytes))
					goto add;
			}
			if ((rc = part_restart(&p, b->host)))
				goto fail;
		}
		st->events++;
		continue;
	add:
		if ((rc = vg_batch_event(p.b, e->resource, e->type, e->time_ms,
					 e->detail)))
			goto fail;
	}
	if (p.nomem) {
		rc = -ENOMEM;
		goto fail;
	}
	/* the last part; an empty one only if it is the only one */
	if (part_empty(&p) && n) {
		vg_batch_free(p.b);
		p.b = NULL;
	} else if ((rc = part_next(&p, b, parts, &n, &cap))) {
		goto fail;
	}
	vg_batch_free(p.b);
	msg_end(&p.m);
	*nparts = n;
	return 0;
fail:
	vg_batch_free(p.b);
	msg_end(&p.m);
	for (size_t i = 0; i < n; i++)
		vg_batch_free((*parts)[i]);
	free(*parts);
	*parts = NULL;
	return rc;
}

/* ---- decoder ---- */

struct reader {
	const uint8_t *p, *end;
};

static int need(const struct reader *r, size_t n)
{
	return (size_t)(r->end - r->p) >= n ? 0 : -EBADMSG;
}

int vg_wire_peek(const void *buf, size_t len, uint64_t *stream, uint64_t *seq)
{
	const uint8_t *p = buf;

	if (len < 4 || memcmp(p, "VGB", 3))
		return len < 4 ? -EBADMSG : -EPROTONOSUPPORT;
	if (len < HDR_LEN)
		return -EBADMSG;
	if (p[3] != '1' || p[4] != VG_WIRE_VERSION || p[5] != MSG_BATCH)
		return -EPROTONOSUPPORT;
	if (stream)
		*stream = get64(p + 8);
	if (seq)
		*seq = get64(p + 16);
	return 0;
}

/* Resolve string index i from the decoded table (NO_STRING -> NULL). */
static int str_at(const char **tab, uint32_t n, uint32_t i, const char **out,
		  int allow_null)
{
	if (i == VG_WIRE_NO_STRING) {
		if (!allow_null)
			return -EBADMSG;
		*out = NULL;
		return 0;
	}
	if (i >= n)
		return -EBADMSG;
	*out = tab[i];
	return 0;
}

int vg_wire_decode(const void *buf, size_t len, struct vg_batch **out)
{
	struct reader r = {buf, (const uint8_t *)buf + len};
	const uint8_t *h = buf;
	const char **tab = NULL;
	uint8_t *cls = NULL; /* class of each string (names rules) */
	int bad_name = 0;    /* a field breaks them: -EILSEQ once whole */
	struct vg_batch *b = NULL;
	uint32_t nstr, nres, nsamp, nev, hostidx;
	uint64_t stream, seq;
	int rc;

	*out = NULL;
	if (len > VG_WIRE_MAX_MESSAGE + VG_WIRE_MAC_LEN)
		return -E2BIG;
	if ((rc = vg_wire_peek(buf, len, &stream, &seq)))
		return rc;
	uint16_t flags = get16(h + VG_WIRE_FLAGS_OFFSET);
	if (flags & ~VG_WIRE_FLAG_SIGNED) /* the only flag defined */
		return -EBADMSG;
	if (flags & VG_WIRE_FLAG_SIGNED) {
		/* The trailer is sign.c's business: decode what precedes it. */
		if (len < HDR_LEN + VG_WIRE_MAC_LEN)
			return -EBADMSG;
		len -= VG_WIRE_MAC_LEN;
		r.end -= VG_WIRE_MAC_LEN;
	}
	if (len > VG_WIRE_MAX_MESSAGE)
		return -E2BIG;
	nstr = get32(h + 32);
	nres = get32(h + 36);
	nsamp = get32(h + 40);
	nev = get32(h + 44);
	if (nstr > VG_WIRE_MAX_STRINGS || nres > VG_WIRE_MAX_RESOURCES ||
	    nsamp > VG_WIRE_MAX_SAMPLES || nev > VG_WIRE_MAX_EVENTS)
		return -E2BIG;
	r.p += HDR_LEN;
	/* Cheap plausibility check before allocating anything. */
	if ((size_t)(r.end - r.p) < 4 + 2 * (size_t)nstr + RES_LEN * (size_t)nres +
					    SAMPLE_LEN * (size_t)nsamp +
					    EVENT_LEN * (size_t)nev)
		return -EBADMSG;
	hostidx = get32(r.p);
	r.p += 4;

	b = vg_batch_new("", stream, seq, (int64_t)get64(h + 24));
	tab = malloc((nstr ? nstr : 1) * sizeof(*tab));
	cls = malloc(nstr ? nstr : 1);
	if (!b || !tab || !cls) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < nstr; i++) {
		if ((rc = need(&r, 2)))
			goto fail;
		uint16_t l = get16(r.p);
		r.p += 2;
		if (l > VG_WIRE_MAX_STRING || (rc = need(&r, l))) {
			rc = -EBADMSG;
			goto fail;
		}
		if (memchr(r.p, '\0', l)) {
			rc = -EBADMSG;
			goto fail;
		}
		tab[i] = vg_batch_strdup(b, (const char *)r.p, l);
		cls[i] = tab[i] ? class_of(tab[i], l) : 0;
		if (!tab[i]) {
			rc = -ENOMEM;
			goto fail;
		}
		r.p += l;
	}
	if ((rc = str_at(tab, nstr, hostidx, &b->host, 0)))
		goto fail;
	bad_name |= !class_ok(cls, hostidx, C_NAME, 0);
	if (!b->host[0]) {
		rc = -EBADMSG;
		goto fail;
	}

	/* Resources (with their attributes); sample counts must add up. */
	uint64_t samples_claimed = 0;
	b->res = calloc(nres ? nres : 1, sizeof(*b->res));
	if (!b->res) {
		rc = -ENOMEM;
		goto fail;
	}
	b->cap_res = nres ? nres : 1;
	for (uint32_t i = 0; i < nres; i++) {
		struct vg_resource *res = &b->res[i];
		const char **f[6] = {&res->id, &res->name, &res->parent,
				     &res->project, &res->user, &res->flavor};
		if ((rc = need(&r, RES_LEN)))
			goto fail;
		res->type = r.p[0];
		res->state = r.p[1];
		res->nattrs = get16(r.p + 2);
		if (res->type < 1 || res->type > VG_RT_WIRE_MAX ||
		    (res->state != VG_RSTATE_ACTIVE && res->state != VG_RSTATE_ENDED) ||
		    res->nattrs > VG_WIRE_MAX_ATTRS_PER_RES) {
			rc = -EBADMSG;
			goto fail;
		}
		for (int k = 0; k < 6; k++)
			if ((rc = str_at(tab, nstr, get32(r.p + 4 + 4 * k), f[k], k != 0)))
				goto fail;
		/* id a name; display name text; parent, project, user, flavor
		 * names; all but the id optional or empty */
		bad_name |= !class_ok(cls, get32(r.p + 4), C_NAME, 0) ||
			    !class_ok(cls, get32(r.p + 8), C_TEXT | C_EMPTY, 1);
		for (int k = 2; k < 6; k++)
			bad_name |= !class_ok(cls, get32(r.p + 4 + 4 * k),
					      C_NAME | C_EMPTY, 1);
		res->time_ms = (int64_t)get64(r.p + 28);
		res->nsamples = get32(r.p + 36);
		res->first_sample = (uint32_t)samples_claimed;
		samples_claimed += res->nsamples;
		if (samples_claimed > nsamp || get32(r.p + 40) != 0) {
			rc = -EBADMSG;
			goto fail;
		}
		r.p += RES_LEN;
		res->first_attr = (uint32_t)b->nattrs;
		if (res->nattrs) {
			if ((rc = need(&r, 8 * (size_t)res->nattrs)))
				goto fail;
			void *na = realloc(b->attrs, (b->nattrs + res->nattrs) * sizeof(*b->attrs));
			if (!na) {
				rc = -ENOMEM;
				goto fail;
			}
			b->attrs = na;
			b->cap_attrs = b->nattrs + res->nattrs;
			for (uint32_t k = 0; k < res->nattrs; k++) {
				struct vg_attr *a = &b->attrs[b->nattrs + k];
				if ((rc = str_at(tab, nstr, get32(r.p), &a->key, 0)) ||
				    (rc = str_at(tab, nstr, get32(r.p + 4), &a->value, 0)))
					goto fail;
				bad_name |= !class_ok(cls, get32(r.p), C_NAME, 0) ||
					    !class_ok(cls, get32(r.p + 4),
						      C_TEXT | C_EMPTY, 0);
				r.p += 8;
			}
			b->nattrs += res->nattrs;
		}
		b->nres++;
	}
	if (samples_claimed != nsamp) {
		rc = -EBADMSG;
		goto fail;
	}

	if ((rc = need(&r, SAMPLE_LEN * (size_t)nsamp + EVENT_LEN * (size_t)nev)))
		goto fail;
	b->samples = malloc((nsamp ? nsamp : 1) * sizeof(*b->samples));
	b->events = malloc((nev ? nev : 1) * sizeof(*b->events));
	if (!b->samples || !b->events) {
		rc = -ENOMEM;
		goto fail;
	}
	b->cap_samples = nsamp ? nsamp : 1;
	b->cap_events = nev ? nev : 1;
	for (uint32_t i = 0; i < nsamp; i++) {
		struct vg_sample *s = &b->samples[i];
		if ((rc = str_at(tab, nstr, get32(r.p), &s->metric, 0)))
			goto fail;
		bad_name |= !class_ok(cls, get32(r.p), C_NAME, 0);
		s->kind = r.p[4];
		s->value = getf64(r.p + 5);
		if ((s->kind != VG_KIND_GAUGE && s->kind != VG_KIND_COUNTER) ||
		    !isfinite(s->value)) {
			rc = -EBADMSG;
			goto fail;
		}
		r.p += SAMPLE_LEN;
		b->nsamples++;
	}
	for (uint32_t i = 0; i < nev; i++) {
		struct vg_event *e = &b->events[i];
		if ((rc = str_at(tab, nstr, get32(r.p), &e->resource, 0)) ||
		    (rc = str_at(tab, nstr, get32(r.p + 13), &e->detail, 1)))
			goto fail;
		bad_name |= !class_ok(cls, get32(r.p), C_NAME, 0);
		e->type = r.p[4];
		e->time_ms = (int64_t)get64(r.p + 5);
		if (e->type < 1 || e->type > VG_EV_GAP) {
			rc = -EBADMSG;
			goto fail;
		}
		r.p += EVENT_LEN;
		b->nevents++;
	}
	if (r.p != r.end) { /* trailing garbage */
		rc = -EBADMSG;
		goto fail;
	}
	if (bad_name) { /* structurally whole: the names are what is wrong */
		rc = -EILSEQ;
		goto fail;
	}
	free(tab);
	free(cls);
	*out = b;
	return 0;
fail:
	free(tab);
	free(cls);
	vg_batch_free(b);
	return rc;
}

size_t vg_wire_ack_encode(const struct vg_ack *a, uint8_t *buf)
{
	memcpy(buf, VG_WIRE_ACK_MAGIC, 4);
	buf[4] = VG_WIRE_VERSION;
	buf[5] = a->status;
	put16(buf + 6, 0);
	put64(buf + 8, a->stream);
	put64(buf + 16, a->seq);
	return VG_WIRE_ACK_LEN;
}

int vg_wire_ack_decode(const void *buf, size_t len, struct vg_ack *a)
{
	const uint8_t *p = buf;

	if (len != VG_WIRE_ACK_LEN && len != VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN)
		return -EBADMSG;
	if (memcmp(p, VG_WIRE_ACK_MAGIC, 4) || p[4] != VG_WIRE_VERSION)
		return -EPROTONOSUPPORT;
	/* Signed exactly when the trailer is there; no other flag. */
	if (get16(p + VG_WIRE_FLAGS_OFFSET) !=
	    (len == VG_WIRE_ACK_LEN ? 0 : VG_WIRE_FLAG_SIGNED))
		return -EBADMSG;
	if (p[5] > VG_ACK_REJECTED)
		return -EBADMSG;
	a->status = p[5];
	a->stream = get64(p + 8);
	a->seq = get64(p + 16);
	return 0;
}

const char *vg_wire_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case -EBADMSG: return "malformed message";
	case -EPROTONOSUPPORT: return "unknown magic or protocol version";
	case -E2BIG: return "message over a protocol limit";
	case -ENOMEM: return "out of memory";
	case -EINVAL: return "invalid string (too long or contains NUL)";
	case -EILSEQ: return "a name breaks the name rules (length, UTF-8, "
			     "control characters: docs/protocol.md)";
	}
	return "unknown error";
}
