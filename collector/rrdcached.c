/*
 * rrdcached.c — a client for rrdcached's line protocol, one connection per
 * client object (include/vigie/rrdcached.h).
 *
 * Why not librrd's client. Debian's librrd 1.7.2 exports only the
 * single-connection client (rrdc_connect, rrdc_update, rrdc_fetch, ...):
 * one global connection per process, behind one lock. The store needs
 * several daemons at once (series are placed over them by rendezvous hashing) and
 * several threads talking to them in parallel (the flusher writing while
 * the API fetches); with the global connection every rrdc_connect to a
 * second daemon drops the first, and every call of every thread is
 * serialised. The multi-connection rrd_client_* functions declared in
 * rrd_client.h are not exported by the shared library. librrd's client
 * also sends one UPDATE per synchronous call (collectd's plugin tops out
 * near 23k values/s that way), while the protocol's BATCH carries any
 * number of commands in one round trip. The protocol is small, line based
 * and documented (rrdcached(1)), so this file speaks it directly.
 *
 * Protocol, as rrdcached 1.7.2 answers it (checked against the daemon):
 *   command line  -> "N message" + N lines (N >= 0), or "-1 message".
 *   BATCH, commands..., "." -> "0 Go ahead...", then "N errors" and one
 *                    line "<command number> <message>" per refused
 *                    command (successes are silent).
 * Two quirks shape the reader. Some error messages hold a newline (CREATE
 * without -R: "No permission to recursively create: DIR\nDid you pass -R
 * to the daemon?"), so an error's status line may be followed by lines
 * the protocol does not announce; after any error the client sends PING
 * and reads up to its "0 PONG", taking what comes before as the rest of
 * the message, so the connection is never out of step. A BATCH always
 * ends with a PING in the same write, for the same reason, without an
 * extra round trip. And FIRST needs its archive number in 1.7.2, and
 * LASTUPDATE does not exist there.
 *
 * Invariants. Between two calls the connection is idle: every answer has
 * been read in full, or the socket has been closed (fd < 0) after a
 * failure that may have left bytes in flight (timeout, malformed answer,
 * reset), so a late answer can never be taken for the next command's.
 * Every read and write waits at most io_timeout_ms. Every answer is
 * bounded (VG_RRDCD_LINE_MAX per line, VG_RRDCD_LINES_MAX lines) and read
 * through one fixed buffer; the write buffer is fixed too, and a long
 * BATCH is written through it in pieces (the daemon answers nothing
 * before the ".", so writing while it reads cannot deadlock).
 *
 * Why one file (~1,100 lines): one client of one protocol. Every command
 * goes through the same connection state, fixed buffers and
 * error-then-PING resynchronisation described above; splitting the commands
 * from the socket I/O would publish that state for no caller's benefit
 * (callers see only include/vigie/rrdcached.h).
 */
#include "vigie/clock.h"
#include "vigie/rrdcached.h"
#include "collector/rrd_format.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WBUF_CAP (64 * 1024)
#define RBUF_CAP (VG_RRDCD_LINE_MAX + 1)
#define ERR_MAX 512
#define RESYNC_LINES_MAX 64

struct vg_rrdcd {
	char *addr;
	int fd;
	int timeout_ms;
	char err[ERR_MAX];
	char *rbuf; /* received bytes [rpos, rlen) not yet consumed */
	size_t rpos, rlen;
	char *wbuf; /* bytes to send [0, wlen) */
	size_t wlen;
	size_t inflight; /* FLUSHes of a sent BATCH whose answer is unread */
	/* wall ms (vg_now_ms) once the current connection was made: the
	 * daemon process that accepted it has run since at least then */
	int64_t connected_ms;
};

/* ---- errors ----------------------------------------------------------- */

