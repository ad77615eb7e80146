/*
 * cli_conf.c — the `vigie` CLI's per-user configuration file, so that an
 * API address and a token need not live in the shell's environment.
 *
 * Design: $VIGIE_CONFIG, else $XDG_CONFIG_HOME/vigie/cli.conf, else
 * ~/.config/vigie/cli.conf; INI lines "key = value" (api, token, cacert,
 * timeout; no section, or [cli]) read by vg_ini_parse, the daemons' syntax
 * (vigie/config.h: lines read whole, no continuation lines). A missing file is no
 * error. What it sets comes after the flags and the environment
 * (vg_cli_run: flag > $VIGIE_* > file > default).
 *
 * Invariants: a file holding a token must belong to the user running the
 * CLI and be neither readable nor writable by group or others (0600, as
 * ssh does with a key), checked on the open descriptor; otherwise it is
 * refused with one line naming the chmod. An unknown key, a value too
 * long or a line that is not "key = value" is refused with the file and
 * its line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/cli/cli.h"
#include "vigie/config.h"

int vg_cli_conf_path(char *buf, size_t len)
{
	const char *p = getenv("VIGIE_CONFIG"), *x = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	if (p && *p)
		n = snprintf(buf, len, "%s", p);
	else if (x && *x == '/')
		n = snprintf(buf, len, "%s/vigie/cli.conf", x);
	else if (home && *home)
		n = snprintf(buf, len, "%s/.config/vigie/cli.conf", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

struct parse {
	struct vg_cli_conf *cf;
	char bad[160]; /* first problem, with its line */
};

/* vg_ini_parse's callback: 0 to go on, -EINVAL (p->bad set) to stop. */
static int on_key(void *ud, const char *section, const char *key,
		  const char *value, int line)
{
	struct parse *p = ud;
	char *dst = NULL, *end;
	size_t cap = 0;

	if (*section && strcmp(section, "cli")) {
		snprintf(p->bad, sizeof(p->bad), "unknown section [%.40s]", section);
		return -EINVAL;
	}
	if (!strcmp(key, "api"))
		dst = p->cf->api, cap = sizeof(p->cf->api);
	else if (!strcmp(key, "token"))
		dst = p->cf->token, cap = sizeof(p->cf->token);
	else if (!strcmp(key, "cacert"))
		dst = p->cf->cacert, cap = sizeof(p->cf->cacert);
	else if (!strcmp(key, "timeout")) {
		long t = strtol(value, &end, 10);
		if (*end || t < 1) {
			snprintf(p->bad, sizeof(p->bad), "timeout wants a number "
							 "of seconds >= 1");
			return -EINVAL;
		}
		p->cf->timeout_s = t;
		return 0;
	} else if (!strcmp(key, "retry_wait")) {
		long t = strtol(value, &end, 10);
		if (!*value || *end || t < 0 || t > VG_CLI_RETRY_WAIT_MAX_S) {
			snprintf(p->bad, sizeof(p->bad), "retry_wait wants a number "
							 "of seconds from 0 to %d",
				 VG_CLI_RETRY_WAIT_MAX_S);
			return -EINVAL;
		}
		p->cf->retry_wait_s = t;
		p->cf->retry_wait_set = 1;
		return 0;
	} else {
		snprintf(p->bad, sizeof(p->bad), "unknown key '%.40s' (api, "
						 "token, cacert, timeout, retry_wait)",
			 key);
		return -EINVAL;
	}
	if (strlen(value) >= cap) {
		snprintf(p->bad, sizeof(p->bad), "%s is longer than %zu bytes",
			 key, cap - 1);
		return -EINVAL;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

int vg_cli_conf_load(const char *path, struct vg_cli_conf *cf, char *err,
		     size_t errlen)
{
	struct parse p = {.cf = cf};
	struct stat st;
	FILE *f;
	int fd, rc;

	memset(cf, 0, sizeof(*cf));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		rc = -errno;
		close(fd);
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	char why[128];
	int line;
	rc = vg_ini_parse(f, NULL, on_key, &p, &line, why, sizeof(why));
	fclose(f);
	if (rc) {
		snprintf(err, errlen, "%s:%d: %s", path, line,
			 p.bad[0] ? p.bad : !strncmp(why, "syntax", 6) ? "not 'key = value'"
								       : why);
		memset(cf, 0, sizeof(*cf));
		return -EINVAL;
	}
	if (cf->token[0] && (st.st_uid != geteuid() || (st.st_mode & 077))) {
		snprintf(err, errlen, "%s holds a token but %s; run: chmod 600 %s",
			 path, st.st_uid != geteuid() ? "belongs to another user" : "others may read or write it", path);
		memset(cf, 0, sizeof(*cf));
		return -EACCES;
	}
	return 0;
}
