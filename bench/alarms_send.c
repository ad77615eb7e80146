/*
 * alarms_send.c — a wire-level sender for alarm tests and benchmarks: each
 * line of standard input becomes one batch sent to a vigie-collector over
 * the real protocol (NN_REQ, vg_wire_encode), waiting for its ack.
 *
 *   alarms_send --collector tcp://127.0.0.1:7470 [--host h1] [--stream N]
 *               [--seq N] [--timeout-ms 5000] [--report-ms]
 *
 * Input lines (blank lines and "#" comments are skipped):
 *   TIME TYPE ID [METRIC=VALUE ...] [project=P] [flavor=F] [kind=counter]
 *        [state=ended] [attr.KEY=VALUE] [event=N [detail=D]]
 * TIME is epoch milliseconds, or "+SECONDS" after the previous line's time;
 * TYPE one of instance, disk, nic, host, host_disk, host_nic. Several
 * resources go into one batch when consecutive lines carry the same TIME
 * and the second and later ones start with "&" instead of a time.
 * event=N adds a lifecycle event of type N (enum vg_event_type: 2 stopped)
 * on the resource at TIME, with detail D, where \xHH is the byte HH (so
 * that a test can send bytes that are not UTF-8) and no space is allowed.
 *
 * With --report-ms, prints "sent SEQ MONOTONIC_MS" when each batch was
 * handed to nanomsg and "acked SEQ MONOTONIC_MS STATUS" on its ack (the
 * latency benchmark reads them). Exit status 0 when every batch was
 * acknowledged OK or DUPLICATE, 1 otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/wire.h"

struct opts {
	const char *collector, *host;
	uint64_t stream, seq;
	int timeout_ms, report;
};

static int send_batch(int sock, const struct opts *o, struct vg_batch *b)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct vg_ack ack;
	char *reply = NULL;
	int n, rc = vg_wire_encode(b, &buf, &len);

	if (rc) {
		fprintf(stderr, "alarms_send: encode: %s\n", vg_wire_strerror(rc));
		return 1;
	}
	if (nn_send(sock, buf, len, 0) < 0) {
		fprintf(stderr, "alarms_send: send: %s\n", nn_strerror(nn_errno()));
		free(buf);
		return 1;
	}
	free(buf);
	if (o->report)
		printf("sent %" PRIu64 " %" PRId64 "\n", b->seq, vg_monotonic_ms());
	n = nn_recv(sock, &reply, NN_MSG, 0);
	if (n < 0) {
		fprintf(stderr, "alarms_send: no ack for seq %" PRIu64 ": %s\n", b->seq,
			nn_strerror(nn_errno()));
		return 1;
	}
	rc = vg_wire_ack_decode(reply, (size_t)n, &ack);
	nn_freemsg(reply);
	if (rc) {
		fprintf(stderr, "alarms_send: bad ack\n");
		return 1;
	}
	if (o->report)
		printf("acked %" PRIu64 " %" PRId64 " %u\n", b->seq, vg_monotonic_ms(),
		       ack.status);
	fflush(stdout);
	if (ack.status != VG_ACK_OK && ack.status != VG_ACK_DUPLICATE) {
		fprintf(stderr, "alarms_send: seq %" PRIu64 " answered %u\n", b->seq,
			ack.status);
		return 1;
	}
	return 0;
}

/* Decode the \xHH escapes of s in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		unsigned v;
		if (s[0] == '\\' && s[1] == 'x' && isxdigit((unsigned char)s[2]) &&
		    isxdigit((unsigned char)s[3]) && sscanf(s + 2, "%2x", &v) == 1) {
			*o++ = (char)v;
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Add one resource described by the tokens after TIME. */
static int add_resource(struct vg_batch *b, int64_t t, char *line)
{
	char *save = NULL, *type = strtok_r(line, " \t\n", &save);
	char *id = strtok_r(NULL, " \t\n", &save), *tok;
	const char *project = "default", *flavor = NULL;
	struct vg_resource *r;
	int rtype, kind = VG_KIND_GAUGE, ended = 0, event = 0;
	char *detail = NULL;
	char *samples[64];
	int ns = 0;
	struct {
		char *k, *v;
	} attrs[16];
	int na = 0;

	if (!type || !id || (rtype = vg_rtype_parse(type)) < 0) {
		fprintf(stderr, "alarms_send: expected TYPE ID, got '%s'\n",
			type ? type : "");
		return -EINVAL;
	}
	while ((tok = strtok_r(NULL, " \t\n", &save))) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return -EINVAL;
		*eq = '\0';
		if (!strcmp(tok, "project"))
			project = eq + 1;
		else if (!strcmp(tok, "flavor"))
			flavor = eq + 1;
		else if (!strcmp(tok, "kind"))
			kind = !strcmp(eq + 1, "counter") ? VG_KIND_COUNTER : VG_KIND_GAUGE;
		else if (!strcmp(tok, "state"))
			ended = !strcmp(eq + 1, "ended");
		else if (!strcmp(tok, "event"))
			event = atoi(eq + 1);
		else if (!strcmp(tok, "detail"))
			unescape(detail = eq + 1);
		else if (!strncmp(tok, "attr.", 5) && na < 16) {
			attrs[na].k = tok + 5;
			attrs[na++].v = eq + 1;
		} else if (ns < 64) {
			*eq = '=';
			samples[ns++] = tok;
		}
	}
	r = vg_batch_resource(b, (uint8_t)rtype, id, id, NULL, t);
	if (!r)
		return -ENOMEM;
	if (ended)
		r->state = VG_RSTATE_ENDED;
	vg_batch_identity(b, project, NULL, flavor);
	for (int i = 0; i < na; i++)
		vg_batch_attr(b, attrs[i].k, attrs[i].v);
	for (int i = 0; i < ns; i++) {
		char *eq = strchr(samples[i], '=');
		*eq = '\0';
		vg_batch_sample(b, samples[i], (uint8_t)kind, strtod(eq + 1, NULL));
	}
	if (event && vg_batch_event(b, id, (uint8_t)event, t, detail))
		return -ENOMEM;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"collector", required_argument, NULL, 'c'},
		{"host", required_argument, NULL, 'H'},
		{"stream", required_argument, NULL, 's'},
		{"seq", required_argument, NULL, 'q'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"report-ms", no_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {NULL, "h1", 0, 1, 5000, 0};
	char line[4096];
	struct vg_batch *b = NULL;
	int64_t t = 0;
	int c, sock, fails = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o.collector = optarg; break;
		case 'H': o.host = optarg; break;
		case 's': o.stream = strtoull(optarg, NULL, 10); break;
		case 'q': o.seq = strtoull(optarg, NULL, 10); break;
		case 't': o.timeout_ms = atoi(optarg); break;
		case 'r': o.report = 1; break;
		default:
			fprintf(stderr, "usage: alarms_send --collector URL [--host H] "
					"[--stream N] [--seq N] [--timeout-ms MS] [--report-ms] "
					"< lines\n");
			return 2;
		}
	}
	if (!o.collector) {
		fprintf(stderr, "alarms_send: --collector is required\n");
		return 2;
	}
	if (!o.stream)
		o.stream = (uint64_t)vg_now_ms() ^ ((uint64_t)getpid() << 32);
	sock = nn_socket(AF_SP, NN_REQ);
	if (sock < 0 || nn_connect(sock, o.collector) < 0) {
		fprintf(stderr, "alarms_send: %s: %s\n", o.collector,
			nn_strerror(nn_errno()));
		return 1;
	}
	nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &o.timeout_ms,
		      sizeof(o.timeout_ms));
	while (fgets(line, sizeof(line), stdin)) {
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n' || *p == '#')
			continue;
		if (*p == '&') {
			if (!b || add_resource(b, t, p + 1)) {
				fprintf(stderr, "alarms_send: bad line: %s", line);
				fails++;
			}
			continue;
		}
		if (b) {
			fails += send_batch(sock, &o, b);
			vg_batch_free(b);
			b = NULL;
		}
		char *end;
		if (*p == '+')
			t += (int64_t)(strtod(p + 1, &end) * 1000);
		else
			t = strtoll(p, &end, 10);
		b = vg_batch_new(o.host, o.stream, o.seq++, t);
		if (!b || add_resource(b, t, end)) {
			fprintf(stderr, "alarms_send: bad line: %s", line);
			fails++;
		}
	}
	if (b) {
		fails += send_batch(sock, &o, b);
		vg_batch_free(b);
	}
	nn_close(sock);
	return fails ? 1 : 0;
}
