/*
 * guard.c — the address rules for project webhooks (alarms/guard.h).
 *
 * Design: every address is compared as 16 bytes (IPv4 as ::ffff:a.b.c.d)
 * against three short lists: the operator's allow list first (it wins),
 * then the fixed forbidden ranges (the most telling reason), then the
 * collector's own addresses.
 * Lists are tiny (tens of entries), so a linear scan costs less than the
 * connect it guards. IPv6 addresses that carry an IPv4 address
 * (::ffff:0:0/96, 64:ff9b::/96, 6to4's 2002::/16) are judged by that
 * IPv4 address, so "http://[::ffff:127.0.0.1]/" is loopback; the
 * deprecated IPv4-compatible ::/96 and the local-use NAT64 prefix
 * 64:ff9b:1::/48 (RFC 8215, a site's own translator, whose embedding
 * depends on its prefix length) are refused whole.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarms/guard.h"

struct net {
	uint8_t a[16];
	unsigned bits; /* prefix length over the 16 bytes */
};

struct vg_alarm_guard {
	struct net allow[VG_GUARD_ALLOW_MAX];
	size_t nallow;
	uint8_t own[VG_GUARD_OWN_MAX][16];
	size_t nown;
};

static const struct {
	const char *cidr, *what;
} forbidden[] = {
	{"0.0.0.0/8", "'this network'"},
	{"10.0.0.0/8", "a private address"},
	{"100.64.0.0/10", "a shared (carrier NAT) address"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link-local (cloud metadata lives there)"},
	{"172.16.0.0/12", "a private address"},
	{"192.0.0.0/24", "an IETF protocol address"},
	{"192.168.0.0/16", "a private address"},
	{"198.18.0.0/15", "a benchmarking address"},
	{"224.0.0.0/4", "multicast"},
	{"240.0.0.0/4", "reserved or broadcast"},
	{"::/128", "unspecified"},
	{"::1/128", "loopback"},
	{"::/96", "an IPv4-compatible address (deprecated; it carries an IPv4 address)"},
	{"64:ff9b:1::/48", "a local-use NAT64 address (it reaches the site's own IPv4 network)"},
	{"fc00::/7", "a unique local (private) address"},
	{"fe80::/10", "link-local"},
	{"ff00::/8", "multicast"},
};

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

/* "a.b.c.d[/n]" or "x::y[/n]" into n (IPv4 mapped). 0 or -EINVAL. */
static int parse_cidr(const char *s, size_t len, struct net *n)
{
	char buf[64], *slash, *end;
	struct in_addr a4;
	struct in6_addr a6;
	long bits;
	int v4;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memcpy(n->a, v4mapped, 12);
		memcpy(n->a + 12, &a4, 4);
		v4 = 1;
	} else if (inet_pton(AF_INET6, buf, &a6) == 1) {
		memcpy(n->a, &a6, 16);
		v4 = 0;
	} else {
		return -EINVAL;
	}
	bits = v4 ? 32 : 128;
	if (slash) {
		errno = 0;
		bits = strtol(slash, &end, 10);
		if (!*slash || *end || errno || bits < 0 || bits > (v4 ? 32 : 128))
			return -EINVAL;
	}
	n->bits = (unsigned)bits + (v4 ? 96 : 0);
	return 0;
}

static int in_net(const uint8_t a[16], const struct net *n)
{
	unsigned full = n->bits / 8, rest = n->bits % 8;

	if (memcmp(a, n->a, full))
		return 0;
	if (rest) {
		uint8_t m = (uint8_t)(0xff << (8 - rest));
		if ((a[full] & m) != (n->a[full] & m))
			return 0;
	}
	return 1;
}

/* sa as 16 bytes (IPv4 mapped). 0 or -EAFNOSUPPORT. */
static int to16(const struct sockaddr *sa, uint8_t a[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(a, v4mapped, 12);
		memcpy(a + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int vg_alarm_guard_create(const char *allow, struct vg_alarm_guard **out,
			  char *err, size_t errlen)
{
	struct vg_alarm_guard *g;
	struct ifaddrs *ifs = NULL;
	const char *p = allow ? allow : "";

	*out = NULL;
	if (!(g = calloc(1, sizeof(*g)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (*p) {
		size_t len;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		len = strcspn(p, ", \t");
		if (!len)
			break;
		if (g->nallow == VG_GUARD_ALLOW_MAX) {
			snprintf(err, errlen, "more than %d networks", VG_GUARD_ALLOW_MAX);
			free(g);
			return -EINVAL;
		}
		if (parse_cidr(p, len, &g->allow[g->nallow])) {
			snprintf(err, errlen, "'%.*s' is not an address or CIDR "
					      "(like 10.1.0.0/16 or fd00::/8)",
				 (int)(len > 64 ? 64 : len), p);
			free(g);
			return -EINVAL;
		}
		g->nallow++;
		p += len;
	}
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i && g->nown < VG_GUARD_OWN_MAX; i = i->ifa_next)
			if (i->ifa_addr && !to16(i->ifa_addr, g->own[g->nown]))
				g->nown++;
		freeifaddrs(ifs);
	}
	*out = g;
	return 0;
}

void vg_alarm_guard_free(struct vg_alarm_guard *g)
{
	free(g);
}

int vg_alarm_guard_check(const struct vg_alarm_guard *g,
			 const struct sockaddr *sa, char *why, size_t len)
{
	uint8_t a[16], v[16];
	char txt[INET6_ADDRSTRLEN] = "?";

	if (to16(sa, a)) {
		snprintf(why, len, "address family %d is not IPv4 or IPv6", sa->sa_family);
		return -EAFNOSUPPORT;
	}
	for (size_t i = 0; g && i < g->nallow; i++)
		if (in_net(a, &g->allow[i]))
			return 0;
	if (!memcmp(a, v4mapped, 12))
		inet_ntop(AF_INET, a + 12, txt, sizeof(txt));
	else
		inet_ntop(AF_INET6, a, txt, sizeof(txt));
	/* judge an embedded IPv4 address as IPv4 */
	memcpy(v, a, 16);
	if (!memcmp(v, nat64, 12))
		memcpy(v, v4mapped, 12);
	/* 6to4 (2002:AABB:CCDD::/48): a relay sends it to the IPv4 address
	 * AA.BB.CC.DD */
	if (v[0] == 0x20 && v[1] == 0x02) {
		memmove(v + 12, v + 2, 4);
		memcpy(v, v4mapped, 12);
	}
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		struct net n;
		if (parse_cidr(forbidden[i].cidr, strlen(forbidden[i].cidr), &n))
			continue;
		if (in_net(v, &n)) {
			snprintf(why, len, "%s is %s", txt, forbidden[i].what);
			return -EACCES;
		}
	}
	for (size_t i = 0; g && i < g->nown; i++)
		if (!memcmp(a, g->own[i], 16)) {
			snprintf(why, len, "%s is an address of this collector", txt);
			return -EACCES;
		}
	return 0;
}