static void set_err(struct vg_rrdcd *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_err(struct vg_rrdcd *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static void drop_conn(struct vg_rrdcd *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->rpos = c->rlen = 0;
	c->wlen = 0;
	c->inflight = 0;
}

/* A failure that leaves the connection in an unknown state: close it. */
static int broken(struct vg_rrdcd *c, int rc, const char *what)
{
	set_err(c, "%s: %s: %s", c->addr, what, strerror(-rc));
	drop_conn(c);
	return rc;
}

/* The errno a daemon's error message stands for. */
static int daemon_errno(const char *msg)
{
	if (strstr(msg, "File exists"))
		return -EEXIST;
	if (strstr(msg, "Permission denied") || strstr(msg, "No permission"))
		return -EACCES;
	if (strstr(msg, "No such file"))
		return -ENOENT;
	return -EREMOTEIO;
}

/* ---- socket I/O ------------------------------------------------------- */

static int wait_fd(struct vg_rrdcd *c, short events)
{
	struct pollfd p = {.fd = c->fd, .events = events};

	for (;;) {
		int n = poll(&p, 1, c->timeout_ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int wflush(struct vg_rrdcd *c)
{
	size_t off = 0;

	while (off < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + off, c->wlen - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(c, POLLOUT);
			if (rc)
				return broken(c, rc, "write");
			continue;
		}
		return broken(c, n < 0 ? -errno : -EIO, "write");
	}
	c->wlen = 0;
	return 0;
}

static int wput(struct vg_rrdcd *c, const char *s, size_t len)
{
	if (c->wlen + len > WBUF_CAP) {
		int rc = wflush(c);
		if (rc)
			return rc;
	}
	memcpy(c->wbuf + c->wlen, s, len);
	c->wlen += len;
	return 0;
}

/* The next line of the answer, without its "\n" (and "\r"), NUL-ended;
 * valid until the next read_line. */
static int read_line(struct vg_rrdcd *c, char **line)
{
	for (;;) {
		char *nl = memchr(c->rbuf + c->rpos, '\n', c->rlen - c->rpos);
		if (nl) {
			char *s = c->rbuf + c->rpos;
			if (memchr(s, '\0', (size_t)(nl - s)))
				return broken(c, -EPROTO, "NUL byte in answer");
			*nl = '\0';
			if (nl > s && nl[-1] == '\r')
				nl[-1] = '\0';
			c->rpos = (size_t)(nl - c->rbuf) + 1;
			*line = s;
			return 0;
		}
		if (c->rpos > 0) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		if (c->rlen >= RBUF_CAP - 1)
			return broken(c, -EMSGSIZE, "answer line too long");
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - 1 - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n == 0)
			return broken(c, -ECONNRESET, "connection closed by the daemon");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(c, POLLIN);
			if (rc)
				return broken(c, rc, "read");
			continue;
		}
		return broken(c, -errno, "read");
	}
}

/* "N message": N into *status, the message (after the spaces) in *msg. */
static int parse_status(struct vg_rrdcd *c, char *line, long *status, char **msg)
{
	char *end;

	errno = 0;
	long v = strtol(line, &end, 10);
	if (end == line || errno || (*end && *end != ' ') || (line[0] != '-' && !isdigit((unsigned char)line[0])))
		return broken(c, -EPROTO, "malformed status line");
	while (*end == ' ')
		end++;
	*status = v;
	*msg = end;
	return 0;
}

static int read_status(struct vg_rrdcd *c, long *status, char **msg)
{
	char *line;
	int rc = read_line(c, &line);

	if (rc)
		return rc;
	return parse_status(c, line, status, msg);
}

/* After an error: PING, and read up to the PONG; the lines before it are
 * the rest of the error message (appended to c->err). */
static int resync(struct vg_rrdcd *c)
{
	char *line;
	int rc;

	if ((rc = wput(c, "PING\n", 5)) || (rc = wflush(c)))
		return rc;
	for (int i = 0; i < RESYNC_LINES_MAX; i++) {
		if ((rc = read_line(c, &line)))
			return rc;
		if (!strcmp(line, "0 PONG"))
			return 0;
		size_t l = strlen(c->err);
		snprintf(c->err + l, sizeof(c->err) - l, " / %s", line);
	}
	return broken(c, -EPROTO, "no PONG after an error");
}

/* A negative status: record the daemon's message, get back in step, and
 * return the errno it stands for. */
static int daemon_error(struct vg_rrdcd *c, const char *msg)
{
	int e = daemon_errno(msg);
	int rc;

	set_err(c, "%s", msg);
	if ((rc = resync(c)))
		return rc;
	return e;
}

/* Send the one-line command in c->wbuf and read its status line; for a
 * daemon error, return its errno (connection kept). */
static int roundtrip(struct vg_rrdcd *c, long *status, char **msg)
{
	int rc;

	if (c->fd < 0) {
		c->wlen = 0;
		set_err(c, "%s: not connected", c->addr);
		return -ENOTCONN;
	}
	if ((rc = wflush(c)) || (rc = read_status(c, status, msg)))
		return rc;
	if (*status < 0)
		return daemon_error(c, *msg);
	if (*status > VG_RRDCD_LINES_MAX)
		return broken(c, -EMSGSIZE, "answer announces too many lines");
	c->err[0] = '\0';
	return 0;
}

/* Read and ignore n lines (an answer we do not use). */
static int skip_lines(struct vg_rrdcd *c, long n)
{
	char *line;
	int rc;

	for (long i = 0; i < n; i++)
		if ((rc = read_line(c, &line)))
			return rc;
	return 0;
}

/* ---- arguments -------------------------------------------------------- */

/* A word the protocol can carry: 1..NAME_MAX bytes, no space, no control
 * character. */
static int check_word(struct vg_rrdcd *c, const char *s, const char *what)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > VG_RRDCD_NAME_MAX) {
		set_err(c, "%s: empty or longer than %d bytes", what, VG_RRDCD_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch == 0x7f) {
			set_err(c, "%s: space or control character in \"%.64s\"", what, s);
			return -EINVAL;
		}
	}
	return 0;
}

/* The connection can start a command: connected, and no BATCH sent by
 * vg_rrdcd_flush_many_send waits for its answer (-EBUSY: the answer
 * would be taken for this command's). */
static int ready(struct vg_rrdcd *c)
{
	if (c->fd < 0) {
		set_err(c, "%s: not connected", c->addr);
		return -ENOTCONN;
	}
	if (c->inflight) {
		set_err(c, "%s: a FLUSH BATCH waits for its answer", c->addr);
		return -EBUSY;
	}
	return 0;
}

/* Append a command "VERB FILE [args]\n" to the write buffer (copied, not
 * printf'd: a sync sends one FLUSH per file written). */
static uint64_t flushes_written; /* __atomic: vg_rrdcd_flushes_written */

uint64_t vg_rrdcd_flushes_written(void)
{
	return __atomic_load_n(&flushes_written, __ATOMIC_RELAXED);
}

static int cmd(struct vg_rrdcd *c, const char *verb, const char *file, const char *args)
{
	const char *part[3] = {verb, file, args};
	char line[VG_RRDCD_CMD_MAX];
	size_t n = 0;
	int rc;

	if ((rc = ready(c)))
		return rc;
	if (file && (rc = check_word(c, file, "file name")))
		return rc;
	for (size_t i = 0; i < 3; i++) {
		size_t l;
		if (!part[i])
			continue;
		l = strlen(part[i]);
		if (n + (n > 0) + l + 1 >= sizeof(line)) {
			set_err(c, "%s: command longer than %d bytes", verb, VG_RRDCD_CMD_MAX);
			return -EINVAL;
		}
		if (n)
			line[n++] = ' ';
		memcpy(line + n, part[i], l);
		n += l;
	}
	line[n++] = '\n';
	if (!strcmp(verb, "FLUSH"))
		__atomic_fetch_add(&flushes_written, 1, __ATOMIC_RELAXED);
	return wput(c, line, n);
}

