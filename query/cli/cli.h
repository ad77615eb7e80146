/*
 * vigie — the `vigie` command-line client (query/cli/cli.c and query/cli/cli_*.c).
 *
 * The CLI talks only to the public HTTP API (libcurl + jansson), so it
 * works against any collector it can reach. main() in query/cli/cli.c calls
 * vg_cli_run(); everything else is here so unit tests can run commands
 * against a test server and compare the printed text.
 *
 * Exit codes (docs/api.md): 0 ok, 1 the API answered an error (one line on
 * stderr with its message), 2 usage error, 3 cannot connect.
 *
 * Not thread-safe (getopt state, one process = one command).
 */
#ifndef VIGIE_CLI_H
#define VIGIE_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

enum vg_cli_exit {
	VG_EXIT_OK = 0,
	VG_EXIT_API = 1,
	VG_EXIT_USAGE = 2,
	VG_EXIT_CONNECT = 3,
};

#define VG_CLI_DEFAULT_API "http://127.0.0.1:7480"
#define VG_CLI_MAX_RESPONSE (256u << 20) /* bytes of one API answer */
/* Seconds a request may wait in all between its retries of a 429 or 503
 * with Retry-After, by default (--retry-wait; query/cli/cli_http.c says
 * which requests retry), and at most */
#define VG_CLI_RETRY_WAIT_S 10
#define VG_CLI_RETRY_WAIT_MAX_S 3600

struct vg_cli {
	const char *prog;   /* "vigie", for messages */
	const char *api;    /* base URL, e.g. http://127.0.0.1:7480 */
	const char *token;  /* bearer token or NULL */
	long timeout_s;     /* whole request */
	long retry_wait_s;  /* --retry-wait: waits of one request's retries
			     * together at most (0: no retry) */
	const char *cacert; /* --cacert: CA file for https (NULL: system) */
	FILE *out;          /* results */
	FILE *err;          /* one-line errors */
};

/* Parse `[--api URL] [--token T] COMMAND [ARGS]` and run the command.
 * Defaults: api from $VIGIE_API or VG_CLI_DEFAULT_API, token from
 * $VIGIE_TOKEN. Returns an exit code (enum vg_cli_exit). */
int vg_cli_run(int argc, char **argv, FILE *out, FILE *err);

/* ---- the per-user configuration file (query/cli/cli_conf.c) ---- */
struct vg_cli_conf {
	char api[1024];
	char token[512];
	char cacert[1024];
	long timeout_s; /* 0: unset */
	long retry_wait_s;
	int retry_wait_set; /* retry_wait given (0 is a value) */
};

/* Where the file is: $VIGIE_CONFIG, else $XDG_CONFIG_HOME/vigie/cli.conf,
 * else $HOME/.config/vigie/cli.conf. 0, -ENOENT (no home), -ENAMETOOLONG. */
int vg_cli_conf_path(char *buf, size_t len);

/* Read path into *cf (zeroed first). 0 read, 1 no such file, or a
 * negative errno with one line in err: unreadable, a bad line, or a token
 * in a file that is not the user's own with mode 0600 or stricter
 * (-EACCES; *cf is then left empty). */
int vg_cli_conf_load(const char *path, struct vg_cli_conf *cf, char *err,
		     size_t errlen);

/* ---- the names people know (query/cli/cli_opts.c) ----
 * Rows of resources whose agent sent Nova's display_name and project_name
 * (as attributes, or as fields of /v1/top) get them as "name" and
 * "project", for tables; --ids keeps the ids. */
void vg_cli_known_names(json_t *rows);
/* The name project id is known by (the project_name attribute of one of
 * its resources), copied into buf; NULL if none or on error. One API
 * request. */
const char *vg_cli_project_name(struct vg_cli *c, const char *id, char *buf, size_t len);
/* A --project value (p; NULL: none) as the API filters it, in *out: p
 * itself when some resource has project p (an id wins), else the project
 * id of the resources whose project_name attribute is p (copied into buf),
 * else p. Returns VG_EXIT_OK, or an exit code with one line on c->err:
 * VG_EXIT_USAGE when the name belongs to several projects (their ids
 * listed; "<prog> <cmd>: project name 'x' names 2 projects: a, b; give
 * the id"), or a failed request's. One request when p is a project id;
 * else the look-up follows pages until 1000 resources of that name (a
 * project named only beyond them goes unseen). */
