/*
 * sign_sender_test.c — the agent's sender with a key (agent/sender.c,
 * vigie/sign.h) against a scripted fake collector on an inproc REP socket:
 * every batch leaves signed with the key (the spool keeps it unsigned);
 * an unsigned OK, an OK signed with another key, a replayed signed OK of
 * an earlier batch and an unsigned REJECTED are all ignored (counted in
 * unauth_acks, the batch stays spooled and is sent again); only a signed
 * ack for that very batch removes it. So nobody who can reach the agent's
 * socket can make it drop a batch.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "agent/sender.h"
#include "agent/spool.h"
#include "vigie/batch.h"
#include "vigie/clock.h"
#include "vigie/sign.h"
#include "vigie/wire.h"

#include "../support/fake_collector.h"
#include "../support/tmpdir.h"

/* What the fake collector answers to the i-th message. */
enum act {
	A_UNSIGNED_OK,  /* a plain 24-byte OK */
	A_FOREIGN_OK,   /* OK signed with another key */
	A_REPLAY_OK,    /* the signed OK of the first batch, replayed */
	A_UNSIGNED_REJ, /* a plain REJECTED */
	A_SIGNED_OK,    /* the genuine answer */
};

struct fake {
	struct fx_rep rep; /* url, socket, thread */
	const enum act *script;
	size_t nscript;
	pthread_mutex_t lock;
	size_t n, nsigned, nverified;
	uint8_t first_ack[VG_WIRE_ACK_LEN + VG_WIRE_MAC_LEN]; /* for A_REPLAY_OK */
	int have_first;
};

static char dir[64];
static struct vg_key K, OTHER;

static int setup(void **state)
{
	strcpy(dir, "/tmp/vigie-sign-sender-XXXXXX");
	assert_non_null(mkdtemp(dir));
	K.len = OTHER.len = 32;
	for (int i = 0; i < 32; i++) {
		K.bytes[i] = (uint8_t)(0x40 + i);
		OTHER.bytes[i] = (uint8_t)(0x90 + i);
	}
	return 0;
}

static int teardown(void **state)
{
	fx_rm_tree(dir);
	return 0;
}

static size_t fake_answer(void *ctx, const void *msg, size_t n, uint8_t *ack)
{
	struct fake *c = ctx;
	uint64_t stream, seq;
	size_t alen;

	assert_int_equal(vg_wire_peek(msg, n, &stream, &seq), 0);
	const uint8_t *mac = vg_sign_mac(msg, n);
	pthread_mutex_lock(&c->lock);
	size_t i = c->n++;
	c->nsigned += mac != NULL;
	c->nverified += vg_sign_verify(&K, msg, n) == 0;
	pthread_mutex_unlock(&c->lock);
	enum act a = i < c->nscript ? c->script[i] : A_SIGNED_OK;
	struct vg_ack v = {VG_ACK_OK, stream, seq};
	if (a == A_UNSIGNED_REJ)
		v.status = VG_ACK_REJECTED;
	alen = vg_wire_ack_encode(&v, ack);
	if (mac && a == A_FOREIGN_OK)
		alen = vg_sign_ack(&OTHER, mac, ack);
	else if (mac && a == A_SIGNED_OK)
		alen = vg_sign_ack(&K, mac, ack);
	if (a == A_SIGNED_OK && !c->have_first) {
		memcpy(c->first_ack, ack, alen);
		c->have_first = 1;
	}
	if (a == A_REPLAY_OK && c->have_first) {
		/* same stream; rewrite seq so only the MAC is wrong */
		memcpy(ack, c->first_ack, sizeof(c->first_ack));
		for (int b = 0; b < 8; b++)
			ack[16 + b] = (uint8_t)(seq >> (8 * b));
		alen = sizeof(c->first_ack);
	}
	return alen;
}

static void fake_start(struct fake *c, const enum act *script, size_t n)
{
	memset(c, 0, sizeof(*c));
	fx_rep_url(&c->rep, "vigie-sign-sender");
	c->script = script;
	c->nscript = n;
	pthread_mutex_init(&c->lock, NULL);
	assert_int_equal(fx_rep_start(&c->rep, fake_answer, c), 0);
}

static void fake_stop(struct fake *c)
{
	fx_rep_stop(&c->rep);
	pthread_mutex_destroy(&c->lock);
}

static void spool_batches(struct vg_spool *sp, int n)
{
	assert_int_equal(fx_spool_batches(sp, "signer", NULL, n), 0);
}

static void test_only_genuine_acks_count(void **state)
{
	/* batch 1: genuine at once; batch 2: four fakes, then genuine */
	const enum act script[] = {A_SIGNED_OK, A_UNSIGNED_OK, A_FOREIGN_OK,
				   A_REPLAY_OK, A_UNSIGNED_REJ, A_SIGNED_OK};
	struct fake c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_stats st;
	struct vg_sender_opts o = {.ack_timeout_ms = 150, .backoff_min_ms = 10, .backoff_max_ms = 20, .key = &K};

	fake_start(&c, script, sizeof(script) / sizeof(script[0]));
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 2);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	vg_sender_wake(s);
	assert_true(fx_spool_wait(sp, 0, 10000));
	vg_sender_get_stats(s, &st);
	vg_sender_free(s);
	fake_stop(&c);
	assert_int_equal(st.acked, 2);
	assert_int_equal(st.rejected, 0); /* the unsigned REJECTED was ignored */
	assert_int_equal(st.unauth_acks, 4);
	assert_int_equal(c.n, 6); /* batch 2 was sent five times */
	assert_int_equal(c.nsigned, 6);
	assert_int_equal(c.nverified, 6);
	/* the spool kept nothing in rejected/ */
	char rej[128];
	struct stat sb;
	snprintf(rej, sizeof(rej), "%s/rejected", dir);
	if (stat(rej, &sb) == 0) {
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", rej);
		assert_int_equal(system(cmd), 0);
	}
	vg_spool_close(sp);
}

static void test_spool_keeps_batches_unsigned(void **state)
{
	const enum act script[] = {A_UNSIGNED_OK};
	struct fake c;
	struct vg_spool *sp;
	struct vg_sender *s;
	struct vg_sender_opts o = {.ack_timeout_ms = 100, .backoff_min_ms = 10, .backoff_max_ms = 20, .key = &K};
	uint64_t seq;
	void *buf;
	size_t len;

	fake_start(&c, script, 1);
	assert_int_equal(vg_spool_open(dir, 100, &sp), 0);
	spool_batches(sp, 1);
	o.url = c.rep.url;
	assert_int_equal(vg_sender_start(sp, &o, &s), 0);
	vg_sender_wake(s);
	vg_sleep_ms(50);
	/* whatever was sent, the spooled copy is the unsigned encoding */
	int rc = vg_spool_oldest(sp, &seq, &buf, &len);
	assert_true(rc == 0 || rc == -ENOENT);
	if (rc == 0) {
		int sig = vg_sign_is_signed(buf, len);
		free(buf);
		assert_int_equal(sig, 0);
	}
	assert_true(fx_spool_wait(sp, 0, 5000));
	vg_sender_free(s);
	fake_stop(&c);
	vg_spool_close(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_only_genuine_acks_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_keeps_batches_unsigned, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
