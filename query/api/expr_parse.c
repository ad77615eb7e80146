/*
 * expr_parse.c — the lexer and recursive-descent parser of the /v1/query
 * expression language (grammar in query/api/expr.h, reference in
 * docs/api.md "Expressions").
 *
 * Design: one pass, one token of look-ahead (two for a named argument
 * `by=`). Nodes come from one array sized VG_EXPR_MAX_NODES, so a hostile
 * text cannot make the parser allocate without bound, and recursion is
 * cut at VG_EXPR_MAX_DEPTH. A call's arguments are checked here, not at
 * evaluation: a wrong argument is a parse error pointing at that
 * argument. Keywords (mean, previous, max...) are written as bare names,
 * so they parse as selectors without braces and the check reads them
 * back as words.
 *
 * Invariants: on success every node's strings are owned by the tree and
 * freed by vg_expr_free; on error nothing is left allocated and *pos is an
 * offset inside [0, strlen(text)].
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/api/expr.h"
#include "vigie/batch.h"
#include "vigie/name.h"

enum tok { T_END,
	   T_NUM,
	   T_IDENT,
	   T_STR,
	   T_LP,
	   T_RP,
	   T_LB,
	   T_RB,
	   T_COMMA,
	   T_PLUS,
	   T_MINUS,
	   T_STAR,
	   T_SLASH,
	   T_EQ,
	   T_NE,
	   T_BAD };

struct parser {
	const char *text;
	size_t len, at; /* at: start of the next token to lex */
	int tok, tpos;  /* current token */
	size_t tlen;
	char *sval; /* T_STR / T_IDENT value (malloc'd) */
	double nval;
	struct vg_expr *e;
	int depth;
	char *err;
	size_t errlen;
	int epos, failed;
};

static const char *const fn_names[] = {
	"resample", "rolling", "fill", "sum", "mean", "max", "min", "count",
	"pNN", "top", "bottom", "abs"};

const char *vg_expr_fn_name(int fn)
{
	return fn >= 0 && fn <= VG_FN_ABS ? fn_names[fn] : "?";
}

