/*
 * agent_cost.c — what one agent poll costs, per domain (docs/benchmarks.md).
 *
 * Generates a libvirt test-driver node with N domains (each with a disk, a
 * tap NIC and Nova metadata, like a real compute node), opens it through
 * the agent's own poller (one connection kept open, as the agent does),
 * and runs K polls the way the agent's main loop does: poll libvirt and
 * /proc, derive, build the batch, encode it, and send it over a real
 * nanomsg socket to a sink thread in this process. CPU time comes from
 * getrusage (user + system of the whole process, sink included), so it is
 * "everything included". Resident memory is VmHWM, with the test driver's
 * own share measured by opening the same node bare first.
 *
 * Usage: agent_cost N [POLLS]     prints one line of figures
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>

#include "agent/poll.h"
#include "vigie/clock.h"
#include "vigie/wire.h"

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static long status_kib(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static int write_node(const char *path, int n)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "<node>\n");
	for (int i = 0; i < n; i++)
		fprintf(f,
			"<domain type='test'><name>vm%d</name>"
			"<uuid>%08x-0000-4000-8000-%012x</uuid>"
			"<metadata><nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
			"<nova:name>vm%d</nova:name><nova:flavor name='m1.small'><nova:memory>2048</nova:memory>"
			"<nova:disk>20</nova:disk><nova:vcpus>2</nova:vcpus></nova:flavor>"
			"<nova:owner><nova:user uuid='u%d'>user</nova:user><nova:project uuid='p%d'>proj</nova:project>"
			"</nova:owner></nova:instance></metadata>"
			"<memory unit='KiB'>2097152</memory><currentMemory unit='KiB'>2097152</currentMemory>"
			"<vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
			"<disk type='file' device='disk'><source file='/guest/vm%d.img'/><target dev='vda' bus='virtio'/></disk>"
			"<interface type='ethernet'><mac address='52:54:00:%02x:%02x:%02x'/><target dev='tap%d'/></interface>"
			"</devices></domain>\n",
			i, i, i, i, i % 10, i % 10, i, (i >> 16) & 255, (i >> 8) & 255, i & 255, i);
	fprintf(f, "</node>\n");
	return fclose(f) ? -errno : 0;
}

static void *sink(void *arg)
{
	int s = *(int *)arg;
	for (;;) {
		void *msg = NULL;
		int n = nn_recv(s, &msg, NN_MSG, 0);
		if (n < 0)
			return NULL;
		nn_freemsg(msg);
	}
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100, polls = argc > 2 ? atoi(argv[2]) : 20;
	char dir[] = "/tmp/vigie-agent-cost-XXXXXX", node[600], uri[700], url[700];
	struct vg_poller *p;
	pthread_t th;

	if (n < 1 || polls < 1 || !mkdtemp(dir))
		return 2;
	snprintf(node, sizeof(node), "%s/node.xml", dir);
	snprintf(uri, sizeof(uri), "test://%s", node);
	snprintf(url, sizeof(url), "ipc://%s/sink", dir);
	if (write_node(node, n))
		return 1;

	/* The test driver's own memory: the same node, opened bare. */
	long rss0 = status_kib("VmRSS:");
	virConnectPtr bare = virConnectOpenReadOnly(uri);
	if (!bare) {
		fprintf(stderr, "cannot open %s\n", uri);
		return 1;
	}
	long rss_driver = status_kib("VmRSS:") - rss0;
	virConnectClose(bare);

	int pull = nn_socket(AF_SP, NN_PULL), push = nn_socket(AF_SP, NN_PUSH);
	if (pull < 0 || push < 0 || nn_bind(pull, url) < 0 || nn_connect(push, url) < 0)
		return 1;
	pthread_create(&th, NULL, sink, &pull);

	struct vg_poller_opts o = {.host = "bench-host", .libvirt_uri = uri};
	if (vg_poller_new(&o, &p))
		return 1;
	int64_t t = vg_now_ms();
	double cpu_total = 0;
	size_t samples = 0, bytes = 0;
	for (int k = 0; k < polls + 2; k++, t += 10000) {
		double c0 = cpu_seconds();
		struct vg_batch *b = vg_batch_new("bench-host", 1, (uint64_t)k + 1, t);
		struct vg_poll_status st;
		uint8_t *buf;
		size_t len;
		if (vg_poller_poll(p, t, NULL, 0, b, &st) || st.ndomains != (size_t)n) {
			fprintf(stderr, "poll failed or saw %zu of %d domains\n", st.ndomains, n);
			return 1;
		}
		if (vg_wire_encode(b, &buf, &len) || nn_send(push, buf, len, 0) != (int)len)
			return 1;
		double c1 = cpu_seconds();
		if (k >= 2) { /* the first two polls read XML and set baselines */
			cpu_total += c1 - c0;
			samples += b->nsamples;
			bytes += len;
		}
		free(buf);
		vg_batch_free(b);
	}
	usleep(100000); /* let the sink drain so its CPU is counted */
	long hwm = status_kib("VmHWM:");
	double per_poll = cpu_total / polls;
	printf("domains=%d polls=%d cpu_per_poll_ms=%.3f cpu_per_domain_us=%.1f "
	       "samples_per_poll=%zu bytes_per_poll=%zu rss_peak_mib=%.1f "
	       "test_driver_mib=%.1f vigie_share_mib=%.1f\n",
	       n, polls, per_poll * 1e3, per_poll / n * 1e6, samples / (size_t)polls,
	       bytes / (size_t)polls, hwm / 1024.0, rss_driver / 1024.0,
	       (hwm - rss_driver) / 1024.0);
	vg_poller_free(p);
	nn_close(push);
	nn_close(pull);
	unlink(node);
	char sock[700];
	snprintf(sock, sizeof(sock), "%s/sink", dir);
	unlink(sock);
	rmdir(dir);
	return 0;
}
