/*
 * alarm_rule_fuzz.c — libFuzzer target for the composite alarm rule parser.
 *
 * tests/fuzz/run.sh links targets with the common/ sources only, so this file
 * includes alarms/rule.c itself (it depends on libc alone).
 *
 * Invariants checked on every input: parsing never crashes, leaks or
 * reads past the text; a failed parse sets no rule and leaves a message;
 * a parsed rule formats to text that parses again to a rule with the same
 * references that evaluates identically under every assignment of states
 * to its first four references.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../alarms/rule.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_alarm_rule *r = NULL, *r2 = NULL;
	char *text, *canon, err[128];
	int states[VG_RULE_MAX_TERMS];

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (vg_alarm_rule_parse(text, &r, err, sizeof(err)) != 0) {
		assert(r == NULL);
		assert(err[0] != '\0');
		free(text);
		return 0;
	}
	canon = vg_alarm_rule_format(r);
	if (canon) {
		/* the canonical form may be longer than the limit; only
		 * compare when it fits */
		if (strlen(canon) <= VG_RULE_MAX_LEN) {
			assert(vg_alarm_rule_parse(canon, &r2, err, sizeof(err)) == 0);
			assert(vg_alarm_rule_nrefs(r2) == vg_alarm_rule_nrefs(r));
			for (size_t i = 0; i < vg_alarm_rule_nrefs(r); i++)
				assert(!strcmp(vg_alarm_rule_ref(r, i),
					       vg_alarm_rule_ref(r2, i)));
			/* every assignment of the first four references, the
			 * others following the fourth's pattern */
			size_t n = vg_alarm_rule_nrefs(r);
			for (unsigned c = 0; c < 81; c++) {
				unsigned x = c;
				for (size_t i = 0; i < n; i++) {
					states[i] = (int)(x % 3);
					if (i < 3)
						x /= 3;
				}
				assert(vg_alarm_rule_eval(r, states) ==
				       vg_alarm_rule_eval(r2, states));
			}
			vg_alarm_rule_free(r2);
		}
		free(canon);
	}
	vg_alarm_rule_free(r);
	free(text);
	return 0;
}
