/*
 * domxml.c — identity and device lists from a libvirt domain XML
 * (agent/domxml.h).
 *
 * Design: a tiny SAX-style walker (walk()) turns the document into
 * start/end callbacks with namespace-resolved element names; interpret()
 * matches the few paths the agent needs by depth and name:
 *   /domain/name, /domain/uuid
 *   /domain/devices/disk[@device]/{target@dev,source@file|dev|name|volume}
 *     (every disk is listed; cdrom/floppy with reported = 0)
 *   /domain/devices/interface[@type]/{target@dev,mac@address}
 *   /domain/metadata/nova:instance/{nova:name,nova:flavor@name/nova:*,
 *                                   nova:owner/{nova:user,nova:project}}
 *   /domain/metadata/vigie:owner@{project,user,flavor}
 * libvirt re-serialises metadata with whatever prefix the writer chose, so
 * namespaces are matched by URI, never by prefix.
 *
 * Invariants: every pointer into the input stays below its terminating
 * NUL (every scan stops at '\0'); depth is bounded (MAX_DEPTH); on error
 * the output is cleared, so a half-parsed domain is never used.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/domxml.h"

#define MAX_DEPTH 64
#define MAX_ATTRS 32
#define MAX_NS 64

struct xslice {
	const char *p;
	size_t n;
};

struct xattr {
	struct xslice name; /* local name (prefix stripped) */
	struct xslice prefix;
	struct xslice value; /* raw, entities not decoded */
};

struct xframe {
	struct xslice qname; /* as written, to match the end tag */
	struct xslice local;
	struct xslice uri;   /* resolved namespace, n == 0 if none */
	size_t ns_mark;      /* namespace stack height before this element */
	const char *content; /* first byte after the start tag */
	int has_child;
};

struct xns {
	struct xslice prefix, uri;
};

struct walker {
	struct xframe f[MAX_DEPTH];
	int depth; /* number of open elements */
	struct xns ns[MAX_NS];
	size_t nns;
	struct xattr a[MAX_ATTRS];
	size_t na;
};

