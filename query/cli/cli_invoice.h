/*
 * vigie — the `vigie invoice` command (query/cli/cli_invoice.c), one entry in
 * the CLI's command table (query/cli/cli_run.c):
 *   vigie invoice --month M --project P [--format json|csv|html]
 *   vigie invoice --month M                 every project's total
 *   vigie invoice finalize --month M
 * It talks to GET /v1/invoices and POST /v1/invoices/finalize. Exit codes
 * as every command (query/cli/cli.h).
 */
#ifndef VIGIE_BILL_CLI_H
#define VIGIE_BILL_CLI_H

#include "query/cli/cli.h"

int vg_cli_cmd_invoice(struct vg_cli *c, int argc, char **argv);

#endif
