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
 * Everything is on: host file systems (statvfs of this machine's mounts)
 * and guest file systems every poll (the test driver is not QEMU: it has no
 * guest agent and is never asked). The test driver's bulk call reports neither
 * vCPU wait/delay nor guest file systems, so a second line measures the
 * added cost of each new group on its own: the poller's domain half on
 * hand-made snapshots of N domains (2 vCPUs, one disk, one NIC) without,
 * then with, vcpu.N.wait/delay, then with two guest file systems; and the
 * host half with and without host file systems.
 *
 * Usage: agent_cost N [POLLS]     prints two lines of figures
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

#include "agent/domxml.h"
#include "agent/poll.h"
#include "vigie/clock.h"
#include "vigie/wire.h"
#include "bench/bench_cpu.h"

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

/* CPU seconds of `polls` vg_poller_apply_domains calls on snapshot s
 * (after two warm-up polls that set the baselines). */
static double apply_cost(struct vg_lv_snapshot *s, int polls)
{
	struct vg_poller_opts o = {.host = "bench-host", .no_host_fs = 1};
	struct vg_poller *p;
	double cpu = 0;
	int64_t t = 1795000000000LL;

	if (vg_poller_new(&o, &p))
		exit(1);
	for (int k = 0; k < polls + 2; k++, t += 10000) {
		for (size_t i = 0; i < s->ndomains; i++) {
			struct vg_lv_domain *d = &s->domains[i];
			d->cpu_time_s += 5;
			for (size_t v = 0; v < d->nvcpu_times; v++) {
				((double *)d->vcpu_time_s)[v] += 2;
				if (d->vcpu_wait_s)
					((double *)d->vcpu_wait_s)[v] += 0.01;
				if (d->vcpu_delay_s)
					((double *)d->vcpu_delay_s)[v] += 0.02;
			}
		}
		struct vg_batch *b = vg_batch_new("bench-host", 1, (uint64_t)k + 1, t);
		double c0 = bench_self_cpu_s();
		if (vg_poller_apply_domains(p, s, t, b))
			exit(1);
		double c1 = bench_self_cpu_s();
		if (k >= 2)
			cpu += c1 - c0;
		vg_batch_free(b);
	}
	vg_poller_free(p);
	return cpu;
}

/* CPU seconds of `polls` host-only polls (this machine's /proc). */
static double host_cost(int no_host_fs, int polls)
{
	struct vg_poller_opts o = {.host = "bench-host", .no_host_fs = no_host_fs};
	struct vg_poller *p;
	double cpu = 0;
	int64_t t = 1795000000000LL;

	if (vg_poller_new(&o, &p))
		exit(1);
	for (int k = 0; k < polls; k++, t += 10000) {
		struct vg_batch *b = vg_batch_new("bench-host", 1, (uint64_t)k + 1, t);
		double c0 = bench_self_cpu_s();
		if (vg_poller_poll(p, t, NULL, 0, b, NULL))
			exit(1);
		cpu += bench_self_cpu_s() - c0;
		vg_batch_free(b);
	}
	vg_poller_free(p);
	return cpu;
}

/* The added cost of each new group, per domain and poll (see top). */
static void added_costs(int n, int polls)
{
	struct vg_domxml meta;
	struct vg_lv_snapshot s = {0};
	struct vg_lv_disk *disks = calloc((size_t)n, sizeof(*disks));
	struct vg_lv_nic *nics = calloc((size_t)n, sizeof(*nics));
	double *vt = calloc((size_t)n * 6, sizeof(double));
	char(*uuids)[40] = calloc((size_t)n, 40);
	struct vg_lv_fs fs[2] = {
		{.mountpoint = "/", .device = "/dev/vda1", .fstype = "ext4", .disk = "vda", .total = 21e9, .used = 2e9},
		{.mountpoint = "/boot", .device = "/dev/vda15", .fstype = "vfat", .disk = "vda", .total = 1.3e8, .used = 6e6},
	};

	s.domains = calloc((size_t)n, sizeof(*s.domains));
	if (!disks || !nics || !vt || !uuids || !s.domains ||
	    vg_domxml_parse("<domain><name>vm</name><metadata><nova:instance "
			    "xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
			    "<nova:flavor name='m1.small'><nova:vcpus>2</nova:vcpus>"
			    "</nova:flavor><nova:owner><nova:project uuid='p1'>p</nova:project>"
			    "</nova:owner></nova:instance></metadata><devices>"
			    "<disk device='disk'><source file='/g/a.img'/><target dev='vda'/></disk>"
			    "<interface type='ethernet'><target dev='tap0'/></interface>"
			    "</devices></domain>",
			    &meta))
		exit(1);
	s.ndomains = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct vg_lv_domain *d = &s.domains[i];
		snprintf(uuids[i], 40, "%08x-0000-4000-8000-%012x", i, i);
		d->uuid = uuids[i];
		d->name = "vm";
		d->id = i + 1;
		d->state = 1;
		d->active = 1;
		d->meta = &meta;
		d->cpu_time_s = 100;
		d->cpu_user_s = d->cpu_system_s = 1;
		d->vcpus = 2;
		d->mem_current = d->mem_max = 2147483648.0;
		d->mem_available = 2e9;
		d->mem_unused = 1e9;
		d->mem_usable = d->mem_rss = d->mem_swap_in = d->mem_swap_out = 1e6;
		d->mem_major_faults = d->mem_minor_faults = d->mem_disk_caches = 1e3;
		d->nvcpu_times = 2;
		d->vcpu_time_s = &vt[i * 6];
		disks[i].dev = "vda";
		disks[i].source = "/g/a.img";
		disks[i].rd_reqs = disks[i].wr_reqs = disks[i].fl_reqs = 10;
		disks[i].rd_bytes = disks[i].wr_bytes = 4096;
		disks[i].rd_time_s = disks[i].wr_time_s = disks[i].fl_time_s = 0.1;
		disks[i].errors = 0;
		disks[i].capacity = disks[i].allocation = disks[i].physical = 1e9;
		d->disks = &disks[i];
		d->ndisks = 1;
		nics[i].dev = "tap0";
		d->nics = &nics[i];
		d->nnics = 1;
	}
	double base = apply_cost(&s, polls);
	for (int i = 0; i < n; i++) {
		s.domains[i].vcpu_wait_s = &vt[i * 6 + 2];
		s.domains[i].vcpu_delay_s = &vt[i * 6 + 4];
	}
	double vcpu = apply_cost(&s, polls);
	for (int i = 0; i < n; i++) {
		s.domains[i].fs = fs;
		s.domains[i].nfs = 2;
	}
	double gfs = apply_cost(&s, polls);
	int hp = polls * 10;
	double h0 = host_cost(1, hp), h1 = host_cost(0, hp);
	double per = 1e6 / polls / n;
	printf("added: domain_half_us_per_domain=%.2f vcpu_contention_us_per_domain=%+.2f "
	       "guest_fs_us_per_domain=%+.2f host_fs_us_per_poll=%+.1f "
	       "host_fs_us_per_domain=%+.3f\n",
	       base * per, (vcpu - base) * per, (gfs - vcpu) * per,
	       (h1 - h0) * 1e6 / hp, (h1 - h0) * 1e6 / hp / n);
	vg_domxml_clear(&meta);
	free(s.domains);
	free(disks);
	free(nics);
	free(vt);
	free(uuids);
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

	struct vg_poller_opts o = {.host = "bench-host", .libvirt_uri = uri, .guest_fs_polls = 1};
	if (vg_poller_new(&o, &p))
		return 1;
	int64_t t = vg_now_ms();
	double cpu_total = 0;
	size_t samples = 0, bytes = 0;
	for (int k = 0; k < polls + 2; k++, t += 10000) {
		double c0 = bench_self_cpu_s();
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
		double c1 = bench_self_cpu_s();
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
	added_costs(n, polls);
	nn_close(push);
	nn_close(pull);
	unlink(node);
	char sock[700];
	snprintf(sock, sizeof(sock), "%s/sink", dir);
	unlink(sock);
	rmdir(dir);
	return 0;
}
