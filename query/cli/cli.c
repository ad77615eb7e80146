/*
 * cli.c — main() of the `vigie` command-line client.
 *
 * Everything lives in query/cli/cli_*.c (query/cli/cli.h) so unit tests can run
 * the commands in-process; this file only hands over the process's
 * arguments and streams and returns the documented exit code.
 */
#include <stdio.h>

#include "query/cli/cli.h"

int main(int argc, char **argv)
{
	return vg_cli_run(argc, argv, stdout, stderr);
}
