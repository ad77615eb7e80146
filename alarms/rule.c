/*
 * rule.c — parser and evaluator for composite alarm rules
 * (alarms/rule.h has the grammar).
 *
 * Design: a tokenizer feeds a recursive-descent parser that emits a
 * postfix program (REF state idx, TRUE, FALSE, NOT, AND, OR). Evaluation
 * runs the program on a stack of booleans. Formatting rebuilds infix text
 * from the program with an explicit stack of strings.
 *
 * Invariants: the program is well formed (every operator finds its
 * operands; exactly one value remains), the recursion depth never exceeds
 * VG_RULE_MAX_DEPTH and the program never exceeds 4 * VG_RULE_MAX_TERMS +
 * 2 * VG_RULE_MAX_LEN instructions, so evaluation needs no bounds checks
 * beyond the stack size computed at parse time. Depends on libc only, so
 * the fuzz target can include this file directly.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/rule.h"

/* Same numbering as enum vg_alarm_state (vigie/alarm.h), kept local so
 * this file stands alone. */
enum { ST_INSUFFICIENT = 0,
       ST_OK = 1,
       ST_ALARM = 2 };

enum op { OP_REF,
	  OP_TRUE,
	  OP_FALSE,
	  OP_NOT,
	  OP_AND,
	  OP_OR };

struct insn {
	unsigned char op;
	unsigned char state; /* OP_REF */
	unsigned short ref;  /* OP_REF */
};

struct vg_alarm_rule {
	struct insn *prog;
	size_t nprog, capprog;
	char **refs;
	size_t nrefs;
	size_t stack; /* deepest evaluation stack */
};

enum tok {
	T_END,
	T_LP,
	T_RP,
	T_AND,
	T_OR,
	T_NOT,
	T_TRUE,
	T_FALSE,
	T_ALARM,
	T_OK,
	T_INSUFF,
	T_NAME,
	T_BAD
};

struct parser {
	const char *s;
	size_t pos;  /* next byte */
	size_t tpos; /* start of the current token */
	enum tok tok;
	char name[VG_RULE_MAX_LEN + 1];
	int depth;
	struct vg_alarm_rule *r;
	char *err;
	size_t errlen;
	int rc;
};