/* ---- connect ---------------------------------------------------------- */

/* Non-blocking connect bounded by the timeout. */
static int connect_to(struct vg_rrdcd *c, int family, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) < 0) {
		/* a unix socket with a full backlog says EAGAIN: not in
		 * progress, refused for now */
		if (errno != EINPROGRESS) {
			rc = -errno;
		} else {
			int e = 0;
			socklen_t el = sizeof(e);
			c->fd = fd;
			rc = wait_fd(c, POLLOUT);
			c->fd = -1;
			if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
				rc = -errno;
			else if (!rc && e)
				rc = -e;
		}
	}
	if (rc) {
		close(fd);
		return rc;
	}
	if (family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c->fd = fd;
	c->connected_ms = vg_now_ms();
	return 0;
}

static int do_connect(struct vg_rrdcd *c)
{
	const char *a = c->addr;
	char host[256], port[8];
	const char *hs, *ps = NULL;
	size_t hl;

	drop_conn(c);
	if (!strncmp(a, "unix:", 5) || a[0] == '/') {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		const char *path = a[0] == '/' ? a : a + 5;
		if (!*path || strlen(path) >= sizeof(un.sun_path)) {
			set_err(c, "%s: unix socket path empty or too long", a);
			return -EINVAL;
		}
		memcpy(un.sun_path, path, strlen(path) + 1);
		int rc = connect_to(c, AF_UNIX, (struct sockaddr *)&un, sizeof(un));
		if (rc)
			set_err(c, "%s: connect: %s", a, strerror(-rc));
		return rc;
	}
	if (a[0] == '[') {
		const char *rb = strchr(a, ']');
		if (!rb || (rb[1] && rb[1] != ':')) {
			set_err(c, "%s: bad address (want [v6]:port)", a);
			return -EINVAL;
		}
		hs = a + 1;
		hl = (size_t)(rb - hs);
		ps = rb[1] ? rb + 2 : NULL;
	} else {
		const char *colon = strchr(a, ':');
		hs = a;
		if (colon && !strchr(colon + 1, ':')) {
			hl = (size_t)(colon - a);
			ps = colon + 1;
		} else {
			hl = strlen(a); /* no port, or a bare v6 address */
		}
	}
	if (!hl || hl >= sizeof(host)) {
		set_err(c, "%s: empty or too long host", a);
		return -EINVAL;
	}
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (ps) {
		char *end;
		errno = 0;
		long p = strtol(ps, &end, 10);
		if (!*ps || *end || errno || p < 1 || p > 65535) {
			set_err(c, "%s: bad port", a);
			return -EINVAL;
		}
		snprintf(port, sizeof(port), "%ld", p);
	} else {
		snprintf(port, sizeof(port), "%d", VG_RRDCD_DEFAULT_PORT);
	}

	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res, *ai;
	int g = getaddrinfo(host, port, &hints, &res), rc = -EHOSTUNREACH;
	if (g) {
		set_err(c, "%s: %s", a, gai_strerror(g));
		return g == EAI_SYSTEM && errno ? -errno : -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if (!(rc = connect_to(c, ai->ai_family, ai->ai_addr, ai->ai_addrlen)))
			break;
	freeaddrinfo(res);
	if (rc)
		set_err(c, "%s: connect: %s", a, strerror(-rc));
	return rc;
}

int vg_rrdcd_connect(const char *addr, int io_timeout_ms, struct vg_rrdcd **out)
{
	struct vg_rrdcd *c;
	int rc;

	*out = NULL;
	if (!addr || !*addr || io_timeout_ms <= 0)
		return -EINVAL;
	if (!(c = calloc(1, sizeof(*c))))
		return -ENOMEM;
	c->fd = -1;
	c->timeout_ms = io_timeout_ms;
	c->addr = strdup(addr);
	c->rbuf = malloc(RBUF_CAP);
	c->wbuf = malloc(WBUF_CAP);
	if (!c->addr || !c->rbuf || !c->wbuf) {
		vg_rrdcd_close(c);
		return -ENOMEM;
	}
	if ((rc = do_connect(c))) {
		vg_rrdcd_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

int vg_rrdcd_set_timeout(struct vg_rrdcd *c, int io_timeout_ms)
{
	if (io_timeout_ms <= 0)
		return -EINVAL;
	c->timeout_ms = io_timeout_ms;
	return 0;
}

int vg_rrdcd_reconnect(struct vg_rrdcd *c)
{
	return do_connect(c);
}

void vg_rrdcd_close(struct vg_rrdcd *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		c->wlen = 0;
		if (!wput(c, "QUIT\n", 5))
			(void)send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	drop_conn(c);
	free(c->addr);
	free(c->rbuf);
	free(c->wbuf);
	free(c);
}

int vg_rrdcd_connected(const struct vg_rrdcd *c)
{
	return c && c->fd >= 0;
}

int64_t vg_rrdcd_connected_ms(const struct vg_rrdcd *c)
{
	return vg_rrdcd_connected(c) ? c->connected_ms : INT64_MAX;
}

const char *vg_rrdcd_error(const struct vg_rrdcd *c)
{
	return c ? c->err : "";
}

const char *vg_rrdcd_address(const struct vg_rrdcd *c)
{
	return c ? c->addr : "";
}

/* ---- simple commands -------------------------------------------------- */

/* A command whose answer is a status line and lines we ignore. */
static int simple(struct vg_rrdcd *c, const char *verb, const char *file, const char *args)
{
	long st;
	char *msg;
	int rc = cmd(c, verb, file, args);

	if (rc || (rc = roundtrip(c, &st, &msg)))
		return rc;
	return skip_lines(c, st);
}

int vg_rrdcd_ping(struct vg_rrdcd *c)
{
	long st;
	char *msg;
	int rc = cmd(c, "PING", NULL, NULL);

	if (rc || (rc = roundtrip(c, &st, &msg)))
		return rc;
	if (st != 0 || strcmp(msg, "PONG"))
		return broken(c, -EPROTO, "PING not answered by PONG");
	return 0;
}

int vg_rrdcd_flush(struct vg_rrdcd *c, const char *file)
{
	return simple(c, "FLUSH", file, NULL);
}

int vg_rrdcd_flushall(struct vg_rrdcd *c)
{
	return simple(c, "FLUSHALL", NULL, NULL);
}

int vg_rrdcd_forget(struct vg_rrdcd *c, const char *file)
{
	/* 1.7.2 answers "-1 No such file or directory" when nothing is
	 * cached: -ENOENT */
	return simple(c, "FORGET", file, NULL);
}

int vg_rrdcd_dir(struct vg_rrdcd *c, const char *dir)
{
	char arg[VG_RRDCD_NAME_MAX + 2];

	if (snprintf(arg, sizeof(arg), "/%s", dir ? dir : "") >= (int)sizeof(arg)) {
		set_err(c, "directory name longer than %d bytes", VG_RRDCD_NAME_MAX);
		return -EINVAL;
	}
	/* 1.7.2: "-1 List BASE/DIR: No such file or directory" */
	return simple(c, "LIST", arg, NULL);
}

int vg_rrdcd_create(struct vg_rrdcd *c, const char *file, uint32_t step_s, int64_t start,
		    const char *const *defs, size_t ndefs, int no_overwrite)
{
	char args[VG_RRDCD_CMD_MAX];
	size_t len;
	int rc;

	if (!step_s || !ndefs) {
		set_err(c, "create: step and definitions are required");
		return -EINVAL;
	}
	len = (size_t)snprintf(args, sizeof(args), "-s %" PRIu32 " -b %" PRId64 "%s", step_s, start,
			       no_overwrite ? " -O" : "");
	for (size_t i = 0; i < ndefs; i++) {
		if ((rc = check_word(c, defs[i], "definition")))
			return rc;
		size_t dl = strlen(defs[i]);
		if (len + 1 + dl >= sizeof(args) - 64) {
			set_err(c, "create: definitions longer than %d bytes", VG_RRDCD_CMD_MAX);
			return -EINVAL;
		}
		args[len++] = ' ';
		memcpy(args + len, defs[i], dl + 1);
		len += dl;
	}
	return simple(c, "CREATE", file, args);
}

/* The single number of a FIRST/LAST answer ("0 1000000030"). */
static int number_answer(struct vg_rrdcd *c, const char *verb, const char *file,
			 const char *args, int64_t *out)
{
	long st;
	char *msg, *end;
	int rc = cmd(c, verb, file, args);

	if (rc || (rc = roundtrip(c, &st, &msg)))
		return rc;
	errno = 0;
	long long v = strtoll(msg, &end, 10);
	if (st != 0 || end == msg || *end || errno)
		return broken(c, -EPROTO, "malformed time in answer");
	*out = v;
	return 0;
}

int vg_rrdcd_first(struct vg_rrdcd *c, const char *file, unsigned rra, int64_t *out)
{
	char a[16];

	snprintf(a, sizeof(a), "%u", rra);
	return number_answer(c, "FIRST", file, a, out);
}

int vg_rrdcd_last(struct vg_rrdcd *c, const char *file, int64_t *out)
{
	return number_answer(c, "LAST", file, NULL, out);
}

/* ---- updates and BATCH ------------------------------------------------ */

static int check_update(struct vg_rrdcd *c, const struct vg_rrdcd_update *u)
{
	int rc = check_word(c, u->file, "file name");

	if (rc)
		return rc;
	if (!u->n || !u->nds || !u->ts || !u->values) {
		set_err(c, "%s: no values", u->file);
		return -EINVAL;
	}
	/* one timestamp's values must fit in one command: "UPDATE FILE"
	 * + " ts" (<= 21) + ":value" (<= 25 with %.17g) per data source */
	if (strlen(u->file) + 8 + 21 + u->nds * 25 >= VG_RRDCD_CMD_MAX) {
		set_err(c, "%s: %zu data sources do not fit in one command", u->file, u->nds);
		return -EINVAL;
	}
	for (size_t i = 1; i < u->n; i++)
		if (u->ts[i] <= u->ts[i - 1]) {
			set_err(c, "%s: timestamps not strictly increasing", u->file);
			return -EINVAL;
		}
	return 0;
}

/* One " ts:v:v" token into buf (cap bytes); its length, or 0 if it does
 * not fit. Written without printf for the common values
 * (collector/rrd_format.h): printf's %.17g was the largest part of the
 * client's CPU per value. */
static size_t format_values(char *buf, size_t cap, const struct vg_rrdcd_update *u, size_t i)
{
	char *p = buf, *end = buf + cap;

	if (cap < 2 + VG_RRD_FMT_LEN)
		return 0;
	*p++ = ' ';
	if (u->ts_ms) {
		p = vg_rrd_fmt_time_ms(p, u->ts[i]);
	} else {
		int n = snprintf(p, VG_RRD_FMT_LEN, "%" PRId64, u->ts[i]);
		if (n < 0 || n >= VG_RRD_FMT_LEN)
			return 0;
		p += n;
	}
	for (size_t d = 0; d < u->nds; d++) {
		double v = u->values[i * u->nds + d];
		if ((size_t)(end - p) < 2 + VG_RRD_FMT_LEN)
			return 0;
		*p++ = ':';
		if (isfinite(v))
			p = vg_rrd_fmt_value(p, v);
		else
			*p++ = 'U';
	}
	*p = '\0';
	return (size_t)(p - buf);
}

/* Append U's values as UPDATE commands of at most VG_RRDCD_CMD_MAX bytes,
 * starting at timestamp *next; stops after max_cmds commands. Returns the
 * number of commands appended (>= 1) or a negative errno. */
static long emit_update(struct vg_rrdcd *c, const struct vg_rrdcd_update *u, size_t *next,
			long max_cmds)
{
	char line[VG_RRDCD_CMD_MAX], tok[VG_RRDCD_CMD_MAX];
	size_t flen = strlen(u->file), head = 7 + flen, len;
	long ncmd = 0;
	int rc;

	if (head >= sizeof(line)) { /* check_update bounds the name: not reached */
		set_err(c, "%s: file name too long for a command", u->file);
		return -EINVAL;
	}
	memcpy(line, "UPDATE ", 7);
	memcpy(line + 7, u->file, flen);
	while (*next < u->n && ncmd < max_cmds) {
		len = head;
		while (*next < u->n) {
			size_t tl = format_values(tok, sizeof(tok), u, *next);
			if (!tl || head + tl + 1 >= sizeof(line)) {
				set_err(c, "%s: one timestamp's values do not fit in a command",
					u->file);
				return -EINVAL;
			}
			if (len + tl + 1 >= sizeof(line))
				break;
			memcpy(line + len, tok, tl);
			len += tl;
			(*next)++;
		}
		line[len++] = '\n';
		if ((rc = wput(c, line, len)))
			return rc;
		ncmd++;
	}
	return ncmd;
}

/* Read a BATCH answer up to the PING's PONG. cmd_item maps command
 * numbers (1-based) to items (NULL: command k is item k - 1). */
static int read_batch_answer(struct vg_rrdcd *c, const size_t *cmd_item, size_t ncmds,
			     size_t nitems, int *item_err, struct vg_rrdcd_batch_result *res)
{
	long st, lines = 0;
	char *line, *msg;
	int rc, seen = 0, append = 0; /* an error line read; its text is c->err */

	if ((rc = read_status(c, &st, &msg)))
		return rc;
	if (st != 0)
		return broken(c, -EPROTO, "BATCH not accepted");
	if ((rc = read_status(c, &st, &msg)))
		return rc;
	if (st < 0) { /* the whole batch refused: every item failed */
		int e = daemon_errno(msg);
		set_err(c, "%s", msg);
		for (size_t i = 0; i < nitems; i++)
			item_err[i] = e;
		res->nfailed = nitems;
		res->nerrors = 1;
		seen = append = 1;
	}
	for (;;) {
		if ((rc = read_line(c, &line)))
			return rc;
		if (!strcmp(line, "0 PONG"))
			return 0;
		if (++lines > VG_RRDCD_LINES_MAX)
			return broken(c, -EMSGSIZE, "BATCH answer too long");
		char *end = line;
		unsigned long long no = 0;
		errno = 0;
		if (isdigit((unsigned char)line[0]))
			no = strtoull(line, &end, 10);
		if (!no || errno || *end != ' ') {
			/* the rest of the previous error's message */
			if (!seen)
				return broken(c, -EPROTO, "malformed BATCH error line");
			if (append) {
				size_t l = strlen(c->err);
				snprintf(c->err + l, sizeof(c->err) - l, " / %s", line);
			}
			continue;
		}
		if (no > ncmds)
			return broken(c, -EPROTO, "BATCH error for a command not sent");
		while (*end == ' ')
			end++;
		size_t it = cmd_item ? cmd_item[no - 1] : no - 1;
		res->nerrors++;
		append = 0;
		if (!item_err[it]) {
			item_err[it] = daemon_errno(end);
			res->nfailed++;
			if (!seen) {
				set_err(c, "%s", end);
				append = 1;
			}
		}
		seen = 1;
	}
}

/* The start of a BATCH of n items: *res and item_err (if any) cleared;
 * -ENOTCONN when c is not connected. */
static int many_begin(struct vg_rrdcd *c, size_t n, int *item_err,
		      struct vg_rrdcd_batch_result *res)
{
	memset(res, 0, sizeof(*res));
	if (item_err)
		memset(item_err, 0, n * sizeof(*item_err));
	return ready(c);
}

int vg_rrdcd_batch(struct vg_rrdcd *c, const struct vg_rrdcd_update *items, size_t n,
		   int *item_err, struct vg_rrdcd_batch_result *res)
{
	struct vg_rrdcd_batch_result dummy;
	size_t *cmd_item = NULL, ncmds = 0, cap = 0;
	int rc;

	if (!res)
		res = &dummy;
	if ((rc = many_begin(c, n, item_err, res)))
		return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = check_update(c, &items[i])))
			return rc;
	/* nfailed counts items, not error lines: keep per-item errors even
	 * when the caller does not want them */
	int *errs = item_err;
	if (!errs && !(errs = calloc(n ? n : 1, sizeof(*errs))))
		return -ENOMEM;
	c->wlen = 0;
	if ((rc = wput(c, "BATCH\n", 6)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t next = 0;
		while (next < items[i].n) {
			long k = emit_update(c, &items[i], &next, 1);
			if (k < 0) {
				rc = (int)k;
				/* invalid after validation cannot happen; a
				 * write failure has closed the connection */
				if (c->fd >= 0)
					rc = broken(c, rc, "BATCH aborted");
				goto out;
			}
			if (ncmds == cap) {
				size_t nc = cap ? cap * 2 : 256;
				size_t *p = realloc(cmd_item, nc * sizeof(*p));
				if (!p) {
					rc = broken(c, -ENOMEM, "BATCH aborted");
					goto out;
				}
				cmd_item = p;
				cap = nc;
			}
			cmd_item[ncmds++] = i;
		}
	}
	if ((rc = wput(c, ".\nPING\n", 7)) || (rc = wflush(c)))
		goto out;
	rc = read_batch_answer(c, cmd_item, ncmds, n, errs, res);
	if (!rc && !res->nfailed)
		c->err[0] = '\0';
out:
	if (errs != item_err)
		free(errs);
	free(cmd_item);
	return rc;
}

/* A BATCH of VERB FILE for each of files[0..n) (FLUSH or FORGET, which
 * rrdcached takes in a BATCH) written out, its answer not read. */
static int many_write(struct vg_rrdcd *c, const char *verb, const char *const *files, size_t n)
{
	int rc;

	if ((rc = ready(c)))
		return rc;
	for (size_t i = 0; i < n; i++)
		if ((rc = check_word(c, files[i], "file name")))
			return rc;
	c->wlen = 0;
	rc = wput(c, "BATCH\n", 6);
	for (size_t i = 0; !rc && i < n; i++)
		rc = cmd(c, verb, files[i], NULL);
	if (!rc && !(rc = wput(c, ".\nPING\n", 7)) && !(rc = wflush(c)))
		return 0;
	if (c->fd >= 0)
		rc = broken(c, rc, "BATCH aborted"); /* part of it may be sent */
	return rc;
}

static int flush_many_write(struct vg_rrdcd *c, const char *const *files, size_t n)
{
	return many_write(c, "FLUSH", files, n);
}

/* Read the answer of a FLUSH BATCH of n files. */
static int flush_many_read(struct vg_rrdcd *c, size_t n, int *item_err,
			   struct vg_rrdcd_batch_result *res)
{
	struct vg_rrdcd_batch_result dummy;
	int rc, *errs = item_err;

	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if (item_err)
		memset(item_err, 0, n * sizeof(*item_err));
	if (!errs && !(errs = calloc(n ? n : 1, sizeof(*errs))))
		return broken(c, -ENOMEM, "FLUSH BATCH answer not read");
	rc = read_batch_answer(c, NULL, n, n, errs, res);
	if (!rc && !res->nfailed)
		c->err[0] = '\0';
	if (errs != item_err)
		free(errs);
	return rc;
}

int vg_rrdcd_flush_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			int *item_err, struct vg_rrdcd_batch_result *res)
{
	struct vg_rrdcd_batch_result dummy;
	int rc;

	if (!res)
		res = &dummy;
	if ((rc = many_begin(c, n, item_err, res)) || (rc = flush_many_write(c, files, n)))
		return rc;
	return flush_many_read(c, n, item_err, res);
}

int vg_rrdcd_flush_many_send(struct vg_rrdcd *c, const char *const *files, size_t n)
{
	int rc = flush_many_write(c, files, n);

	if (!rc)
		c->inflight = n ? n : SIZE_MAX; /* an empty BATCH is answered too */
	return rc;
}

int vg_rrdcd_flush_many_recv(struct vg_rrdcd *c, size_t n, int *item_err,
			     struct vg_rrdcd_batch_result *res)
{
	if (c->fd < 0) {
		set_err(c, "%s: not connected", c->addr);
		return -ENOTCONN;
	}
	if (c->inflight != (n ? n : SIZE_MAX)) {
		set_err(c, "%s: no FLUSH BATCH of %zu files was sent", c->addr, n);
		return -EINVAL;
	}
	c->inflight = 0;
	return flush_many_read(c, n, item_err, res);
}

static int parse_i64(const char *s, int64_t *out);

/* vg_rrdcd_last_update_many and vg_rrdcd_forget_last_many: a BATCH of
 * VERB (FLUSH or FORGET) of every file, then their INFOs pipelined. */
static int last_many(struct vg_rrdcd *c, const char *verb, const char *const *files, size_t n,
		     int64_t *last_s, int *item_err)
{
	struct vg_rrdcd_batch_result res;
	int ferr[VG_RRDCD_LAST_MANY_MAX];
	size_t ninfo = 0;
	int rc;

	if (n > VG_RRDCD_LAST_MANY_MAX) {
		set_err(c, "%zu files for one call, at most %d", n, VG_RRDCD_LAST_MANY_MAX);
		return -EINVAL;
	}
	if (!verb) { /* the INFOs alone */
		for (size_t i = 0; i < n; i++)
			if ((rc = check_word(c, files[i], "file name")))
				return rc;
		if ((rc = ready(c)))
			return rc;
		memset(ferr, 0, n * sizeof(*ferr));
		c->wlen = 0;
	} else if ((rc = many_begin(c, n, ferr, &res)) || (rc = many_write(c, verb, files, n)) ||
		   (rc = flush_many_read(c, n, ferr, &res))) {
		return rc;
	}
	/* the INFOs, for the files whose FLUSH (FORGET) did not fail
	 * otherwise */
	for (size_t i = 0; i < n; i++) {
		last_s[i] = 0;
		item_err[i] = ferr[i] == -ENOENT || ferr[i] == -EREMOTEIO ? 0 : ferr[i];
		if (!item_err[i] && (rc = cmd(c, "INFO", files[i], NULL)))
			return c->fd >= 0 ? broken(c, rc, "INFO pipeline aborted") : rc;
		ninfo += !item_err[i];
	}
	if (!ninfo)
		return 0;
	if ((rc = wflush(c)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		long st;
		char *msg, *line;
		int found = 0;

		if (item_err[i])
			continue;
		if ((rc = read_status(c, &st, &msg)))
			return rc;
		if (st < 0) {
			/* an error is one line ("-1 message"): the next line is
			 * the next answer's status (parse_status breaks the
			 * connection otherwise, and every result is void) */
			item_err[i] = daemon_errno(msg);
			set_err(c, "%s", msg);
			continue;
		}
		if (st > VG_RRDCD_LINES_MAX)
			return broken(c, -EMSGSIZE, "answer announces too many lines");
		for (long k = 0; k < st; k++) {
			if ((rc = read_line(c, &line)))
				return rc;
			if (!strncmp(line, "last_update ", 12)) {
				/* "last_update TYPE VALUE" */
				const char *v = strchr(line + 12, ' ');
				int64_t t;
				if (v && !parse_i64(v + 1, &t)) {
					last_s[i] = t;
					found = 1;
				}
			}
		}
		if (!found)
			item_err[i] = -EPROTO;
	}
	return 0;
}

int vg_rrdcd_last_update_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			      int64_t *last_s, int *item_err)
{
	return last_many(c, "FLUSH", files, n, last_s, item_err);
}

int vg_rrdcd_forget_last_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			      int64_t *last_s, int *item_err)
{
	return last_many(c, "FORGET", files, n, last_s, item_err);
}

