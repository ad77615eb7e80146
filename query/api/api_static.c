/*
 * api_static.c — serves the web console (query/www/) at "/".
 *
 * Design: one catch-all route "/{path*}", the last of vg_api_routes[], hands
 * us the raw rest of the path. We decode it once, check it against a strict
 * name grammar (vg_api_static_path_ok), map its extension to a Content-Type
 * (unknown extensions are not served), resolve it with realpath(3) and
 * serve it only if the result is a regular file still inside the www
 * directory (itself resolved once when chosen). Files are read on each
 * request: they are small, and an operator who updates them sees the change
 * without a restart. "/v1/..." paths that reach us are API paths no route
 * took: they get the router's JSON 404 "no such endpoint", as every other
 * miss does, so the catch-all changes nothing for API clients except that
 * a non-GET method on an unknown path is now a 405.
 *
 * Every file goes out with a Content-Security-Policy that allows only this
 * origin (scripts, styles, fetches) plus data:/blob: images (graphs are
 * fetched with the token and shown as blob: URLs), X-Frame-Options DENY and
 * Referrer-Policy no-referrer; the server adds Cache-Control no-store and
 * X-Content-Type-Options nosniff to every response.
 *
 * Invariants: nothing outside the chosen directory is ever opened for a
 * request; a request never changes the chosen directory; the directory is
 * chosen before the server starts (vg_api_static_set_dir) or, failing that,
 * once under pthread_once by the first request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/api/api_handlers.h"
#include "vigie/api_static.h"
#include "query/api/http.h"

#define REL_MAX 255 /* bytes of a decoded relative path */

static char g_dir[PATH_MAX]; /* resolved www dir, "" = none */
static int g_chosen;         /* set_dir ran (or the automatic choice did) */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ---- pure checks ------------------------------------------------------------ */

static int name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

int vg_api_static_path_ok(const char *rel)
{
	size_t len, seglen = 0;

	if (!rel)
		return 0;
	len = strlen(rel);
	if (len == 0 || len > REL_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)rel[i];

		if (c == '/' || c == '\0') {
			if (seglen == 0) /* "", "//", leading or trailing '/' */
				return 0;
			seglen = 0;
			continue;
		}
		if (!name_char(c))
			return 0;
		if (seglen == 0 && c == '.') /* "..", ".git", ".htaccess" */
			return 0;
		seglen++;
	}
	return 1;
}

const char *vg_api_static_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{"html", "text/html; charset=utf-8"},
		{"js", "text/javascript; charset=utf-8"},
		{"css", "text/css; charset=utf-8"},
		{"png", "image/png"},
		{"svg", "image/svg+xml"},
		{"ico", "image/x-icon"},
		{"json", "application/json"},
		{"txt", "text/plain; charset=utf-8"},
	};
	const char *slash, *dot;

	if (!name)
		return NULL;
	slash = strrchr(name, '/');
	dot = strrchr(slash ? slash : name, '.');
	if (!dot || !dot[1])
		return NULL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot + 1, types[i].ext))
			return types[i].type;
	return NULL;
}

/* ---- choosing the directory ------------------------------------------------- */

/* 1 and the resolved path in out if dir is a directory with index.html. */
static int usable(const char *dir, char *out)
{
	char real[PATH_MAX], index[PATH_MAX + 16];
	struct stat st;

	if (!dir || !*dir || !realpath(dir, real))
		return 0;
	if (stat(real, &st) || !S_ISDIR(st.st_mode))
		return 0;
	snprintf(index, sizeof(index), "%s/index.html", real);
	if (stat(index, &st) || !S_ISREG(st.st_mode))
		return 0;
	memcpy(out, real, strlen(real) + 1);
	return 1;
}

/* The directory of this executable, or "" when /proc is not there. */
static void exe_dir(char *out, size_t len)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char *slash;

	out[0] = '\0';
	if (n <= 0)
		return;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return;
	*slash = '\0';
	snprintf(out, len, "%s", buf);
}

