/*
 * vigie — the web console's static files (query/api/api_static.c).
 *
 * The collector serves the console (query/www/: index.html, app.js,
 * style.css) at "/" through one catch-all route, "/{path*}", which must
 * be the LAST entry of vg_api_routes[] (every API route before it wins).
 * The files hold no data: the page reads everything through the public
 * API with the user's bearer token, so the route is VG_ROUTE_PUBLIC.
 *
 * Only regular files inside the www directory are served: the request
 * path is percent-decoded once, every segment must be a plain name
 * ([A-Za-z0-9_-] and dots, not starting with a dot, so no "..", no hidden
 * files, no encoded or double-encoded traversal), the extension must be a
 * known type, and the resolved path (symlinks followed) must still lie
 * inside the directory. Anything else is the router's JSON 404 "no such
 * endpoint", so unknown API paths look the same as before.
 */
#ifndef VIGIE_API_STATIC_H
#define VIGIE_API_STATIC_H

#include <stddef.h>

#include "query/api/http.h"

/* Largest file served (bigger ones are a 404 and logged by nobody: the
 * console's files are a few tens of KiB). */
#define VG_API_STATIC_MAX_FILE (4u << 20)

/* The Content-Security-Policy sent with every file. */
#define VG_API_STATIC_CSP "default-src 'self'; img-src 'self' data: blob:"

/* Where the installed console lives when no [collector] www_dir is set
 * (PREFIX is the Makefile's, /usr/local unless the build says otherwise). */
#ifndef VG_PREFIX
#define VG_PREFIX "/usr/local"
#endif

/* Choose the directory to serve. dir non-empty: that directory (it must
 * exist and hold index.html). dir NULL or "": the first of
 *   <dir of this executable>/../share/vigie/www   (installed, any PREFIX)
 *   VG_PREFIX/share/vigie/www
 *   <dir of this executable>/../../query/www      (a checkout's build dir)
 *   ./query/www                                   (run from a checkout)
 * that holds index.html. Returns 0, or -ENOENT with a one-line reason in
 * err (the console then answers 404; the API is unaffected). Call before
 * vg_api_start (not thread-safe against running handlers); calling it
 * again replaces the choice. If it is never called, the first request
 * makes the automatic choice (thread-safe, once). */
int vg_api_static_set_dir(const char *dir, char *err, size_t errlen);

/* The directory being served (absolute, symlinks resolved), or "" when
 * none was found. Valid until the next vg_api_static_set_dir. */
const char *vg_api_static_dir(void);

/* Pure: 1 if rel (already percent-decoded, relative, e.g. "app.js",
 * "img/logo.png") is an acceptable file name by the rules above, else 0. */
int vg_api_static_path_ok(const char *rel);

/* Pure: the Content-Type for a file name by its extension (html, js, css,
 * png, svg, ico, json, txt), or NULL for any other (not served). */
const char *vg_api_static_type(const char *name);

/* The handler for GET/HEAD "/{path*}" ("/" is index.html) is
 * vg_api_h_static, declared with the other handlers in
 * query/api/api_handlers.h. */

#endif