int vg_rrdcd_info_last_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			    int64_t *last_s, int *item_err)
{
	return last_many(c, NULL, files, n, last_s, item_err);
}

/* A PENDING line's time ("S" or "S.mmm", before the first ':') in ms;
 * -1 when it is not one (e.g. "N"). */
static int pending_time_ms(const char *line, int64_t *out)
{
	const char *p = line;
	int64_t s = 0, ms = 0;
	int digits = 0, frac = 0;

	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		if (s > (INT64_MAX - 9) / 10 / 1000)
			return -1;
		s = s * 10 + (*p - '0');
	}
	if (!digits)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (frac < 3) {
				ms = ms * 10 + (*p - '0');
				frac++;
			}
	for (; frac < 3; frac++)
		ms *= 10;
	if (*p != ':')
		return -1;
	*out = s * 1000 + ms;
	return 0;
}

int vg_rrdcd_pending_many(struct vg_rrdcd *c, const char *const *files, size_t n,
			  const int64_t *want_ms, int64_t *newest_ms, int *has_want,
			  const int64_t *after_ms, int64_t *oldest_ms, int *item_err)
{
	int rc;

	if (n > VG_RRDCD_LAST_MANY_MAX) {
		set_err(c, "%zu files for one call, at most %d", n, VG_RRDCD_LAST_MANY_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = check_word(c, files[i], "file name")))
			return rc;
	if ((rc = ready(c)))
		return rc;
	c->wlen = 0;
	for (size_t i = 0; i < n; i++)
		if ((rc = cmd(c, "PENDING", files[i], NULL)))
			return c->fd >= 0 ? broken(c, rc, "PENDING pipeline aborted") : rc;
	if (!n)
		return 0;
	if ((rc = wflush(c)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		long st;
		char *msg, *line;

		newest_ms[i] = INT64_MIN;
		has_want[i] = 0;
		if (oldest_ms)
			oldest_ms[i] = INT64_MAX;
		item_err[i] = 0;
		if ((rc = read_status(c, &st, &msg)))
			return rc;
		if (st < 0) { /* one line, as in last_many */
			item_err[i] = daemon_errno(msg);
			set_err(c, "%s", msg);
			continue;
		}
		if (st > VG_RRDCD_LINES_MAX)
			return broken(c, -EMSGSIZE, "answer announces too many lines");
		for (long k = 0; k < st; k++) {
			int64_t t;
			if ((rc = read_line(c, &line)))
				return rc;
			if (pending_time_ms(line, &t))
				t = INT64_MAX; /* not a time of ours */
			if (t > newest_ms[i])
				newest_ms[i] = t;
			if (want_ms && t == want_ms[i])
				has_want[i] = 1;
			if (oldest_ms && t != INT64_MAX && t > (after_ms ? after_ms[i] : INT64_MIN) &&
			    t < oldest_ms[i])
				oldest_ms[i] = t;
		}
	}
	return 0;
}

int vg_rrdcd_update(struct vg_rrdcd *c, const struct vg_rrdcd_update *u)
{
	size_t next = 0;
	long k, st;
	char *msg;
	int rc;

	if ((rc = ready(c)))
		return rc;
	if ((rc = check_update(c, u)))
		return rc;
	c->wlen = 0;
	if ((k = emit_update(c, u, &next, 1)) < 0) {
		c->wlen = 0;
		return (int)k;
	}
	if (next < u->n) { /* more than one command: one BATCH round trip */
		int e = 0;
		struct vg_rrdcd_batch_result r;
		c->wlen = 0;
		if ((rc = vg_rrdcd_batch(c, u, 1, &e, &r)))
			return rc;
		return e;
	}
	if ((rc = roundtrip(c, &st, &msg)))
		return rc;
	return skip_lines(c, st);
}

/* ---- FETCH, INFO, STATS ----------------------------------------------- */

void vg_rrdcd_fetch_free(struct vg_rrdcd_fetch *f)
{
	if (!f)
		return;
	for (size_t i = 0; f->ds_names && i < f->nds; i++)
		free(f->ds_names[i]);
	free(f->ds_names);
	free(f->ts);
	free(f->values);
	memset(f, 0, sizeof(*f));
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || errno)
		return -1;
	*out = v;
	return 0;
}