static int fail(struct parser *p, int pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, int pos, const char *fmt, ...)
{
	char msg[512 + 4];
	va_list ap;
	size_t room;
	int n;

	if (p->failed)
		return -EINVAL;
	p->failed = 1;
	p->epos = pos;
	n = snprintf(p->err, p->errlen, "at %d: ", pos);
	if (n < 0 || (size_t)n >= p->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* cut between characters, where err or msg ends (msg's 4 bytes more
	 * show whether a character goes on past the cut) */
	room = p->errlen - (size_t)n - 1;
	if (room > sizeof(msg) - 5)
		room = sizeof(msg) - 5;
	snprintf(p->err + n, p->errlen - (size_t)n, "%.*s", (int)vg_utf8_prefix(msg, room), msg);
	return -EINVAL;
}

static const char *tok_desc(int t)
{
	static const char *const d[] = {
		"the end", "a number", "a name", "a string", "'('", "')'",
		"'{'", "'}'", "','", "'+'", "'-'", "'*'", "'/'", "'='", "'!='",
		"an unexpected character"};
	return d[t];
}

static int ident_start(int c)
{
	return isalpha(c) || c == '_';
}

static int ident_char(int c)
{
	return isalnum(c) || c == '_' || c == '.';
}

/* Lex the next token into p->tok. 0 or -EINVAL (message set). */
static int next(struct parser *p)
{
	const char *s = p->text;
	size_t i = p->at;

	free(p->sval);
	p->sval = NULL;
	while (i < p->len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
			      s[i] == '\r'))
		i++;
	p->tpos = (int)i;
	if (i >= p->len) {
		p->tok = T_END;
		p->tlen = 0;
		p->at = i;
		return 0;
	}
	/* the tokens of one character: one_tok[k] is that of ones[k] */
	static const char ones[] = "(){},+-*/=";
	static const int one_tok[] = {T_LP, T_RP, T_LB, T_RB, T_COMMA,
				      T_PLUS, T_MINUS, T_STAR, T_SLASH, T_EQ};
	const char *one = s[i] ? strchr(ones, s[i]) : NULL;
	if (one) {
		p->tok = one_tok[one - ones];
		p->at = i + 1;
		return 0;
	}
	switch (s[i]) {
	case '!':
		if (i + 1 < p->len && s[i + 1] == '=') {
			p->tok = T_NE;
			p->at = i + 2;
			return 0;
		}
		break;
	case '"': {
		size_t j = i + 1, o = 0;
		char *v = malloc(p->len - i);
		if (!v)
			return -ENOMEM;
		for (; j < p->len && s[j] != '"'; j++) {
			if (s[j] == '\\') {
				if (j + 1 >= p->len ||
				    (s[j + 1] != '"' && s[j + 1] != '\\')) {
					free(v);
					return fail(p, (int)j, "bad escape in a "
							       "string (only \\\" and \\\\)");
				}
				j++;
			}
			v[o++] = s[j];
		}
		if (j >= p->len) {
			free(v);
			return fail(p, (int)i, "unterminated string");
		}
		v[o] = '\0';
		p->sval = v;
		p->tok = T_STR;
		p->at = j + 1;
		return 0;
	}
	default:
		break;
	}
	if (isdigit((unsigned char)s[i]) ||
	    (s[i] == '.' && i + 1 < p->len && isdigit((unsigned char)s[i + 1]))) {
		char buf[64];
		size_t j = i;
		while (j < p->len && (isdigit((unsigned char)s[j]) || s[j] == '.'))
			j++;
		if (j < p->len && (s[j] == 'e' || s[j] == 'E')) {
			size_t k = j + 1;
			if (k < p->len && (s[k] == '+' || s[k] == '-'))
				k++;
			if (k < p->len && isdigit((unsigned char)s[k])) {
				while (k < p->len && isdigit((unsigned char)s[k]))
					k++;
				j = k;
			}
		}
		if (j - i >= sizeof(buf))
			return fail(p, (int)i, "number too long");
		memcpy(buf, s + i, j - i);
		buf[j - i] = '\0';
		{
			char *end;
			p->nval = strtod(buf, &end);
			if (*end || !isfinite(p->nval))
				return fail(p, (int)i, "bad number '%s'", buf);
		}
		if (j < p->len && ident_char((unsigned char)s[j]))
			return fail(p, (int)j, "a name cannot start with a digit");
		p->tok = T_NUM;
		p->at = j;
		return 0;
	}
	if (ident_start((unsigned char)s[i])) {
		size_t j = i;
		while (j < p->len && ident_char((unsigned char)s[j]))
			j++;
		p->sval = strndup(s + i, j - i);
		if (!p->sval)
			return -ENOMEM;
		p->tok = T_IDENT;
		p->at = j;
		return 0;
	}
	p->tok = T_BAD;
	return fail(p, (int)i, "unexpected character '%s%c'",
		    isprint((unsigned char)s[i]) ? "" : "\\",
		    isprint((unsigned char)s[i]) ? s[i] : '?');
}

/* Look at the token after the current one without consuming (T_END on
 * error). */
static int peek(struct parser *p)
{
	size_t i = p->at;
	while (i < p->len && (p->text[i] == ' ' || p->text[i] == '\t' ||
			      p->text[i] == '\n' || p->text[i] == '\r'))
		i++;
	if (i >= p->len)
		return T_END;
	switch (p->text[i]) {
	case '(': return T_LP;
	case '{': return T_LB;
	case '=': return T_EQ;
	default: return T_BAD;
	}
}

static struct vg_expr_node *node(struct parser *p, int kind, int pos)
{
	struct vg_expr_node *n;

	if (p->e->nnodes >= VG_EXPR_MAX_NODES) {
		fail(p, pos, "expression too large (more than %d terms)",
		     VG_EXPR_MAX_NODES);
		return NULL;
	}
	n = &p->e->nodes[p->e->nnodes++];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->pos = pos;
	return n;
}

static int expect(struct parser *p, int tok, const char *what)
{
	if (p->tok != tok)
		return fail(p, p->tpos, "expected %s %s, got %s", tok_desc(tok),
			    what, tok_desc(p->tok));
	return next(p);
}

static int parse_expr(struct parser *p, struct vg_expr_node **out);

static int valid_label(const char *l)
{
	static const char *const labels[] = {"id", "type", "project", "host",
					     "flavor", "name", "parent", NULL};
	for (int i = 0; labels[i]; i++)
		if (!strcmp(l, labels[i]))
			return 1;
	return !strncmp(l, "metadata.", 9) && l[9] && vg_name_valid(l + 9);
}

