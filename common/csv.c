/*
 * vigie — CSV cells a spreadsheet would run (include/vigie/csv.h).
 */
#include <stdlib.h>
#include <string.h>

#include "vigie/csv.h"

int vg_csv_formula(const char *s)
{
	char *end;

	if (!*s || !strchr("=+-@\t\r", *s) || !strcmp(s, "-"))
		return 0;
	if ((*s == '-' || *s == '+') && !strpbrk(s, "xXnNiI")) {
		strtod(s, &end);
		if (end != s && !*end)
			return 0;
	}
	return 1;
}
