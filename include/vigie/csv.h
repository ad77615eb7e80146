/*
 * vigie — CSV cells a spreadsheet would run, decided in one place (the
 * invoices' CSV in billing/render.c, the CLI's --output csv in
 * query/cli/cli_table.c).
 */
#ifndef VIGIE_CSV_H
#define VIGIE_CSV_H

/* 1 when S would be run as a formula by a spreadsheet: it starts with
 * = + - @, a tab or a CR (OWASP's CSV injection), and is not a number
 * ("-6.56", "-2e-05", a credit) nor the lone "-" of an empty cell. Names
 * are the tenants' own ("=HYPERLINK(...)"): the writer puts a ' before
 * such a cell so that it stays text. */
int vg_csv_formula(const char *s);

#endif