static int parse_selector(struct parser *p, struct vg_expr_node **out)
{
	struct vg_expr_node *n = node(p, VG_EXPR_SEL, p->tpos);
	int rc;

	if (!n)
		return -EINVAL;
	if (!vg_name_valid(p->sval))
		return fail(p, p->tpos, "bad metric name");
	n->name = p->sval;
	p->sval = NULL;
	n->bare = 1;
	if ((rc = next(p)))
		return rc;
	if (p->tok == T_LB) {
		n->bare = 0;
		if ((rc = next(p)))
			return rc;
		while (p->tok != T_RB) {
			struct vg_expr_matcher *m;
			if (n->nm == VG_EXPR_MAX_MATCHERS)
				return fail(p, p->tpos, "more than %d matchers",
					    VG_EXPR_MAX_MATCHERS);
			if (p->tok != T_IDENT)
				return fail(p, p->tpos, "expected a label (id, "
							"type, project, host, flavor, name, "
							"parent, metadata.KEY), got %s",
					    tok_desc(p->tok));
			if (!valid_label(p->sval))
				return fail(p, p->tpos, "unknown label '%.64s' "
							"(one of: id, type, project, host, "
							"flavor, name, parent, metadata.KEY)",
					    p->sval);
			if (!n->m) {
				n->m = calloc(VG_EXPR_MAX_MATCHERS, sizeof(*n->m));
				if (!n->m)
					return -ENOMEM;
			}
			m = &n->m[n->nm++];
			m->label = p->sval;
			m->pos = p->tpos;
			p->sval = NULL;
			if ((rc = next(p)))
				return rc;
			if (p->tok != T_EQ && p->tok != T_NE)
				return fail(p, p->tpos, "expected '=' or '!=' "
							"after label '%s', got %s",
					    m->label,
					    tok_desc(p->tok));
			m->neg = p->tok == T_NE;
			if ((rc = next(p)))
				return rc;
			if (p->tok != T_STR)
				return fail(p, p->tpos, "expected a \"string\" "
							"value for label '%s', got %s",
					    m->label, tok_desc(p->tok));
			if (!vg_name_valid(p->sval))
				return fail(p, p->tpos, "bad value for label "
							"'%s' (1 to %d bytes of UTF-8, no "
							"control characters)",
					    m->label,
					    VG_NAME_MAX);
			if (!strcmp(m->label, "type") &&
			    vg_rtype_parse(p->sval) < 0)
				return fail(p, p->tpos, "bad type '%.*s' (one "
							"of: instance, disk, nic, host, "
							"host_disk, host_nic)",
					    (int)vg_utf8_prefix(p->sval, 32), p->sval);
			m->value = p->sval;
			p->sval = NULL;
			if ((rc = next(p)))
				return rc;
			if (p->tok == T_COMMA) {
				if ((rc = next(p)))
					return rc;
				if (p->tok == T_RB)
					return fail(p, p->tpos, "expected a "
								"label after ','");
			} else if (p->tok != T_RB) {
				return fail(p, p->tpos, "expected ',' or '}' "
							"after a matcher, got %s",
					    tok_desc(p->tok));
			}
		}
		if ((rc = next(p)))
			return rc;
	}
	*out = n;
	return 0;
}

static int fn_lookup(const char *name, double *pct)
{
	for (int i = 0; i <= VG_FN_ABS; i++)
		if (i != VG_FN_PCT && !strcmp(name, fn_names[i]))
			return i;
	if (name[0] == 'p' && isdigit((unsigned char)name[1])) {
		char *end;
		double v = strtod(name + 1, &end);
		const char *dot = strchr(name, '.');
		if (*end || !(v >= 0 && v <= 100) || (dot && strlen(dot + 1) > 3))
			return -2;
		*pct = v;
		return VG_FN_PCT;
	}
	return -1;
}

/* The word a bare selector stands for (a keyword argument), or NULL. */
static const char *word_of(const struct vg_expr_node *n)
{
	return n->kind == VG_EXPR_SEL && n->bare ? n->name : NULL;
}

static int agg_of(const char *w, int allow_count, int allow_sum)
{
	if (!w)
		return -1;
	if (!strcmp(w, "mean") || !strcmp(w, "avg") || !strcmp(w, "average"))
		return VG_AGG_MEAN;
	if (!strcmp(w, "min"))
		return VG_AGG_MIN;
	if (!strcmp(w, "max"))
		return VG_AGG_MAX;
	if (allow_sum && !strcmp(w, "sum"))
		return VG_AGG_SUM;
	if (allow_count && !strcmp(w, "count"))
		return VG_AGG_COUNT;
	return -1;
}

