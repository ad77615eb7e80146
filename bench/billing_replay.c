/*
 * billing_replay.c — replay a usage ledger (billing/ledger.c) into vigie.
 *
 *   billing_replay send LEDGER URL...       every batch over the real wire
 *                                           protocol (nanomsg REQ) to a
 *                                           collector, in order, each
 *                                           until acknowledged; with
 *                                           several URLs, failing over
 *                                           as an agent does (do_send)
 *   billing_replay check LEDGER MONTH FILE... compare invoice JSON
 *                                           documents (as the API returns
 *                                           them) with the ledger's
 *                                           expectations for MONTH
 *   billing_replay print LEDGER MONTH PROJECT [json|csv|html]
 *                                           meter the ledger in memory and
 *                                           print one invoice
 *
 * Used by tests/integration/billing_test.sh; also handy to see what a
 * ledger bills. Exit status 0 ok, 1 mismatch or failure, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "vigie/bill_invoice.h"
#include "billing/ledger.h"
#include "vigie/bill_meter.h"
#include "vigie/wire.h"

static int usage(void)
{
	fprintf(stderr, "usage: billing_replay send LEDGER URL...\n"
			"       billing_replay check LEDGER MONTH INVOICE.json...\n"
			"       billing_replay print LEDGER MONTH PROJECT [json|csv|html]\n");
	return 2;
}

/* A positive integer from the environment variable name, else def. */
static int env_int(const char *name, int def)
{
	const char *v = getenv(name);
	long n = v ? strtol(v, NULL, 10) : 0;

	return n > 0 && n <= 86400000 ? (int)n : def;
}

/* Send every batch, in order, each until acknowledged (OK or
 * DUPLICATE). With several URLs it fails over as an agent with several
 * collectors does ([agent] collectors): one REQ socket each, the first
 * URL first; a batch with no answer within the ack timeout is sent, the
 * same, to the next URL, and the next batches go there too. A RETRY is
 * sent again to the same collector 250 ms later. Knobs from the
 * environment: BILLING_REPLAY_ACK_MS (the ack timeout, default 5000),
 * BILLING_REPLAY_RETRY_S (how long RETRY answers are taken before giving
 * up, default 30). Ends with a line counting the RETRY answers and the
 * failovers. */
