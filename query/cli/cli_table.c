/*
 * cli_table.c — aligned text tables and number formatting for the CLI.
 *
 * Design: a table collects every row first (the widths are only known at
 * the end), then prints each column padded to its widest cell. Cells come
 * from agents and tenants, so each is stored as vg_cli_safe renders it
 * (cli_text.c: no newline, tab or terminal escape gets through), and
 * widths are terminal columns (vg_cli_width), not bytes, so names with
 * accents or CJK characters line up.
 *
 * The vg_cli_* helpers at the end turn the API's JSON into cells: one
 * row per array element or per object member (sorted), time series with
 * a TIME column and one value column per series, numbers through
 * vg_cli_format_value.
 *
 * Invariants: every row has exactly ncols cells; the table owns copies of
 * every string; the last column is never padded (no trailing spaces, so
 * output diffs and `cut`/`awk` behave).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli/cli.h"
#include "vigie/csv.h"

struct vg_table {
	size_t ncols, nrows, caprows;
	char **cells; /* (nrows + 1) * ncols, row 0 = headers */
	int *align;
};

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
		row[i] = vg_cli_safe(c);
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

static enum vg_cli_output g_output = VG_OUT_TABLE;

int vg_cli_set_output(const char *name)
{
	if (!strcmp(name, "table"))
		g_output = VG_OUT_TABLE;
	else if (!strcmp(name, "json"))
		g_output = VG_OUT_JSON;
	else if (!strcmp(name, "csv"))
		g_output = VG_OUT_CSV;
	else
		return -EINVAL;
	return 0;
}

enum vg_cli_output vg_cli_output(void)
{
	return g_output;
}

/* One RFC 4180 field: quoted when it holds a comma, a quote or a line end
 * (quotes doubled), a formula kept as text. Cells were made printable
 * when added. */
static void put_csv(FILE *f, const char *s)
{
	const char *q = vg_csv_formula(s) ? "'" : "";

	if (!strpbrk(s, ",\"\r\n")) {
		fputs(q, f);
		fputs(s, f);
		return;
	}
	fputc('"', f);
	fputs(q, f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void print_csv(const struct vg_table *t, FILE *f)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			if (c)
				fputc(',', f);
			put_csv(f, t->cells[r * t->ncols + c]);
		}
		fputs("\r\n", f);
	}
}

void vg_table_print(const struct vg_table *t, FILE *f)
{
	size_t *w;

	if (!t)
		return;
	if (g_output == VG_OUT_CSV) {
		print_csv(t, f);
		return;
	}
	w = calloc(t->ncols, sizeof(*w));
	if (!w)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t n = vg_cli_width(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t pad = w[c] - vg_cli_width(s);
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

void vg_table_print_free(struct vg_table *t, FILE *f)
{
	vg_table_print(t, f);
	vg_table_free(t);
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

/* ---- JSON to cells --------------------------------------------------------- */

const char *vg_cli_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

const char *vg_cli_num(json_t *v, char *buf, size_t len)
{
	if (!json_is_number(v))
		return NULL;
	return vg_cli_format_value(json_number_value(v), buf, len);
}

const char *vg_cli_field(json_t *obj, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_number(v))
		return vg_cli_num(v, buf, len);
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(buf, len, "%s", s ? s : "");
	free(s);
	return buf;
}

const char *vg_cli_unit_label(const char *name, const char *unit, char *buf,
			      size_t len)
{
	if (unit && *unit)
		snprintf(buf, len, "%s (%s)", name, unit);
	else
		snprintf(buf, len, "%s", name);
	return buf;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **vg_cli_sorted_keys(json_t *obj, size_t *n)
{
	size_t cap = json_object_size(obj);
	const char **keys = cap ? calloc(cap, sizeof(*keys)) : NULL, *k;
	json_t *v;

	*n = 0;
	if (!keys)
		return NULL;
	json_object_foreach(obj, k, v) {
		if (*n < cap)
			keys[(*n)++] = k;
	}
	qsort(keys, *n, sizeof(*keys), cmp_str);
	return keys;
}

/* A table with the headers and alignments of cols. */
static struct vg_table *cols_table(const struct vg_cli_col *cols, size_t ncols)
{
	const char **hdr = calloc(ncols, sizeof(*hdr));
	int *al = calloc(ncols, sizeof(*al));
	struct vg_table *t = NULL;

	if (hdr && al) {
		for (size_t i = 0; i < ncols; i++) {
			hdr[i] = cols[i].header;
			al[i] = cols[i].align;
		}
		t = vg_table_new(ncols, hdr, al);
	}
	free(hdr);
	free(al);
	return t;
}

/* Add the row of obj (name: its member name, for a NULL key). */
static int add_obj_row(struct vg_table *t, const struct vg_cli_col *cols,
		       size_t ncols, json_t *obj, const char *name)
{
	const char **row = calloc(ncols, sizeof(*row));
	char(*b)[64] = calloc(ncols, sizeof(*b));
	int rc = -ENOMEM;

	if (row && b) {
		for (size_t i = 0; i < ncols; i++)
			row[i] = cols[i].key ? vg_cli_field(obj, cols[i].key,
							    b[i], sizeof(b[i]))
					     : name;
		rc = vg_table_add(t, row);
	}
	free(row);
	free(b);
	return rc;
}

struct vg_table *vg_cli_rows_table(json_t *rows, const struct vg_cli_col *cols,
				   size_t ncols)
{
	struct vg_table *t = cols_table(cols, ncols);
	size_t i;
	json_t *r;

	json_array_foreach(rows, i, r) {
		if (t)
			add_obj_row(t, cols, ncols, r, NULL);
	}
	return t;
}

struct vg_table *vg_cli_members_table(json_t *obj,
				      const struct vg_cli_col *cols,
				      size_t ncols)
{
	struct vg_table *t = cols_table(cols, ncols);
	size_t n;
	const char **keys = vg_cli_sorted_keys(obj, &n);

	for (size_t i = 0; t && i < n; i++)
		add_obj_row(t, cols, ncols, json_object_get(obj, keys[i]),
			    keys[i]);
	free(keys);
	return t;
}

struct vg_table *vg_cli_time_table(const char *const *names, size_t n,
				   const char *unit, const char *plain)
{
	struct vg_cli_col *cols = calloc(n + 1, sizeof(*cols));
	char(*hb)[128] = calloc(n + 1, sizeof(*hb));
	struct vg_table *t = NULL;

	if (cols && hb) {
		cols[0].header = "TIME";
		for (size_t i = 0; i < n; i++) {
			const char *u = plain && !strcmp(names[i], plain) ? NULL
									  : unit;
			cols[i + 1].header = vg_cli_unit_label(names[i], u, hb[i + 1],
							       sizeof(hb[i + 1]));
			cols[i + 1].align = VG_ALIGN_RIGHT;
		}
		t = cols_table(cols, n + 1);
	}
	free(cols);
	free(hb);
	return t;
}

int vg_cli_time_row(struct vg_table *t, const char *time, json_t *const *v,
		    size_t n)
{
	const char **row = calloc(n + 1, sizeof(*row));
	char(*b)[64] = calloc(n + 1, sizeof(*b));
	int rc = -ENOMEM;

	if (row && b) {
		row[0] = time;
		for (size_t i = 0; i < n; i++)
			row[i + 1] = vg_cli_num(v[i], b[i + 1], sizeof(b[i + 1]));
		rc = vg_table_add(t, row);
	}
	free(row);
	free(b);
	return rc;
}