static int choose_auto(char *out)
{
	char exe[PATH_MAX], cand[PATH_MAX + 32];

	exe_dir(exe, sizeof(exe));
	if (exe[0]) {
		snprintf(cand, sizeof(cand), "%s/../share/vigie/www", exe);
		if (usable(cand, out))
			return 1;
	}
	if (usable(VG_PREFIX "/share/vigie/www", out))
		return 1;
	if (exe[0]) {
		snprintf(cand, sizeof(cand), "%s/../../query/www", exe);
		if (usable(cand, out))
			return 1;
	}
	return usable("query/www", out);
}

int vg_api_static_set_dir(const char *dir, char *err, size_t errlen)
{
	char out[PATH_MAX];
	int found;

	g_chosen = 1;
	g_dir[0] = '\0';
	if (dir && *dir) {
		found = usable(dir, out);
		if (!found) {
			snprintf(err, errlen, "www_dir '%s' is not a directory "
					      "holding index.html; the web console is off",
				 dir);
			return -ENOENT;
		}
	} else {
		found = choose_auto(out);
		if (!found) {
			snprintf(err, errlen, "no web console files found (looked "
					      "in <bindir>/../share/vigie/www, " VG_PREFIX "/share/vigie/www and ./query/www); "
					      "set [collector] www_dir");
			return -ENOENT;
		}
	}
	memcpy(g_dir, out, strlen(out) + 1);
	return 0;
}

const char *vg_api_static_dir(void)
{
	return g_dir;
}

static void auto_once(void)
{
	char err[256];

	if (!g_chosen)
		vg_api_static_set_dir(NULL, err, sizeof(err));
}

/* ---- the handler ---------------------------------------------------------------- */

static int not_found(struct vg_http_req *req, struct vg_http_resp *resp)
{
	return vg_http_reply_error(resp, 404, "no such endpoint: %.200s",
				   req->path);
}

/* Read the regular file at path (at most VG_API_STATIC_MAX_FILE bytes). */
static int slurp(const char *path, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)VG_API_STATIC_MAX_FILE) {
		close(fd);
		return -ENOENT;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* shrank under us: serve what is there */
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

int vg_api_h_static(struct vg_http_req *req, struct vg_http_resp *resp)
{
	const char *raw = req->rest ? req->rest : "";
	char rel[REL_MAX + 1], path[PATH_MAX + REL_MAX + 2], real[PATH_MAX];
	const char *type;
	size_t dlen, rawlen = strlen(raw);
	char *body = NULL;
	size_t len = 0;
	int n, rc;

	pthread_once(&g_once, auto_once);
	if (rawlen == 0) {
		snprintf(rel, sizeof(rel), "index.html");
	} else {
		if (rawlen > REL_MAX)
			return not_found(req, resp);
		n = vg_http_unescape(raw, rawlen, rel, 0);
		if (n < 0)
			return not_found(req, resp);
	}
	if (!vg_api_static_path_ok(rel) || !strncmp(rel, "v1/", 3) ||
	    !(type = vg_api_static_type(rel)) || !g_dir[0])
		return not_found(req, resp);
	snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
	if (!realpath(path, real))
		return not_found(req, resp);
	dlen = strlen(g_dir);
	if (strncmp(real, g_dir, dlen) || real[dlen] != '/')
		return not_found(req, resp); /* a symlink out of the dir */
	rc = slurp(real, &body, &len);
	if (rc == -ENOMEM)
		return vg_http_reply_error(resp, 503, "out of memory");
	if (rc)
		return not_found(req, resp);
	rc = vg_http_reply_raw(resp, 200, type, body, len);
	if (rc)
		return rc;
	vg_http_resp_header(resp, "Content-Security-Policy", "%s",
			    VG_API_STATIC_CSP);
	vg_http_resp_header(resp, "X-Frame-Options", "DENY");
	vg_http_resp_header(resp, "Referrer-Policy", "no-referrer");
	return 0;
}