static int do_send(struct vg_bill_ledger *l, int nurls, char **urls)
{
	int tmo = env_int("BILLING_REPLAY_ACK_MS", 5000);
	int retry_max = env_int("BILLING_REPLAY_RETRY_S", 30) * 4;
	int socks[8], cur = 0, rc_all = 1;
	unsigned long retries = 0, failovers = 0;

	if (nurls < 1 || nurls > 8) {
		fprintf(stderr, "billing_replay: 1 to 8 URLs\n");
		return 2;
	}
	for (int k = 0; k < nurls; k++) {
		socks[k] = nn_socket(AF_SP, NN_REQ);
		if (socks[k] < 0 || nn_connect(socks[k], urls[k]) < 0) {
			fprintf(stderr, "billing_replay: %s: %s\n", urls[k],
				nn_strerror(nn_errno()));
			nurls = socks[k] < 0 ? k : k + 1;
			goto out;
		}
		nn_setsockopt(socks[k], NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
		nn_setsockopt(socks[k], NN_SOL_SOCKET, NN_SNDTIMEO, &tmo, sizeof(tmo));
	}
	for (size_t i = 0; i < l->nbatches; i++) {
		uint8_t *msg;
		size_t len;
		int rc = vg_wire_encode(l->batches[i], &msg, &len), tries = 0, timeouts = 0;
		if (rc) {
			fprintf(stderr, "billing_replay: encode: %s\n", vg_wire_strerror(rc));
			goto out;
		}
		for (;;) {
			void *buf = NULL;
			struct vg_ack ack;
			int n;
			if (nn_send(socks[cur], msg, len, 0) < 0 ||
			    (n = nn_recv(socks[cur], &buf, NN_MSG, 0)) < 0) {
				if (++timeouts < 20 * nurls) {
					if (nurls > 1) {
						fprintf(stderr, "billing_replay: batch %zu: no answer from %s "
								"in %d ms: sent to %s\n",
							i + 1, urls[cur], tmo, urls[(cur + 1) % nurls]);
						cur = (cur + 1) % nurls;
						failovers++;
					}
					continue;
				}
				fprintf(stderr, "billing_replay: batch %zu: %s\n", i + 1,
					nn_strerror(nn_errno()));
				free(msg);
				goto out;
			}
			rc = vg_wire_ack_decode(buf, (size_t)n, &ack);
			nn_freemsg(buf);
			if (!rc && (ack.status == VG_ACK_OK || ack.status == VG_ACK_DUPLICATE))
				break;
			/* RETRY: resend later, as an agent does (a storage
			 * daemon the collector backs off from, a busy
			 * database, billing locks held elsewhere): 250 ms
			 * apart */
			if (rc || ack.status == VG_ACK_REJECTED || ++tries >= retry_max) {
				fprintf(stderr, "billing_replay: batch %zu not accepted "
						"(status %d)\n",
					i + 1, rc ? -1 : ack.status);
				free(msg);
				goto out;
			}
			retries++;
			usleep(250000);
		}
		free(msg);
	}
	printf("sent %zu batches\n", l->nbatches);
	if (nurls > 1)
		printf("retry answers %lu, failovers %lu\n", retries, failovers);
	rc_all = 0;
out:
	for (int k = 0; k < nurls; k++)
		nn_close(socks[k]);
	return rc_all;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n;

	*len = 0;
	if (!f)
		return NULL;
	do {
		if (cap - *len < 65536) {
			char *nb = realloc(buf, cap + 65536 + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
	} while (n > 0);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

static int do_check(struct vg_bill_ledger *l, const char *month, int nfiles, char **files)
{
	struct vg_bill_invoice **inv = calloc((size_t)nfiles + 1, sizeof(*inv));
	struct vg_bill_month m;
	size_t n = 0;
	int bad;

	if (!inv || vg_bill_month_parse(month, &m))
		return usage();
	for (int i = 0; i < nfiles; i++) {
		size_t len;
		char *text = slurp(files[i], &len);
		if (!text || vg_bill_invoice_from_json(text, len, &inv[n])) {
			fprintf(stderr, "billing_replay: %s: not an invoice document\n", files[i]);
			free(text);
			return 1;
		}
		free(text);
		n++;
	}
	bad = vg_bill_ledger_check(l, m, inv, n, stdout);
	for (size_t i = 0; i < n; i++)
		vg_bill_invoice_free(inv[i]);
	free(inv);
	printf("%s: %d mismatch%s\n", month, bad, bad == 1 ? "" : "es");
	return bad ? 1 : 0;
}

static int do_print(struct vg_bill_ledger *l, const char *month, const char *project,
		    const char *fmt)
{
	struct vg_bill_ratecard *rc;
	struct vg_bill_meter *m;
	struct vg_bill_invoice *inv;
	struct vg_bill_month mon;
	char err[512], *text;
	size_t len;
	int f = vg_bill_invoice_format_parse(fmt);

	if (f < 0 || vg_bill_month_parse(month, &mon))
		return usage();
	if (vg_bill_ratecard_load(l->ratecard, &rc, err, sizeof(err)) ||
	    vg_bill_meter_open(":memory:", &m, err, sizeof(err))) {
		fprintf(stderr, "billing_replay: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < l->nbatches; i++)
		if (vg_bill_meter_batch(m, l->batches[i])) {
			fprintf(stderr, "billing_replay: meter refused batch %zu\n", i + 1);
			return 1;
		}
	if (vg_bill_invoice_from_db(vg_bill_meter_db(m), rc, mon, project, &inv) ||
	    vg_bill_invoice_render(inv, f, &text, &len))
		return 1;
	fwrite(text, 1, len, stdout);
	free(text);
	vg_bill_invoice_free(inv);
	vg_bill_meter_close(m);
	vg_bill_ratecard_free(rc);
	return 0;
}

int main(int argc, char **argv)
{
	struct vg_bill_ledger *l;
	char err[512];
	int rc;

	if (argc < 4)
		return usage();
	if (vg_bill_ledger_load(argv[2], &l, err, sizeof(err))) {
		fprintf(stderr, "billing_replay: %s\n", err);
		return 1;
	}
	if (!strcmp(argv[1], "send"))
		rc = do_send(l, argc - 3, argv + 3);
	else if (!strcmp(argv[1], "check") && argc >= 5)
		rc = do_check(l, argv[3], argc - 4, argv + 4);
	else if (!strcmp(argv[1], "print") && (argc == 5 || argc == 6))
		rc = do_print(l, argv[3], argv[4], argc == 6 ? argv[5] : "json");
	else
		rc = usage();
	vg_bill_ledger_free(l);
	return rc;
}