/* Integer argument lo..hi in node a. */
static int int_arg(struct parser *p, const struct vg_expr_node *c,
		   const struct vg_expr_node *a, const char *what, long lo,
		   long hi, long *out)
{
	if (a->kind != VG_EXPR_NUM || a->num != floor(a->num) || a->num < lo ||
	    a->num > hi)
		return fail(p, a->pos, "%s of %s() must be an integer from %ld "
				       "to %ld",
			    what, vg_expr_fn_name(c->fn), lo, hi);
	*out = (long)a->num;
	return 0;
}

/* A series argument: anything but a named argument or a keyword we know
 * is not a metric is accepted (the evaluator reports an unknown metric as
 * an empty result). */
static int series_arg(struct parser *p, const struct vg_expr_node *c,
		      const struct vg_expr_node *a)
{
	if (a->kind == VG_EXPR_NAMED)
		return fail(p, a->pos, "the first argument of %s() is a series "
				       "expression",
			    vg_expr_fn_name(c->fn));
	return 0;
}

static int check_call(struct parser *p, struct vg_expr_node *c)
{
	const char *fn = vg_expr_fn_name(c->fn);
	int rc;

	if (c->na == 0)
		return fail(p, c->pos, "%s() needs arguments", fn);
	if ((rc = series_arg(p, c, c->a[0])))
		return rc;
	for (size_t i = 1; i < c->na; i++)
		if (c->a[i]->kind == VG_EXPR_NAMED &&
		    !(i == c->na - 1 && c->fn >= VG_FN_SUM && c->fn <= VG_FN_PCT))
			return fail(p, c->a[i]->pos, "%s() takes no named "
						     "argument here",
				    fn);
	switch (c->fn) {
	case VG_FN_RESAMPLE:
		if (c->na < 2 || c->na > 3)
			return fail(p, c->pos, "resample(series, SECONDS[, "
					       "mean|sum|min|max|count])");
		if ((rc = int_arg(p, c, c->a[1], "the granularity", 60,
				  31622400, &c->iarg)))
			return rc;
		if (c->iarg % 60)
			return fail(p, c->a[1]->pos, "the granularity of "
						     "resample() must be a multiple of 60 s");
		c->agg = VG_AGG_MEAN;
		if (c->na == 3 && (c->agg = agg_of(word_of(c->a[2]), 1, 1)) < 0)
			return fail(p, c->a[2]->pos, "resample() aggregates with "
						     "mean, sum, min, max or count");
		c->na = 1;
		return 0;
	case VG_FN_ROLLING:
		if (c->na < 2 || c->na > 3)
			return fail(p, c->pos, "rolling(series, K[, "
					       "mean|sum|min|max])");
		if ((rc = int_arg(p, c, c->a[1], "the window", 1, 10000,
				  &c->iarg)))
			return rc;
		c->agg = VG_AGG_MEAN;
		if (c->na == 3 && (c->agg = agg_of(word_of(c->a[2]), 0, 1)) < 0)
			return fail(p, c->a[2]->pos, "rolling() aggregates with "
						     "mean, sum, min or max");
		c->na = 1;
		return 0;
	case VG_FN_FILL: {
		const char *w;
		if (c->na != 2)
			return fail(p, c->pos, "fill(series, NUMBER|previous)");
		w = word_of(c->a[1]);
		if (w && !strcmp(w, "previous"))
			c->fill_prev = 1;
		else if (c->a[1]->kind == VG_EXPR_NUM)
			c->iarg = 0;
		else if (c->a[1]->kind == VG_EXPR_NEG &&
			 c->a[1]->a[0]->kind == VG_EXPR_NUM) {
			c->a[1]->a[0]->num = -c->a[1]->a[0]->num;
			c->a[1] = c->a[1]->a[0];
		} else
			return fail(p, c->a[1]->pos, "fill() takes a number or "
						     "'previous'");
		return 0;
	}
	case VG_FN_SUM:
	case VG_FN_MEAN:
	case VG_FN_MAX:
	case VG_FN_MIN:
	case VG_FN_COUNT:
	case VG_FN_PCT: {
		const struct vg_expr_node *b;
		if (c->na > 2)
			return fail(p, c->a[2]->pos, "%s(series[, by=LABEL]) "
						     "takes at most two arguments",
				    fn);
		if (c->na == 1)
			return 0;
		b = c->a[1];
		if (b->kind != VG_EXPR_NAMED || strcmp(b->name, "by"))
			return fail(p, b->pos, "the second argument of %s() is "
					       "by=LABEL",
				    fn);
		if (!valid_label(b->word) || !strcmp(b->word, "id"))
			return fail(p, b->pos, "cannot group by '%.64s' (one of: "
					       "project, host, flavor, type, name, parent, "
					       "metadata.KEY)",
				    b->word);
		c->by = b->word;
		c->na = 1;
		return 0;
	}
	case VG_FN_TOP:
	case VG_FN_BOTTOM:
		if (c->na < 2 || c->na > 3)
			return fail(p, c->pos, "%s(series, N[, mean|max])", fn);
		if ((rc = int_arg(p, c, c->a[1], "N", 1, 1000, &c->iarg)))
			return rc;
		c->agg = VG_AGG_MEAN;
		if (c->na == 3) {
			c->agg = agg_of(word_of(c->a[2]), 0, 0);
			if (c->agg != VG_AGG_MEAN && c->agg != VG_AGG_MAX)
				return fail(p, c->a[2]->pos, "%s() ranks by "
							     "mean or max",
					    fn);
		}
		c->na = 1;
		return 0;
	case VG_FN_ABS:
		if (c->na != 1)
			return fail(p, c->pos, "abs(series)");
		return 0;
	}
	return fail(p, c->pos, "unknown function");
}

