/*
 * cli_table.c — aligned text tables and number formatting for the CLI.
 *
 * Design: a table collects every row first (the widths are only known at
 * the end), then prints each column padded to its widest cell. Widths are
 * counted in UTF-8 characters, not bytes, so names with accents line up.
 *
 * Invariants: every row has exactly ncols cells; the table owns copies of
 * every string; the last column is never padded (no trailing spaces, so
 * output diffs and `cut`/`awk` behave).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/cli.h"

struct vg_table {
	size_t ncols, nrows, caprows;
	char **cells; /* (nrows + 1) * ncols, row 0 = headers */
	int *align;
};

static size_t utf8_width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

struct vg_table *vg_table_new(size_t ncols, const char *const *headers,
			      const int *align)
{
	struct vg_table *t;

	if (!ncols)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->align = calloc(ncols, sizeof(int));
	if (!t->align) {
		free(t);
		return NULL;
	}
	if (align)
		memcpy(t->align, align, ncols * sizeof(int));
	/* row 0 holds the headers */
	t->nrows = 0;
	if (vg_table_add(t, headers)) {
		vg_table_free(t);
		return NULL;
	}
	return t;
}

int vg_table_add(struct vg_table *t, const char *const *cells)
{
	size_t rows = t->nrows + 1;

	if (rows > t->caprows) {
		size_t cap = t->caprows ? 2 * t->caprows : 16;
		char **n = realloc(t->cells, cap * t->ncols * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->cells = n;
		t->caprows = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		const char *c = cells && cells[i] && *cells[i] ? cells[i] : "-";
		row[i] = strdup(c);
		if (!row[i]) {
			while (i--)
				free(row[i]);
			return -ENOMEM;
		}
	}
	t->nrows = rows;
	return 0;
}

size_t vg_table_rows(const struct vg_table *t)
{
	return t && t->nrows ? t->nrows - 1 : 0;
}

void vg_table_print(const struct vg_table *t, FILE *f)
{
	size_t *w;

	if (!t)
		return;
	w = calloc(t->ncols, sizeof(*w));
	if (!w)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t n = utf8_width(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t pad = w[c] - utf8_width(s);
			int last = c + 1 == t->ncols;

			if (c)
				fputs("  ", f);
			if (t->align[c] == VG_ALIGN_RIGHT)
				fprintf(f, "%*s", (int)pad, "");
			fputs(s, f);
			if (t->align[c] != VG_ALIGN_RIGHT && !last)
				fprintf(f, "%*s", (int)pad, "");
		}
		fputc('\n', f);
	}
	free(w);
}

void vg_table_free(struct vg_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->align);
	free(t);
}

const char *vg_cli_format_value(double v, char *buf, size_t len)
{
	double a = fabs(v);

	if (isnan(v)) {
		snprintf(buf, len, "-");
	} else if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "inf" : "-inf");
	} else if (a >= 1e15 || (a > 0 && a < 1)) {
		snprintf(buf, len, "%.6g", v);
	} else {
		snprintf(buf, len, "%.3f", v);
		char *dot = strchr(buf, '.');
		if (dot) {
			char *e = buf + strlen(buf) - 1;
			while (e > dot && *e == '0')
				*e-- = '\0';
			if (e == dot)
				*e = '\0';
		}
		if (!strcmp(buf, "-0"))
			snprintf(buf, len, "0");
	}
	return buf;
}
