/*
 * billing_replay.c — replay a usage ledger (billing/ledger.c) into vigie.
 *
 *   billing_replay send LEDGER URL          every batch over the real wire
 *                                           protocol (nanomsg REQ) to a
 *                                           collector, in order, each
 *                                           until acknowledged
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
	fprintf(stderr, "usage: billing_replay send LEDGER URL\n"
			"       billing_replay check LEDGER MONTH INVOICE.json...\n"
			"       billing_replay print LEDGER MONTH PROJECT [json|csv|html]\n");
	return 2;
}

static int do_send(struct vg_bill_ledger *l, const char *url)
{
	int s = nn_socket(AF_SP, NN_REQ), tmo = 5000;

	if (s < 0 || nn_connect(s, url) < 0) {
		fprintf(stderr, "billing_replay: %s: %s\n", url, nn_strerror(nn_errno()));
		return 1;
	}
	nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &tmo, sizeof(tmo));
	for (size_t i = 0; i < l->nbatches; i++) {
		uint8_t *msg;
		size_t len;
		int rc = vg_wire_encode(l->batches[i], &msg, &len), tries = 0;
		if (rc) {
			fprintf(stderr, "billing_replay: encode: %s\n", vg_wire_strerror(rc));
			nn_close(s);
			return 1;
		}
		for (;;) {
			void *buf = NULL;
			struct vg_ack ack;
			int n;
			if (nn_send(s, msg, len, 0) < 0 ||
			    (n = nn_recv(s, &buf, NN_MSG, 0)) < 0) {
				if (++tries < 20)
					continue;
				fprintf(stderr, "billing_replay: batch %zu: %s\n", i + 1,
					nn_strerror(nn_errno()));
				free(msg);
				nn_close(s);
				return 1;
			}
			rc = vg_wire_ack_decode(buf, (size_t)n, &ack);
			nn_freemsg(buf);
			if (!rc && (ack.status == VG_ACK_OK || ack.status == VG_ACK_DUPLICATE))
				break;
			/* RETRY: resend later, as an agent does (a storage
			 * daemon the collector backs off from, a busy
			 * database): 250 ms apart, for 30 s at most */
			if (rc || ack.status == VG_ACK_REJECTED || ++tries >= 120) {
				fprintf(stderr, "billing_replay: batch %zu not accepted "
						"(status %d)\n",
					i + 1, rc ? -1 : ack.status);
				free(msg);
				nn_close(s);
				return 1;
			}
			usleep(250000);
		}
		free(msg);
	}
	nn_close(s);
	printf("sent %zu batches\n", l->nbatches);
	return 0;
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
	if (!strcmp(argv[1], "send") && argc == 4)
		rc = do_send(l, argv[3]);
	else if (!strcmp(argv[1], "check") && argc >= 5)
		rc = do_check(l, argv[3], argc - 4, argv + 4);
	else if (!strcmp(argv[1], "print") && (argc == 5 || argc == 6))
		rc = do_print(l, argv[3], argv[4], argc == 6 ? argv[5] : "json");
	else
		rc = usage();
	vg_bill_ledger_free(l);
	return rc;
}