static int parse_call(struct parser *p, struct vg_expr_node **out)
{
	struct vg_expr_node *n;
	double pct = 0;
	int fn = fn_lookup(p->sval, &pct), rc;

	if (fn == -2)
		return fail(p, p->tpos, "bad percentile '%.32s' (p followed by "
					"0 <= NN <= 100, up to 3 decimals)",
			    p->sval);
	if (fn < 0)
		return fail(p, p->tpos, "unknown function '%.64s' (one of: "
					"resample, rolling, fill, sum, mean, max, min, "
					"count, pNN, top, bottom, abs)",
			    p->sval);
	if (!(n = node(p, VG_EXPR_CALL, p->tpos)))
		return -EINVAL;
	n->fn = fn;
	n->pct = pct;
	if ((rc = next(p)) || (rc = next(p))) /* the name, '(' */
		return rc;
	while (p->tok != T_RP) {
		struct vg_expr_node *a;
		if (n->na == 4)
			return fail(p, p->tpos, "too many arguments to %s()",
				    vg_expr_fn_name(fn));
		if (p->tok == T_IDENT && peek(p) == T_EQ) {
			if (!(a = node(p, VG_EXPR_NAMED, p->tpos)))
				return -EINVAL;
			a->name = p->sval;
			p->sval = NULL;
			if ((rc = next(p)) || (rc = next(p)))
				return rc;
			if (p->tok != T_IDENT)
				return fail(p, p->tpos, "expected a label after "
							"'%s=', got %s",
					    a->name,
					    tok_desc(p->tok));
			a->word = p->sval;
			p->sval = NULL;
			if ((rc = next(p)))
				return rc;
		} else if ((rc = parse_expr(p, &a))) {
			return rc;
		}
		n->a[n->na++] = a;
		if (p->tok == T_COMMA) {
			if ((rc = next(p)))
				return rc;
		} else if (p->tok != T_RP) {
			return fail(p, p->tpos, "expected ',' or ')' in the "
						"arguments of %s(), got %s",
				    vg_expr_fn_name(fn), tok_desc(p->tok));
		}
	}
	if ((rc = next(p)))
		return rc;
	if ((rc = check_call(p, n)))
		return rc;
	*out = n;
	return 0;
}