int vg_cli_resolve_project(struct vg_cli *c, const char *cmd, const char *p,
			   char *buf, size_t len, const char **out);
/* A RESOURCE operand as the API takes it, in *out: ref itself when it is
 * a resource id (an id wins), else the id of the one resource whose
 * display_name attribute is ref (copied into buf), else ref (the API then
 * says it has no such resource). Several resources of that display name:
 * VG_EXIT_USAGE with one line on c->err listing their ids and states
 * (the first 8). Failures as vg_cli_get. One request when ref is an id
 * (its 404 says nothing), else the look-up's pages (up to 1000 matches). */
int vg_cli_resolve_resource(struct vg_cli *c, const char *cmd, const char *ref,
			    char *buf, size_t len, const char **out);

/* ---- the output format (--output table|json|csv; query/cli/cli_table.c) ----
 * Process-wide, as the CLI runs one command per process: vg_table_print
 * writes CSV (RFC 4180) in csv mode, and --output json is --json. */
enum vg_cli_output { VG_OUT_TABLE = 0,
		     VG_OUT_JSON,
		     VG_OUT_CSV };
int vg_cli_set_output(const char *name); /* 0, or -EINVAL for an unknown name */
enum vg_cli_output vg_cli_output(void);

/* ---- commands (query/cli/cli_commands.c); argv[0] is the command name ---- */
int vg_cli_cmd_health(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_resources(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_show(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_measures(struct vg_cli *c, int argc, char **argv);
/* query commands and API tokens (query/cli/cli_query.c, query/cli/cli_token.c) */
int vg_cli_cmd_stats(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_latest(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_top(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_aggregate(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_graph(struct vg_cli *c, int argc, char **argv);
int vg_cli_cmd_query(struct vg_cli *c, int argc, char **argv); /* cli_expr.c */
int vg_cli_cmd_put(struct vg_cli *c, int argc, char **argv);   /* cli_put.c */
int vg_cli_cmd_token(struct vg_cli *c, int argc, char **argv);
/* alarms (query/cli/cli_alarms.c): list, show, create, update, delete,
 * enable, disable, history, watch */
int vg_cli_cmd_alarms(struct vg_cli *c, int argc, char **argv);

/* ---- HTTP (query/cli/cli_http.c) ---------------------------------------------- */

/* GET <api><path> and parse the JSON answer into *out (caller decrefs).
 * On failure prints one line to c->err ("vigie: no resource 'x' (HTTP
 * 404)") and returns VG_EXIT_API, VG_EXIT_CONNECT or VG_EXIT_USAGE (a
 * malformed --api URL); VG_EXIT_OK on success. */
int vg_cli_get(struct vg_cli *c, const char *path, json_t **out);

/* vg_cli_get, except that a 404 is no failure: VG_EXIT_OK with *out
 * NULL and nothing printed (for look-ups of what may not exist). */
int vg_cli_get_if(struct vg_cli *c, const char *path, json_t **out);

/* Any request: method ("GET", "POST", "DELETE"), path, optional JSON body
 * text. On success (HTTP < 400) *out gets the raw answer (malloc'd,
 * NUL-terminated, caller frees) and *len its length (len may be NULL).
 * Failures as vg_cli_get (one line on c->err, exit code returned). */
int vg_cli_request(struct vg_cli *c, const char *method, const char *path,
		   const char *body, char **out, size_t *len);

/* method + JSON body (may be NULL) -> JSON answer (an empty answer gives
 * an empty object). As vg_cli_get otherwise. */
int vg_cli_send(struct vg_cli *c, const char *method, const char *path,
		json_t *body, json_t **out);

/* GET <api><path> as a stream (Server-Sent Events): the bytes of a 2xx
 * answer go to fn(ud, data, len) as they arrive; fn returns 0 to go on,
 * non-zero to stop. headers: extra request headers ("Last-Event-ID: 7"),
 * NULL-terminated, may be NULL. No overall time limit; 45 s without a byte
 * is a timeout (VG_EXIT_CONNECT). stop (may be NULL) is polled about once
 * a second: set it from a signal handler to end the stream. Returns
 * VG_EXIT_OK when fn or *stop ended it or the server closed it; failures
 * as vg_cli_get (one line on c->err). Not thread-safe with respect to
 * c. */
int vg_cli_stream(struct vg_cli *c, const char *path,
		  const char *const *headers,
		  int (*fn)(void *ud, const char *data, size_t len), void *ud,
		  volatile sig_atomic_t *stop);

/* A sparkline of n values (NaN: a gap, printed as a space) in Unicode
 * block characters U+2581..U+2588 scaled between the finite min and max,
 * resampled to at most width columns (each column the mean of its
 * values). Writes a NUL-terminated UTF-8 string into out (>= 3*width+1
 * bytes). Returns the number of columns. Pure. */
size_t vg_cli_sparkline(const double *v, size_t n, size_t width, char *out,
			size_t outlen);
/* The line under a sparkline on out: "min LO  mean SUM/NPOINTS  max HI
 * last LAST  (NPOINTS points)", each value through vg_cli_format_value.
 * npoints > 0. */
void vg_cli_summary_line(FILE *out, double lo, double sum, double hi, double last,
			 size_t npoints);

/* Percent-encode s for a URL path segment or query value (everything but
 * A-Z a-z 0-9 - . _ ~). Returns a malloc'd string or NULL. */
char *vg_cli_escape(const char *s);

/* path + "?k=v&k=v" for the non-NULL values of the NULL-terminated
 * key/value list kv (values escaped). malloc'd or NULL. */
char *vg_cli_path(const char *path, const char *const *kv);

/* ---- text from the API, safe on a terminal (query/cli/cli_text.c) ------------- */

/* s rendered for a terminal: valid UTF-8 kept; newline, tab and carriage
 * return as "\n" "\t" "\r", other C0 controls and DEL as "\xHH" (ESC is
 * "\x1b"), C1 controls, U+2028/U+2029 and bidirectional overrides and
 * isolates as "\uHHHH", bytes that are not valid UTF-8 as "\xHH". The
 * result is one line. malloc'd (caller frees); NULL for NULL or out of
 * memory. Pure, thread-safe. */
char *vg_cli_safe(const char *s);
/* Print s rendered by vg_cli_safe (NULL prints nothing). */
void vg_cli_put_safe(FILE *f, const char *s);
/* printf into one line, rendered by vg_cli_safe as a whole, then "\n":
 * for plain-text lines that hold API strings (fmt itself must hold no
 * newline: it would be shown as "\n"). */
void vg_cli_line(FILE *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A document the API rendered (an invoice as CSV or HTML): byte for byte
 * to a file or pipe; to a terminal line by line, each line rendered by
 * vg_cli_safe. */
void vg_cli_put_document(FILE *f, const char *s, size_t len);
/* Columns s takes on a terminal: 2 for wide East Asian characters and
 * emoji, 0 for combining marks and zero-width characters, 1 otherwise (4
 * for a byte that is not UTF-8, as vg_cli_safe shows it). Locale-free. */
size_t vg_cli_width(const char *s);

/* ---- output (query/cli/cli_table.c) --------------------------------------- */

enum vg_align { VG_ALIGN_LEFT = 0,
		VG_ALIGN_RIGHT = 1 };

struct vg_table;

/* A table with ncols columns (headers copied; align may be NULL = all
 * left). NULL on out of memory. */
struct vg_table *vg_table_new(size_t ncols, const char *const *headers,
			      const int *align);
/* Append a row of ncols cells (copied as vg_cli_safe renders them, so a
 * cell is one line and cannot hold a terminal escape; NULL prints as
 * "-"). 0/-ENOMEM. */
int vg_table_add(struct vg_table *t, const char *const *cells);
size_t vg_table_rows(const struct vg_table *t);
/* Print with columns padded to their widest cell (in terminal columns,
 * vg_cli_width), two spaces between columns, no trailing spaces. */
void vg_table_print(const struct vg_table *t, FILE *f);
void vg_table_free(struct vg_table *t); /* accepts NULL */
/* vg_table_print, then vg_table_free (accepts NULL: prints nothing). */
void vg_table_print_free(struct vg_table *t, FILE *f);

/* Columns of a table built from JSON: the header, the member of each
 * row's object shown in it (NULL: the member's own name, in
 * vg_cli_members_table), and its enum vg_align. */
struct vg_cli_col {
	const char *header;
	const char *key;
	int align;
};

/* One row per object of the array rows, cell i vg_cli_field(row,
 * cols[i].key). NULL on out of memory (vg_table_print/free accept it). */
struct vg_table *vg_cli_rows_table(json_t *rows, const struct vg_cli_col *cols,
				   size_t ncols);
/* One row per member of the object obj, sorted by name: a column whose key
 * is NULL shows the name, the others vg_cli_field(member, key). */
struct vg_table *vg_cli_members_table(json_t *obj,
				      const struct vg_cli_col *cols,
				      size_t ncols);
/* The member names of obj in strcmp order (malloc'd array of pointers into
 * obj, *n of them; caller frees the array). NULL when obj has none or out
 * of memory (*n is then 0). */
const char **vg_cli_sorted_keys(json_t *obj, size_t *n);
/* A table "TIME" then one right-aligned column per name, each headed
 * "name (unit)" (just "name" without a unit or for the name plain, which
 * may be NULL). NULL on out of memory. */
struct vg_table *vg_cli_time_table(const char *const *names, size_t n,
				   const char *unit, const char *plain);
/* A row of such a table: the time, then vg_cli_num of each of the n
 * values. 0/-ENOMEM. */
int vg_cli_time_row(struct vg_table *t, const char *time, json_t *const *v,
		    size_t n);

/* JSON as text for a cell: the string member key of obj, or NULL. */
const char *vg_cli_str(json_t *obj, const char *key);
/* A JSON number through vg_cli_format_value into buf; NULL otherwise. */
const char *vg_cli_num(json_t *v, char *buf, size_t len);
/* Any member as text: a string as is, a number formatted, true/false,
 * other JSON compact in buf; NULL for null or missing. */
const char *vg_cli_field(json_t *obj, const char *key, char *buf, size_t len);
/* "name (unit)" into buf, or "name" when unit is NULL or empty. buf. */
const char *vg_cli_unit_label(const char *name, const char *unit, char *buf,
			      size_t len);

/* A value for people: up to 3 decimals for |v| >= 1 ("1234.5",
 * "12.346"), 6 significant digits below 1 ("0.0015"), exponent form
 * beyond 1e15; "-" for NaN. Returns buf. */
const char *vg_cli_format_value(double v, char *buf, size_t len);

/* ---- what every subcommand shares (query/cli/cli_opts.c) -------------------- */

/* getopt_long codes of the options every subcommand takes, and their
 * table rows (put VG_CLI_COMMON_OPTS in each command's struct option[]).
 * The global options (--api, --token, --timeout, --retry-wait, --cacert,
 * --output) are all here, so each may come before or after the command
 * (vigie(1)); the ones with no letter use codes below ' ' so that no
 * command's short option can take them. */
#define VG_CLI_OPT_API 'A'
#define VG_CLI_OPT_TOKEN 'T'
#define VG_CLI_OPT_JSON 'j'
#define VG_CLI_OPT_HELP 'h'
#define VG_CLI_OPT_OUTPUT 'O'
#define VG_CLI_OPT_TIMEOUT 1
#define VG_CLI_OPT_RETRY_WAIT 2
#define VG_CLI_OPT_CACERT 3
/* The global options' rows but --output (graph's --output is its PNG). */
#define VG_CLI_GLOBAL_OPTS                                                \
	{"api", required_argument, NULL, VG_CLI_OPT_API},                 \
		{"token", required_argument, NULL, VG_CLI_OPT_TOKEN},     \
		{"timeout", required_argument, NULL, VG_CLI_OPT_TIMEOUT}, \
		{"retry-wait", required_argument, NULL,                   \
		 VG_CLI_OPT_RETRY_WAIT},                                  \
	{                                                                 \
		"cacert", required_argument, NULL, VG_CLI_OPT_CACERT      \
	}
#define VG_CLI_COMMON_OPTS                                              \
	VG_CLI_GLOBAL_OPTS,                                             \
		{"output", required_argument, NULL, VG_CLI_OPT_OUTPUT}, \
		{"json", no_argument, NULL, VG_CLI_OPT_JSON},           \
	{                                                               \
		"help", no_argument, NULL, VG_CLI_OPT_HELP              \
	}

/* Handle a global option (--api, --token, --timeout, --retry-wait,
 * --cacert, --output; o is its VG_CLI_OPT_* code, optarg its value) and
 * getopt's errors, for subcommand cmd (NULL: before any command). Returns
 * -1 when the option was handled, else an exit code (usage error, one
 * line printed on c->err). */
int vg_cli_common_opt(struct vg_cli *c, const char *cmd, int o, char **argv);
/* Reset getopt before parsing a subcommand's arguments. */
void vg_cli_begin_opts(void);
/* Print j indented on c->out with a final newline. */
void vg_cli_print_json(struct vg_cli *c, json_t *j);

/* One option of a subcommand, for vg_cli_parse. */
struct vg_cli_opt {
	const char *name;   /* --name */
	const char **value; /* takes a value, stored here (the last given
			     * wins); NULL for a flag */
	int *flag;          /* a flag: set to 1 when given */
	int short_name;     /* also -x (0: none) */
};
#define VG_CLI_VAL(name, where)          \
	{                                \
		(name), (where), NULL, 0 \
	}
#define VG_CLI_FLAG(name, where)         \
	{                                \
		(name), NULL, (where), 0 \
	}

/* What a subcommand takes, for vg_cli_parse. */
struct vg_cli_spec {
	const char *name;     /* the command, for messages */
	const char *operands; /* for "expected <operands>"; NULL: none */
	int nargs;            /* how many operands, exactly, or
			       * VG_CLI_OPERANDS_ANY: the caller checks them */
	const char *usage;    /* --help synopsis after "usage: <prog> " */
	const char *about;    /* --help text after the synopsis */
};
#define VG_CLI_OPERANDS_ANY (-1)

/* Parse a subcommand's arguments (argv[0] is its name): opts (nopts of
 * them), the common --api and --token, --json when json is not NULL (*json
 * set to 0 or 1) and --help, which prints "usage: <prog> <usage>", a blank
 * line and <about> on c->out. Options and operands may come in any order;
 * then (unless spec->nargs is VG_CLI_OPERANDS_ANY) the number of operands
 * is checked ("<prog> <cmd>: expected
 * <operands> (see ...)" or "unexpected argument '<arg>'"). Returns -1 to
 * go on, with optind at the first operand, else an exit code (VG_EXIT_OK
 * after --help, VG_EXIT_USAGE with one line on c->err). */
int vg_cli_parse(struct vg_cli *c, const struct vg_cli_spec *spec,
		 const struct vg_cli_opt *opts, size_t nopts, int argc,
		 char **argv, int *json);

/* "<prog>: no points between <start> and <end>" on c->err, the times
 * taken from the answer j. */
void vg_cli_no_points(struct vg_cli *c, json_t *j);

/* GET path, which is freed here (NULL: out of memory, VG_EXIT_API). With
 * json the answer is printed (vg_cli_print_json) and *out set to NULL;
 * else *out is the answer for the caller to decref. Returns the exit code
 * (vg_cli_get's). */
int vg_cli_fetch(struct vg_cli *c, char *path, int json, json_t **out);
/* Every page of a listing: GET path?kv&limit=..&cursor=.. following the
 * answers' "next" cursor, the arrays under member joined in *all (caller
 * decrefs). limit: stop after that many (0: all). With json, prints
 * {"<member>": [...], "next": null} instead and sets *all to NULL.
 * Returns an exit code; on failure nothing is printed on c->out. */
int vg_cli_fetch_all(struct vg_cli *c, const char *path,
		     const char *const *kv, const char *member, long limit,
		     int json, json_t **all);
/* GET <api>/v1/resources/<id><suffix> (id escaped) as vg_cli_fetch. */
int vg_cli_fetch_resource(struct vg_cli *c, const char *id,
			  const char *suffix, int json, json_t **out);

#endif