static int fail(struct parser *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, int rc, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (p->rc)
		return p->rc;
	p->rc = rc;
	if (p->err && p->errlen) {
		n = snprintf(p->err, p->errlen, "at %zu: ", p->tpos + 1);
		if (n >= 0 && (size_t)n < p->errlen) {
			va_start(ap, fmt);
			vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return rc;
}

static int name_char(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == ':' || c == '@' ||
	       c == '-';
}

static int kw(const char *w, size_t n, const char *k)
{
	return strlen(k) == n && !strncasecmp(w, k, n);
}

static void next(struct parser *p)
{
	const char *s = p->s;

	while (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' ||
	       s[p->pos] == '\r')
		p->pos++;
	p->tpos = p->pos;
	switch (s[p->pos]) {
	case '\0':
		p->tok = T_END;
		return;
	case '(':
		p->pos++;
		p->tok = T_LP;
		return;
	case ')':
		p->pos++;
		p->tok = T_RP;
		return;
	case '!':
		p->pos++;
		p->tok = T_NOT;
		return;
	case '&':
	case '|':
		if (s[p->pos + 1] == s[p->pos]) {
			p->tok = s[p->pos] == '&' ? T_AND : T_OR;
			p->pos += 2;
			return;
		}
		p->tok = T_BAD;
		return;
	case '"':
	case '\'': {
		char q = s[p->pos++];
		size_t n = 0;
		while (s[p->pos] && s[p->pos] != q) {
			if (!name_char((unsigned char)s[p->pos])) {
				/* quoting only lets a keyword be a name */
				p->tok = T_BAD;
				return;
			}
			p->name[n++] = s[p->pos++];
		}
		if (!s[p->pos]) {
			p->tok = T_BAD;
			return;
		}
		p->pos++;
		p->name[n] = '\0';
		p->tok = n ? T_NAME : T_BAD;
		return;
	}
	}
	if (!name_char((unsigned char)s[p->pos])) {
		p->tok = T_BAD;
		return;
	}
	size_t start = p->pos;
	while (name_char((unsigned char)s[p->pos]))
		p->pos++;
	size_t n = p->pos - start;
	const char *w = s + start;
	if (kw(w, n, "and"))
		p->tok = T_AND;
	else if (kw(w, n, "or"))
		p->tok = T_OR;
	else if (kw(w, n, "not"))
		p->tok = T_NOT;
	else if (kw(w, n, "true"))
		p->tok = T_TRUE;
	else if (kw(w, n, "false"))
		p->tok = T_FALSE;
	else if (kw(w, n, "alarm"))
		p->tok = T_ALARM;
	else if (kw(w, n, "ok"))
		p->tok = T_OK;
	else if (kw(w, n, "insufficient_data"))
		p->tok = T_INSUFF;
	else {
		memcpy(p->name, w, n);
		p->name[n] = '\0';
		p->tok = T_NAME;
	}
}

static int emit(struct parser *p, enum op op, int state, size_t ref)
{
	struct vg_alarm_rule *r = p->r;

	if (r->nprog == r->capprog) {
		size_t cap = r->capprog ? r->capprog * 2 : 16;
		struct insn *n = realloc(r->prog, cap * sizeof(*n));
		if (!n)
			return fail(p, -ENOMEM, "out of memory");
		r->prog = n;
		r->capprog = cap;
	}
	r->prog[r->nprog++] = (struct insn){(unsigned char)op,
					    (unsigned char)state,
					    (unsigned short)ref};
	return 0;
}

static int add_ref(struct parser *p, int state)
{
	struct vg_alarm_rule *r = p->r;
	size_t i;

	for (i = 0; i < r->nrefs; i++)
		if (!strcmp(r->refs[i], p->name))
			return emit(p, OP_REF, state, i);
	if (r->nrefs >= VG_RULE_MAX_TERMS)
		return fail(p, -E2BIG, "more than %d distinct alarms in one rule",
			    VG_RULE_MAX_TERMS);
	char **n = realloc(r->refs, (r->nrefs + 1) * sizeof(*n));
	if (!n)
		return fail(p, -ENOMEM, "out of memory");
	r->refs = n;
	if (!(r->refs[r->nrefs] = strdup(p->name)))
		return fail(p, -ENOMEM, "out of memory");
	r->nrefs++;
	return emit(p, OP_REF, state, i);
}

static int parse_or(struct parser *p);

static int parse_primary(struct parser *p)
{
	int state;

	switch (p->tok) {
	case T_LP:
		if (++p->depth > VG_RULE_MAX_DEPTH)
			return fail(p, -E2BIG, "nested deeper than %d levels",
				    VG_RULE_MAX_DEPTH);
		next(p);
		if (parse_or(p))
			return p->rc;
		if (p->tok != T_RP)
			return fail(p, -EINVAL, "expected ')'");
		p->depth--;
		next(p);
		return 0;
	case T_TRUE:
	case T_FALSE:
		if (emit(p, p->tok == T_TRUE ? OP_TRUE : OP_FALSE, 0, 0))
			return p->rc;
		next(p);
		return 0;
	case T_NAME:
		if (add_ref(p, ST_ALARM))
			return p->rc;
		next(p);
		return 0;
	case T_ALARM:
	case T_OK:
	case T_INSUFF:
		state = p->tok == T_ALARM ? ST_ALARM
			: p->tok == T_OK  ? ST_OK
					  : ST_INSUFFICIENT;
		next(p);
		if (p->tok != T_LP)
			return fail(p, -EINVAL,
				    "expected '(' after a state keyword (quote "
				    "an alarm named like a keyword)");
		next(p);
		if (p->tok != T_NAME)
			return fail(p, -EINVAL, "expected an alarm name");
		if (add_ref(p, state))
			return p->rc;
		next(p);
		if (p->tok != T_RP)
			return fail(p, -EINVAL, "expected ')' after the alarm name");
		next(p);
		return 0;
	case T_END:
		return fail(p, -EINVAL, "unexpected end of rule");
	case T_BAD:
		return fail(p, -EINVAL,
			    "unexpected character (names are [A-Za-z0-9_.:@-] "
			    "or quoted)");
	default:
		return fail(p, -EINVAL, "expected an alarm, TRUE, FALSE, NOT or '('");
	}
}

static int parse_unary(struct parser *p)
{
	int nots = 0;

	/* A NOT is a nesting level like a '(': the canonical form drops
	 * redundant parentheses, so "!!(!!x)" comes back as a longer run of
	 * NOTs, and must still parse (found by tests/fuzz/alarm_rule_fuzz). */
	while (p->tok == T_NOT) {
		if (++nots + p->depth > VG_RULE_MAX_DEPTH)
			return fail(p, -E2BIG, "NOTs and parentheses nested deeper "
					       "than %d levels",
				    VG_RULE_MAX_DEPTH);
		next(p);
	}
	p->depth += nots;
	if (parse_primary(p))
		return p->rc;
	p->depth -= nots;
	while (nots--)
		if (emit(p, OP_NOT, 0, 0))
			return p->rc;
	return 0;
}

static int parse_and(struct parser *p)
{
	if (parse_unary(p))
		return p->rc;
	while (p->tok == T_AND) {
		next(p);
		if (parse_unary(p) || emit(p, OP_AND, 0, 0))
			return p->rc;
	}
	return 0;
}

static int parse_or(struct parser *p)
{
	if (parse_and(p))
		return p->rc;
	while (p->tok == T_OR) {
		next(p);
		if (parse_and(p) || emit(p, OP_OR, 0, 0))
			return p->rc;
	}
	return 0;
}

void vg_alarm_rule_free(struct vg_alarm_rule *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrefs; i++)
		free(r->refs[i]);
	free(r->refs);
	free(r->prog);
	free(r);
}

int vg_alarm_rule_parse(const char *text, struct vg_alarm_rule **out,
			char *err, size_t errlen)
{
	struct parser p;
	size_t depth = 0, maxd = 0;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	memset(&p, 0, sizeof(p));
	p.err = err;
	p.errlen = errlen;
	if (!text || !*text) {
		fail(&p, -EINVAL, "empty rule");
		return -EINVAL;
	}
	if (strlen(text) > VG_RULE_MAX_LEN) {
		fail(&p, -E2BIG, "rule longer than %d bytes", VG_RULE_MAX_LEN);
		return -E2BIG;
	}
	p.s = text;
	if (!(p.r = calloc(1, sizeof(*p.r)))) {
		fail(&p, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	next(&p);
	if (!parse_or(&p) && p.tok != T_END)
		fail(&p, -EINVAL, p.tok == T_RP ? "unbalanced ')'" : p.tok == T_BAD ? "unexpected character (names are "
										      "[A-Za-z0-9_.:@-] or quoted)"
										    : "expected AND, OR or the end of the rule");
	if (p.rc) {
		vg_alarm_rule_free(p.r);
		return p.rc;
	}
	for (size_t i = 0; i < p.r->nprog; i++) {
		enum op op = p.r->prog[i].op;
		if (op == OP_REF || op == OP_TRUE || op == OP_FALSE)
			depth++;
		else if (op == OP_AND || op == OP_OR)
			depth--;
		if (depth > maxd)
			maxd = depth;
	}
	p.r->stack = maxd;
	*out = p.r;
	return 0;
}

size_t vg_alarm_rule_nrefs(const struct vg_alarm_rule *r)
{
	return r ? r->nrefs : 0;
}

const char *vg_alarm_rule_ref(const struct vg_alarm_rule *r, size_t i)
{
	return r && i < r->nrefs ? r->refs[i] : NULL;
}

int vg_alarm_rule_eval(const struct vg_alarm_rule *r, const int *states)
{
	/* The grammar bounds the stack: each nesting level or operand chain
	 * adds at most one live value per pending operator. */
	unsigned char stackbuf[256], *st = stackbuf;
	size_t sp = 0;
	int v;

	if (!r || !r->nprog)
		return 0;
	if (r->stack > sizeof(stackbuf)) {
		st = malloc(r->stack);
		if (!st)
			return 0;
	}
	for (size_t i = 0; i < r->nprog; i++) {
		const struct insn *in = &r->prog[i];
		switch (in->op) {
		case OP_REF:
			st[sp++] = states[in->ref] == in->state;
			break;
		case OP_TRUE:
			st[sp++] = 1;
			break;
		case OP_FALSE:
			st[sp++] = 0;
			break;
		case OP_NOT:
			st[sp - 1] = !st[sp - 1];
			break;
		case OP_AND:
			sp--;
			st[sp - 1] = st[sp - 1] && st[sp];
			break;
		case OP_OR:
			sp--;
			st[sp - 1] = st[sp - 1] || st[sp];
			break;
		}
	}
	v = st[0];
	if (st != stackbuf)
		free(st);
	return v;
}

/* ---- formatting --------------------------------------------------------- */

static char *cat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

/* Precedence of a formatted operand: OR 1, AND 2, NOT and atoms 3. Only
 * an operand of lower precedence than its operator gets parentheses, so
 * the canonical text never nests deeper than the text it came from (and
 * parses under the same limits). */
char *vg_alarm_rule_format(const struct vg_alarm_rule *r)
{
	char **st;
	int *prec;
	size_t sp = 0;
	char *res = NULL;
	int oom = 0;

	if (!r || !r->nprog)
		return NULL;
	st = calloc(r->nprog + 1, sizeof(*st));
	prec = calloc(r->nprog + 1, sizeof(*prec));
	if (!st || !prec) {
		free(st);
		free(prec);
		return NULL;
	}
	for (size_t i = 0; i < r->nprog && !oom; i++) {
		const struct insn *in = &r->prog[i];
		char *s = NULL;
		int p = 3;
		switch (in->op) {
		case OP_REF: {
			const char *k = in->state == ST_ALARM ? "ALARM(\""
					: in->state == ST_OK  ? "OK(\""
							      : "INSUFFICIENT_DATA(\"";
			s = cat3(k, r->refs[in->ref], "\")");
			break;
		}
		case OP_TRUE:
			s = strdup("TRUE");
			break;
		case OP_FALSE:
			s = strdup("FALSE");
			break;
		case OP_NOT:
			if (prec[sp - 1] < 3) {
				char *l = cat3("NOT (", st[sp - 1], ")");
				s = l;
			} else
				s = cat3("NOT ", st[sp - 1], "");
			free(st[--sp]);
			break;
		case OP_AND:
		case OP_OR: {
			p = in->op == OP_AND ? 2 : 1;
			const char *opname = in->op == OP_AND ? " AND " : " OR ";
			char *a = prec[sp - 2] < p ? cat3("(", st[sp - 2], ")")
						   : strdup(st[sp - 2]);
			char *b = prec[sp - 1] < p ? cat3("(", st[sp - 1], ")")
						   : strdup(st[sp - 1]);
			s = a && b ? cat3(a, opname, b) : NULL;
			free(a);
			free(b);
			free(st[--sp]);
			free(st[--sp]);
			break;
		}
		}
		if (!s)
			oom = 1;
		else {
			prec[sp] = p;
			st[sp++] = s;
		}
	}
	if (!oom && sp == 1)
		res = st[--sp];
	while (sp)
		free(st[--sp]);
	free(st);
	free(prec);
	return res;
}
