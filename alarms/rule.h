/*
 * vigie — composite alarm rules (alarms/rule.c).
 *
 * A rule is a boolean expression over other alarms' states:
 *
 *   rule    := or
 *   or      := and { ("OR" | "||") and }
 *   and     := unary { ("AND" | "&&") unary }
 *   unary   := ("NOT" | "!") unary | primary
 *   primary := "(" rule ")" | "TRUE" | "FALSE"
 *            | state "(" name ")"        state: ALARM | OK | INSUFFICIENT_DATA
 *            | name                      same as ALARM(name)
 *   name    := [A-Za-z0-9_.:@-]+ | "..." | '...'
 *
 * Keywords are case-insensitive; a name that is a keyword must be quoted
 * (quotes hold the same characters as a bare name).
 * Example: ALARM(cpu-high) AND NOT (OK("disk full") OR web-5xx).
 *
 * The parser is a small recursive-descent one with hard limits (length
 * VG_ALARM_RULE_MAX, nesting VG_RULE_MAX_DEPTH, VG_RULE_MAX_TERMS
 * references) so hostile input costs bounded time and memory; it is fuzzed
 * (tests/fuzz/alarm_rule_fuzz.c). The compiled form is a postfix program
 * evaluated with a small stack. rule.c depends on libc only.
 *
 * Thread-safety: a compiled rule is immutable; evaluation is reentrant.
 */
#ifndef VIGIE_ALARM_RULE_H
#define VIGIE_ALARM_RULE_H

#include <stddef.h>

#define VG_RULE_MAX_DEPTH 32
#define VG_RULE_MAX_TERMS 64
#define VG_RULE_MAX_LEN 1024

struct vg_alarm_rule;

/* Parse text. 0 with *out (free with vg_alarm_rule_free), -EINVAL with a
 * message naming the byte position in err ("at 14: expected ')' after
 * the alarm name"), -E2BIG when a limit is exceeded (message in err),
 * -ENOMEM. */
int vg_alarm_rule_parse(const char *text, struct vg_alarm_rule **out,
			char *err, size_t errlen);
void vg_alarm_rule_free(struct vg_alarm_rule *r); /* accepts NULL */

/* The distinct alarm names the rule refers to, in first-use order. The
 * strings belong to the rule. */
size_t vg_alarm_rule_nrefs(const struct vg_alarm_rule *r);
const char *vg_alarm_rule_ref(const struct vg_alarm_rule *r, size_t i);

/* Evaluate with states[i] the state (enum vg_alarm_state) of reference i.
 * Returns 1 (true) or 0. */
int vg_alarm_rule_eval(const struct vg_alarm_rule *r, const int *states);

/* Canonical text: upper-case keywords, every reference as STATE("name"),
 * parentheses only where precedence needs them (so it never nests deeper
 * than the parsed text). Parsing it gives an equivalent rule. malloc'd
 * (caller frees) or NULL on out of memory. */
char *vg_alarm_rule_format(const struct vg_alarm_rule *r);

#endif