/* "x y z" into names (nds expected). */
static int parse_names(char *s, size_t nds, char **names)
{
	size_t k = 0;
	char *save = NULL;

	for (char *t = strtok_r(s, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (k == nds || !(names[k] = strdup(t)))
			return -1;
		k++;
	}
	return k == nds ? 0 : -1;
}

int vg_rrdcd_fetch(struct vg_rrdcd *c, const char *file, const char *cf, int64_t start,
		   int64_t end, struct vg_rrdcd_fetch *f)
{
	char args[128], *line, *msg;
	long st;
	int rc, have = 0; /* bits: 1 start, 2 end, 4 step, 8 count, 16 names */
	size_t row = 0;

	memset(f, 0, sizeof(*f));
	if ((rc = check_word(c, cf, "consolidation function")) || strlen(cf) > 16)
		return rc ? rc : -EINVAL;
	snprintf(args, sizeof(args), "%s %" PRId64 " %" PRId64, cf, start, end);
	if ((rc = cmd(c, "FETCH", file, args)) || (rc = roundtrip(c, &st, &msg)))
		return rc;
	for (long i = 0; i < st; i++) {
		if ((rc = read_line(c, &line)))
			goto fail;
		char *colon = strchr(line, ':');
		if (!colon || colon[1] != ' ')
			goto malformed;
		*colon = '\0';
		char *val = colon + 2;
		if (isdigit((unsigned char)line[0])) { /* a row: "ts: v v" */
			int64_t t;
			if ((have & 31) != 31 || parse_i64(line, &t) || row >= f->nrows ||
			    t != f->start + (int64_t)(row + 1) * f->step)
				goto malformed;
			f->ts[row] = t;
			char *p = val;
			for (size_t d = 0; d < f->nds; d++) {
				char *e;
				double v = strtod(p, &e);
				if (e == p || (*e && *e != ' '))
					goto malformed;
				f->values[row * f->nds + d] = isnan(v) ? NAN : v;
				p = e;
				while (*p == ' ')
					p++;
			}
			if (*p)
				goto malformed;
			row++;
			continue;
		}
		int64_t v = 0;
		if (!strcmp(line, "DSName")) {
			if (!(have & 8) || (have & 16) || parse_names(val, f->nds, f->ds_names))
				goto malformed;
			have |= 16;
			continue;
		}
		if (!strcmp(line, "FlushVersion"))
			continue;
		if (parse_i64(val, &v))
			goto malformed;
		if (!strcmp(line, "Start"))
			f->start = v, have |= 1;
		else if (!strcmp(line, "End"))
			f->end = v, have |= 2;
		else if (!strcmp(line, "Step"))
			f->step = v, have |= 4;
		else if (!strcmp(line, "DSCount")) {
			if ((have & 7) != 7 || (have & 8) || v < 1 || v > 4096 || f->step < 1 ||
			    f->end < f->start)
				goto malformed;
			f->nds = (size_t)v;
			uint64_t rows = (uint64_t)(f->end - f->start) / (uint64_t)f->step;
			/* the rows must be in this very answer: bounded by it */
			if (rows > (uint64_t)st || rows * f->nds > VG_RRDCD_FETCH_VALUES_MAX)
				goto malformed;
			f->nrows = (size_t)rows;
			f->ds_names = calloc(f->nds, sizeof(char *));
			f->ts = calloc(rows ? rows : 1, sizeof(int64_t));
			f->values = calloc(rows ? rows * f->nds : 1, sizeof(double));
			if (!f->ds_names || !f->ts || !f->values) {
				rc = broken(c, -ENOMEM, "fetch");
				goto fail;
			}
			have |= 8;
		}
		/* other header keys a later daemon may add are ignored */
	}
	if ((have & 31) != 31 || row != f->nrows)
		goto malformed;
	return 0;
malformed:
	rc = broken(c, -EPROTO, "malformed FETCH answer");
	/* the rest of the answer may still be in flight: the connection is
	 * closed, so nothing of it is taken for a later answer */
fail:
	vg_rrdcd_fetch_free(f);
	return rc;
}

void vg_rrdcd_info_free(struct vg_rrdcd_info *info)
{
	if (!info)
		return;
	for (size_t i = 0; i < info->n; i++) {
		free(info->items[i].key);
		free(info->items[i].value);
	}
	free(info->items);
	memset(info, 0, sizeof(*info));
}

const char *vg_rrdcd_info_get(const struct vg_rrdcd_info *info, const char *key)
{
	for (size_t i = 0; info && i < info->n; i++)
		if (!strcmp(info->items[i].key, key))
			return info->items[i].value;
	return NULL;
}

/* Lines "key type value" (INFO) or "Key: value" (STATS). */
static int read_kv(struct vg_rrdcd *c, long st, int typed, struct vg_rrdcd_info *out)
{
	char *line;
	int rc;

	if (st > 0 && !(out->items = calloc((size_t)st, sizeof(*out->items))))
		return broken(c, -ENOMEM, "answer");
	for (long i = 0; i < st; i++) {
		if ((rc = read_line(c, &line)))
			goto fail;
		char *sp = strchr(line, typed ? ' ' : ':'), *val;
		int type = -1;
		if (!sp || sp == line)
			goto malformed;
		*sp = '\0';
		val = sp + 1;
		if (typed) {
			if (val[0] < '0' || val[0] > '9' || val[1] != ' ')
				goto malformed;
			type = val[0] - '0';
			val += 2;
		} else {
			while (*val == ' ')
				val++;
		}
		struct vg_rrdcd_kv *kv = &out->items[out->n];
		kv->key = strdup(line);
		kv->value = strdup(val);
		kv->type = type;
		out->n++;
		if (!kv->key || !kv->value) {
			rc = broken(c, -ENOMEM, "answer");
			goto fail;
		}
	}
	return 0;
malformed:
	rc = broken(c, -EPROTO, typed ? "malformed INFO line" : "malformed STATS line");
fail:
	vg_rrdcd_info_free(out);
	return rc;
}

/* INFO FILE (typed "KEY TYPE VALUE" lines) or STATS ("KEY: VALUE"). */
static int kv_command(struct vg_rrdcd *c, const char *verb, const char *file, int typed,
		      struct vg_rrdcd_info *out)
{
	long st;
	char *msg;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = cmd(c, verb, file, NULL)) || (rc = roundtrip(c, &st, &msg)))
		return rc;
	return read_kv(c, st, typed, out);
}

int vg_rrdcd_info(struct vg_rrdcd *c, const char *file, struct vg_rrdcd_info *out)
{
	return kv_command(c, "INFO", file, 1, out);
}

int vg_rrdcd_stats(struct vg_rrdcd *c, struct vg_rrdcd_info *out)
{
	return kv_command(c, "STATS", NULL, 0, out);
}