static int seq(struct xslice s, const char *lit)
{
	size_t l = strlen(lit);
	return s.n == l && memcmp(s.p, lit, l) == 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_name_char(char c)
{
	return c && !is_space(c) && c != '>' && c != '/' && c != '=' &&
	       c != '<' && c != '"' && c != '\'';
}

/* Find lit in p (stops at NUL). */
static const char *find(const char *p, const char *lit)
{
	return strstr(p, lit);
}

static void split_qname(struct xslice q, struct xslice *prefix,
			struct xslice *local)
{
	const char *c = memchr(q.p, ':', q.n);

	if (c) {
		prefix->p = q.p;
		prefix->n = (size_t)(c - q.p);
		local->p = c + 1;
		local->n = q.n - prefix->n - 1;
	} else {
		prefix->p = q.p;
		prefix->n = 0;
		*local = q;
	}
}

static struct xslice resolve(const struct walker *w, struct xslice prefix)
{
	struct xslice none = {"", 0};

	for (size_t i = w->nns; i-- > 0;)
		if (w->ns[i].prefix.n == prefix.n &&
		    memcmp(w->ns[i].prefix.p, prefix.p, prefix.n) == 0)
			return w->ns[i].uri;
	return none;
}

/* ---- interpretation -------------------------------------------------- */

enum { IN_NONE,
       IN_DISK,
       IN_NIC };

struct interp {
	struct vg_domxml *d;
	int in; /* inside a disk or interface element */
	struct vg_domxml_disk disk;
	struct vg_domxml_nic nic;
	int nova_seen, vigie_seen;
	/* Nova owner bits, merged into d at the end. */
	char *nova_user_uuid, *nova_project_uuid;
	char *vigie_project, *vigie_user, *vigie_flavor;
	int err;
};

/* Decode entities of a raw slice into a new string. */
static char *decode(struct xslice s, int *err)
{
	char *out = malloc(s.n + 1), *o = out;

	if (!out) {
		*err = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < s.n;) {
		if (s.p[i] != '&') {
			*o++ = s.p[i++];
			continue;
		}
		const char *semi = memchr(s.p + i, ';', s.n - i);
		if (!semi) {
			free(out);
			*err = -EBADMSG;
			return NULL;
		}
		struct xslice e = {s.p + i + 1, (size_t)(semi - s.p - i - 1)};
		uint32_t cp = 0;
		if (seq(e, "lt"))
			cp = '<';
		else if (seq(e, "gt"))
			cp = '>';
		else if (seq(e, "amp"))
			cp = '&';
		else if (seq(e, "quot"))
			cp = '"';
		else if (seq(e, "apos"))
			cp = '\'';
		else if (e.n >= 2 && e.p[0] == '#') {
			int hex = e.p[1] == 'x' || e.p[1] == 'X';
			size_t k = hex ? 2 : 1;
			if (k >= e.n) {
				free(out);
				*err = -EBADMSG;
				return NULL;
			}
			for (; k < e.n && cp <= 0x10ffff; k++) {
				char c = e.p[k];
				int v;
				if (c >= '0' && c <= '9')
					v = c - '0';
				else if (hex && c >= 'a' && c <= 'f')
					v = c - 'a' + 10;
				else if (hex && c >= 'A' && c <= 'F')
					v = c - 'A' + 10;
				else
					break;
				cp = cp * (hex ? 16 : 10) + (uint32_t)v;
			}
			if (k != e.n || cp == 0 || cp > 0x10ffff) {
				free(out);
				*err = -EBADMSG;
				return NULL;
			}
		} else {
			free(out);
			*err = -EBADMSG;
			return NULL;
		}
		/* UTF-8 encode cp (the longest form fits: an entity is at
		 * least 4 bytes of input, "&#N;", for at most 4 of output). */
		if (cp < 0x80) {
			*o++ = (char)cp;
		} else if (cp < 0x800) {
			*o++ = (char)(0xc0 | (cp >> 6));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			*o++ = (char)(0xe0 | (cp >> 12));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		} else {
			*o++ = (char)(0xf0 | (cp >> 18));
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
			*o++ = (char)(0x80 | (cp & 0x3f));
		}
		i = (size_t)(semi - s.p) + 1;
	}
	*o = '\0';
	return out;
}

/* Trimmed decoded text; NULL if empty. */
static char *text_of(struct xslice s, int *err)
{
	while (s.n && is_space(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_space(s.p[s.n - 1]))
		s.n--;
	if (!s.n)
		return NULL;
	return decode(s, err);
}

static const struct xattr *attr(const struct walker *w, const char *name)
{
	for (size_t i = 0; i < w->na; i++)
		if (w->a[i].prefix.n == 0 && seq(w->a[i].name, name))
			return &w->a[i];
	return NULL;
}

/* Replace *dst with the decoded attribute value (if present). */
static void take_attr(struct interp *in, const struct walker *w,
		      const char *name, char **dst)
{
	const struct xattr *a = attr(w, name);

	if (!a || in->err)
		return;
	char *v = decode(a->value, &in->err);
	if (!v)
		return;
	free(*dst);
	*dst = v;
}

static void take_text(struct interp *in, struct xslice text, char **dst)
{
	if (in->err)
		return;
	char *v = text_of(text, &in->err);
	if (!v)
		return;
	free(*dst);
	*dst = v;
}

static int is_nova(const struct xframe *f, const char *local)
{
	return f->uri.n > strlen(VG_NOVA_NS_PREFIX) &&
	       memcmp(f->uri.p, VG_NOVA_NS_PREFIX, strlen(VG_NOVA_NS_PREFIX)) == 0 &&
	       seq(f->local, local);
}

static int is_vigie(const struct xframe *f, const char *local)
{
	return seq(f->uri, VG_VIGIE_NS) && seq(f->local, local);
}

static int is_plain(const struct xframe *f, const char *local)
{
	return f->uri.n == 0 && seq(f->local, local);
}

static void on_start(struct interp *in, const struct walker *w)
{
	const struct xframe *f = w->f;
	int d = w->depth - 1; /* index of the element just opened */

	if (in->err)
		return;
	if (d == 0) {
		const struct xattr *a = attr(w, "id");
		long v = 0;
		size_t i = 0;
		for (; a && i < a->value.n && i < 10 && a->value.p[i] >= '0' &&
		       a->value.p[i] <= '9';
		     i++)
			v = v * 10 + (a->value.p[i] - '0');
		if (a && i && i == a->value.n && v <= INT_MAX)
			in->d->id = (int)v;
		return;
	}
	if (d == 2 && is_plain(&f[1], "devices")) {
		if (is_plain(&f[2], "disk")) {
			const struct xattr *a = attr(w, "device");
			in->in = IN_DISK;
			in->disk.reported = !a || seq(a->value, "disk") ||
					    seq(a->value, "lun");
		} else if (is_plain(&f[2], "interface")) {
			in->in = IN_NIC;
			take_attr(in, w, "type", &in->nic.type);
		}
		return;
	}
	if (d == 3 && in->in == IN_DISK) {
		if (is_plain(&f[3], "target")) {
			take_attr(in, w, "dev", &in->disk.dev);
			take_attr(in, w, "bus", &in->disk.bus);
		} else if (is_plain(&f[3], "source")) {
			static const char *const keys[] = {"file", "dev", "name", "volume"};
			for (size_t k = 0; k < 4; k++)
				if (attr(w, keys[k])) {
					take_attr(in, w, keys[k], &in->disk.source);
					break;
				}
		}
		return;
	}
	if (d == 3 && in->in == IN_NIC) {
		if (is_plain(&f[3], "target"))
			take_attr(in, w, "dev", &in->nic.dev);
		else if (is_plain(&f[3], "mac"))
			take_attr(in, w, "address", &in->nic.mac);
		return;
	}
	if (d >= 2 && is_plain(&f[1], "metadata")) {
		if (d == 2 && is_nova(&f[2], "instance"))
			in->nova_seen = 1;
		if (d == 2 && is_vigie(&f[2], "owner")) {
			in->vigie_seen = 1;
			take_attr(in, w, "project", &in->vigie_project);
			take_attr(in, w, "user", &in->vigie_user);
			take_attr(in, w, "flavor", &in->vigie_flavor);
		}
		if (d == 3 && is_nova(&f[2], "instance") && is_nova(&f[3], "flavor"))
			take_attr(in, w, "name", &in->d->flavor);
		if (d == 4 && is_nova(&f[2], "instance") && is_nova(&f[3], "owner")) {
			if (is_nova(&f[4], "user"))
				take_attr(in, w, "uuid", &in->nova_user_uuid);
			else if (is_nova(&f[4], "project"))
				take_attr(in, w, "uuid", &in->nova_project_uuid);
		}
	}
}

static int push_disk(struct vg_domxml *d, struct vg_domxml_disk *x)
{
	struct vg_domxml_disk *n = realloc(d->disks, (d->ndisks + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	d->disks = n;
	d->disks[d->ndisks++] = *x;
	memset(x, 0, sizeof(*x));
	return 0;
}

static int push_nic(struct vg_domxml *d, struct vg_domxml_nic *x)
{
	struct vg_domxml_nic *n = realloc(d->nics, (d->nnics + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	d->nics = n;
	d->nics[d->nnics++] = *x;
	memset(x, 0, sizeof(*x));
	return 0;
}

static void free_disk(struct vg_domxml_disk *x)
{
	free(x->dev);
	free(x->source);
	free(x->bus);
	memset(x, 0, sizeof(*x));
}

static void free_nic(struct vg_domxml_nic *x)
{
	free(x->dev);
	free(x->mac);
	free(x->type);
	memset(x, 0, sizeof(*x));
}

static long parse_long(const char *s)
{
	char *end;
	long v;

	if (!s)
		return -1;
	v = strtol(s, &end, 10);
	return (end == s || *end || v < 0) ? -1 : v;
}

static void on_end(struct interp *in, const struct walker *w,
		   struct xslice text)
{
	const struct xframe *f = w->f;
	int d = w->depth - 1; /* index of the element being closed */

	if (in->err)
		return;
	if (d == 1 && is_plain(&f[1], "name"))
		take_text(in, text, &in->d->name);
	else if (d == 1 && is_plain(&f[1], "uuid"))
		take_text(in, text, &in->d->uuid);
	else if (d == 2 && is_plain(&f[1], "devices")) {
		if (in->in == IN_DISK) {
			if (in->disk.dev)
				in->err = push_disk(in->d, &in->disk);
			free_disk(&in->disk);
		} else if (in->in == IN_NIC) {
			if (in->nic.dev)
				in->err = push_nic(in->d, &in->nic);
			free_nic(&in->nic);
		}
		in->in = IN_NONE;
	} else if (d >= 3 && is_plain(&f[1], "metadata") &&
		   is_nova(&f[2], "instance")) {
		char *t = NULL;

		if (d == 3 && is_nova(&f[3], "name")) {
			take_text(in, text, &in->d->display_name);
		} else if (d == 4 && is_nova(&f[3], "flavor")) {
			take_text(in, text, &t);
			if (is_nova(&f[4], "vcpus"))
				in->d->flavor_vcpus = parse_long(t);
			else if (is_nova(&f[4], "memory"))
				in->d->flavor_memory_mb = parse_long(t);
			else if (is_nova(&f[4], "disk"))
				in->d->flavor_disk_gb = parse_long(t);
		} else if (d == 4 && is_nova(&f[3], "owner")) {
			if (is_nova(&f[4], "user"))
				take_text(in, text, &in->d->user_name);
			else if (is_nova(&f[4], "project"))
				take_text(in, text, &in->d->project_name);
		}
		free(t);
	}
}

/* ---- the walker ------------------------------------------------------- */

static int parse_name(const char **pp, struct xslice *out)
{
	const char *p = *pp;

	out->p = p;
	while (is_name_char(*p))
		p++;
	out->n = (size_t)(p - out->p);
	*pp = p;
	return out->n ? 0 : -EBADMSG;
}

static const char *skip_ws(const char *p)
{
	while (is_space(*p))
		p++;
	return p;
}

/* Parse attributes of a start tag at *pp up to '>' or "/>". */
static int parse_attrs(struct walker *w, const char **pp, int *self_close)
{
	const char *p = *pp;

	w->na = 0;
	for (;;) {
		p = skip_ws(p);
		if (*p == '>') {
			*self_close = 0;
			*pp = p + 1;
			return 0;
		}
		if (p[0] == '/' && p[1] == '>') {
			*self_close = 1;
			*pp = p + 2;
			return 0;
		}
		struct xslice q, val;
		if (parse_name(&p, &q))
			return -EBADMSG;
		p = skip_ws(p);
		if (*p++ != '=')
			return -EBADMSG;
		p = skip_ws(p);
		char quote = *p;
		if (quote != '"' && quote != '\'')
			return -EBADMSG;
		p++;
		val.p = p;
		while (*p && *p != quote) {
			if (*p == '<')
				return -EBADMSG;
			p++;
		}
		if (!*p)
			return -EBADMSG;
		val.n = (size_t)(p - val.p);
		p++;
		struct xslice prefix, local;
		split_qname(q, &prefix, &local);
		if (seq(q, "xmlns") || (prefix.n && seq(prefix, "xmlns"))) {
			if (w->nns >= MAX_NS)
				return -EBADMSG;
			w->ns[w->nns].prefix = seq(q, "xmlns") ? (struct xslice){"", 0} : local;
			w->ns[w->nns].uri = val;
			w->nns++;
			continue;
		}
		if (w->na < MAX_ATTRS) {
			w->a[w->na].name = local;
			w->a[w->na].prefix = prefix;
			w->a[w->na].value = val;
			w->na++;
		}
	}
}

static int walk(const char *xml, struct interp *in)
{
	static struct walker zero;
	struct walker *w = malloc(sizeof(*w));
	const char *p = xml;
	int rc = 0, seen_root = 0;

	if (!w)
		return -ENOMEM;
	*w = zero;
	while (*p) {
		if (*p != '<') {
			if (!w->depth && !is_space(*p)) {
				rc = -EBADMSG; /* text outside the root */
				break;
			}
			p++;
			continue;
		}
		if (strncmp(p, "<!--", 4) == 0) {
			const char *e = find(p + 4, "-->");
			if (!e) {
				rc = -EBADMSG;
				break;
			}
			p = e + 3;
		} else if (strncmp(p, "<?", 2) == 0) {
			const char *e = find(p + 2, "?>");
			if (!e) {
				rc = -EBADMSG;
				break;
			}
			p = e + 2;
		} else if (strncmp(p, "<![CDATA[", 9) == 0) {
			const char *e = find(p + 9, "]]>");
			if (!e || !w->depth) {
				rc = -EBADMSG;
				break;
			}
			/* CDATA text is not decoded; mark the element complex
			 * so its raw slice is never taken as text. */
			w->f[w->depth - 1].has_child = 1;
			p = e + 3;
		} else if (strncmp(p, "<!", 2) == 0) {
			const char *e = strchr(p, '>');
			if (!e || w->depth) {
				rc = -EBADMSG;
				break;
			}
			p = e + 1;
		} else if (p[1] == '/') {
			struct xslice q;
			const char *tag_start = p;
			p += 2;
			if (parse_name(&p, &q) || !w->depth) {
				rc = -EBADMSG;
				break;
			}
			p = skip_ws(p);
			if (*p != '>') {
				rc = -EBADMSG;
				break;
			}
			p++;
			struct xframe *f = &w->f[w->depth - 1];
			if (q.n != f->qname.n || memcmp(q.p, f->qname.p, q.n)) {
				rc = -EBADMSG;
				break;
			}
			struct xslice text = {f->content, 0};
			if (!f->has_child)
				text.n = (size_t)(tag_start - f->content);
			on_end(in, w, text);
			w->nns = f->ns_mark;
			w->depth--;
		} else {
			struct xslice q, prefix;
			int self_close;
			size_t mark = w->nns;
			p++;
			if (parse_name(&p, &q)) {
				rc = -EBADMSG;
				break;
			}
			if (w->depth >= MAX_DEPTH || (!w->depth && seen_root)) {
				rc = -EBADMSG;
				break;
			}
			if ((rc = parse_attrs(w, &p, &self_close)))
				break;
			if (w->depth)
				w->f[w->depth - 1].has_child = 1;
			struct xframe *f = &w->f[w->depth++];
			memset(f, 0, sizeof(*f));
			f->qname = q;
			split_qname(q, &prefix, &f->local);
			f->uri = resolve(w, prefix);
			if (prefix.n && !f->uri.n) {
				rc = -EBADMSG; /* undeclared prefix */
				break;
			}
			f->ns_mark = mark;
			f->content = p;
			if (w->depth == 1) {
				seen_root = 1;
				if (!is_plain(f, "domain")) {
					rc = -EBADMSG;
					break;
				}
			}
			on_start(in, w);
			if (self_close) {
				struct xslice empty = {p, 0};
				on_end(in, w, empty);
				w->nns = mark;
				w->depth--;
			}
		}
		if (in->err) {
			rc = in->err;
			break;
		}
	}
	if (!rc && (w->depth || !seen_root))
		rc = -EBADMSG;
	free(w);
	return rc;
}

int vg_domxml_parse(const char *xml, struct vg_domxml *out)
{
	struct interp in;
	int rc;

	memset(out, 0, sizeof(*out));
	out->flavor_vcpus = out->flavor_memory_mb = out->flavor_disk_gb = -1;
	out->id = -1;
	if (!xml)
		return -EINVAL;
	memset(&in, 0, sizeof(in));
	in.d = out;
	rc = walk(xml, &in);
	if (!rc) {
		if (in.nova_seen) {
			out->ident = VG_IDENT_NOVA;
			out->project = in.nova_project_uuid;
			in.nova_project_uuid = NULL;
			out->user = in.nova_user_uuid;
			in.nova_user_uuid = NULL;
			if (!out->project && out->project_name)
				out->project = strdup(out->project_name);
			if (!out->user && out->user_name)
				out->user = strdup(out->user_name);
			if ((out->project_name && !out->project) ||
			    (out->user_name && !out->user))
				rc = -ENOMEM;
		} else if (in.vigie_seen) {
			out->ident = VG_IDENT_VIGIE;
			out->project = in.vigie_project;
			out->user = in.vigie_user;
			out->flavor = in.vigie_flavor;
			in.vigie_project = in.vigie_user = in.vigie_flavor = NULL;
		}
	}
	free_disk(&in.disk);
	free_nic(&in.nic);
	free(in.nova_project_uuid);
	free(in.nova_user_uuid);
	free(in.vigie_project);
	free(in.vigie_user);
	free(in.vigie_flavor);
	if (rc)
		vg_domxml_clear(out);
	return rc;
}

void vg_domxml_clear(struct vg_domxml *d)
{
	if (!d)
		return;
	free(d->name);
	free(d->uuid);
	free(d->display_name);
	free(d->project);
	free(d->project_name);
	free(d->user);
	free(d->user_name);
	free(d->flavor);
	for (size_t i = 0; i < d->ndisks; i++)
		free_disk(&d->disks[i]);
	for (size_t i = 0; i < d->nnics; i++)
		free_nic(&d->nics[i]);
	free(d->disks);
	free(d->nics);
	memset(d, 0, sizeof(*d));
	d->flavor_vcpus = d->flavor_memory_mb = d->flavor_disk_gb = -1;
	d->id = -1;
}

const struct vg_domxml_disk *vg_domxml_disk(const struct vg_domxml *d,
					    const char *dev)
{
	for (size_t i = 0; d && dev && i < d->ndisks; i++)
		if (strcmp(d->disks[i].dev, dev) == 0)
			return &d->disks[i];
	return NULL;
}

int vg_domxml_has_disk(const struct vg_domxml *d, const char *dev)
{
	return vg_domxml_disk(d, dev) != NULL;
}

int vg_domxml_has_nic(const struct vg_domxml *d, const char *dev)
{
	for (size_t i = 0; d && dev && i < d->nnics; i++)
		if (strcmp(d->nics[i].dev, dev) == 0)
			return 1;
	return 0;
}