static int parse_unary(struct parser *p, struct vg_expr_node **out)
{
	struct vg_expr_node *n;
	int rc;

	if (++p->depth > VG_EXPR_MAX_DEPTH) {
		rc = fail(p, p->tpos, "expression nested deeper than %d",
			  VG_EXPR_MAX_DEPTH);
		goto out;
	}
	switch (p->tok) {
	case T_MINUS:
		if (!(n = node(p, VG_EXPR_NEG, p->tpos))) {
			rc = -EINVAL;
			break;
		}
		if ((rc = next(p)) || (rc = parse_unary(p, &n->a[0])))
			break;
		n->na = 1;
		*out = n;
		break;
	case T_NUM:
		if (!(n = node(p, VG_EXPR_NUM, p->tpos))) {
			rc = -EINVAL;
			break;
		}
		n->num = p->nval;
		*out = n;
		rc = next(p);
		break;
	case T_LP:
		if ((rc = next(p)) || (rc = parse_expr(p, out)))
			break;
		rc = expect(p, T_RP, "to close '('");
		break;
	case T_IDENT:
		rc = peek(p) == T_LP ? parse_call(p, out) : parse_selector(p, out);
		break;
	default:
		rc = fail(p, p->tpos, "expected a number, a metric, a function "
				      "or '(', got %s",
			  tok_desc(p->tok));
	}
out:
	p->depth--;
	return rc;
}

static int parse_binary(struct parser *p, struct vg_expr_node **out, int level)
{
	struct vg_expr_node *l, *n;
	int rc;

	rc = level ? parse_unary(p, &l) : parse_binary(p, &l, 1);
	if (rc)
		return rc;
	for (;;) {
		int t = p->tok;
		char op;
		if (level == 0 && (t == T_PLUS || t == T_MINUS))
			op = t == T_PLUS ? '+' : '-';
		else if (level == 1 && (t == T_STAR || t == T_SLASH))
			op = t == T_STAR ? '*' : '/';
		else
			break;
		if (!(n = node(p, VG_EXPR_BIN, p->tpos)))
			return -EINVAL;
		n->op = op;
		n->a[0] = l;
		n->na = 2;
		if ((rc = next(p)))
			return rc;
		rc = level ? parse_unary(p, &n->a[1]) : parse_binary(p, &n->a[1], 1);
		if (rc)
			return rc;
		l = n;
	}
	*out = l;
	return 0;
}

static int parse_expr(struct parser *p, struct vg_expr_node **out)
{
	int rc;

	if (++p->depth > VG_EXPR_MAX_DEPTH)
		rc = fail(p, p->tpos, "expression nested deeper than %d",
			  VG_EXPR_MAX_DEPTH);
	else
		rc = parse_binary(p, out, 0);
	p->depth--;
	return rc;
}

void vg_expr_free(struct vg_expr *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nnodes; i++) {
		struct vg_expr_node *n = &e->nodes[i];
		free(n->name);
		free(n->word);
		for (size_t k = 0; k < n->nm; k++) {
			free(n->m[k].label);
			free(n->m[k].value);
		}
		free(n->m);
	}
	free(e->nodes);
	free(e);
}

int vg_expr_parse(const char *text, struct vg_expr **out, char *err,
		  size_t errlen, int *pos)
{
	struct parser p = {0};
	struct vg_expr_node *root = NULL;
	int rc;

	*out = NULL;
	*pos = 0;
	if (errlen)
		err[0] = '\0';
	p.text = text;
	p.len = strlen(text);
	p.err = err;
	p.errlen = errlen;
	if (p.len > VG_EXPR_MAX_LEN) {
		snprintf(err, errlen, "expression longer than %d bytes",
			 VG_EXPR_MAX_LEN);
		*pos = VG_EXPR_MAX_LEN;
		return -EINVAL;
	}
	p.e = calloc(1, sizeof(*p.e));
	if (p.e)
		p.e->nodes = calloc(VG_EXPR_MAX_NODES, sizeof(*p.e->nodes));
	if (!p.e || !p.e->nodes) {
		vg_expr_free(p.e);
		return -ENOMEM;
	}
	rc = next(&p);
	if (!rc && p.tok == T_END)
		rc = fail(&p, 0, "empty expression");
	if (!rc)
		rc = parse_expr(&p, &root);
	if (!rc && p.tok != T_END)
		rc = fail(&p, p.tpos, "expected an operator or the end, got %s",
			  tok_desc(p.tok));
	free(p.sval);
	if (rc) {
		if (rc == -ENOMEM && errlen)
			snprintf(err, errlen, "out of memory");
		*pos = p.epos;
		vg_expr_free(p.e);
		return rc;
	}
	p.e->root = root;
	*out = p.e;
	return 0;
}
