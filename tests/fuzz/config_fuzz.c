/*
 * config_fuzz.c — libFuzzer target for the INI configuration parser.
 * Any input must either load or fail with a message naming the source.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vigie/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_config c;
	char err[512] = "";
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	vg_config_defaults(&c);
	int rc = vg_config_load_string(&c, text, "fuzz.conf", err, sizeof(err));
	if (rc != 0)
		assert(strncmp(err, "fuzz.conf", 9) == 0);
	else
		assert(c.narchives >= 1 && c.agent_interval_s > 0);
	free(text);
	return 0;
}
