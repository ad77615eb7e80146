/*
 * http_listen.c — the API's listen addresses (query/api/http.h):
 * "host:port", "[v6]:port", ":port" and "*:port" parsed into a struct
 * vg_listen_addr, and the listening socket bound from it.
 *
 * Design: the server binds its socket itself (then hands it to
 * libmicrohttpd), so that "address in use" and "bad address" come back as
 * clear errors naming the address, and port 0 (tests) can be read back.
 *
 * Invariants: only numeric addresses (and "localhost") are accepted, so
 * start-up never waits on a resolver; the socket is non-blocking and
 * close-on-exec.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "query/api/http.h"

/* ---- listen addresses ---------------------------------------------------- */

static int parse_port(const char *p, uint16_t *out)
{
	char *end;
	unsigned long v;

	if (!*p || *p == '-' || *p == '+' || *p == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int vg_listen_parse(const char *s, struct vg_listen_addr *out, char *err,
		    size_t errlen)
{
	const char *colon, *port;
	char host[64];
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		snprintf(err, errlen, "empty listen address (expected HOST:PORT)");
		return -EINVAL;
	}
	if (s[0] == '[') { /* [v6]:port */
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen,
				 "'%s': expected [IPv6]:PORT, e.g. [::1]:7480", s);
			return -EINVAL;
		}
		hlen = (size_t)(close - s - 1);
		port = close + 2;
		if (hlen == 0 || hlen >= sizeof(host)) {
			snprintf(err, errlen, "'%s': bad IPv6 address", s);
			return -EINVAL;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			snprintf(err, errlen, "'%s': '%s' is not an IPv6 address",
				 s, host);
			return -EINVAL;
		}
		out->family = AF_INET6;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(err, errlen,
				 "'%s': missing port (expected HOST:PORT, "
				 "[IPv6]:PORT or :PORT)",
				 s);
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(err, errlen,
				 "'%s': write an IPv6 address in brackets, "
				 "e.g. [::1]:7480",
				 s);
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		port = colon + 1;
		if (hlen >= sizeof(host)) {
			snprintf(err, errlen, "'%s': host too long", s);
			return -EINVAL;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (hlen == 0 || !strcmp(host, "*")) {
			host[0] = '\0';
			out->family = AF_UNSPEC;
		} else if (!strcmp(host, "localhost")) {
			strcpy(host, "127.0.0.1");
			out->family = AF_INET;
		} else {
			struct in_addr a4;
			if (inet_pton(AF_INET, host, &a4) != 1) {
				snprintf(err, errlen,
					 "'%s': '%s' is not an IPv4 address "
					 "(use a numeric address, [IPv6], "
					 "localhost or an empty host for all)",
					 s, host);
				return -EINVAL;
			}
			out->family = AF_INET;
		}
	}
	if (parse_port(port, &out->port)) {
		snprintf(err, errlen, "'%s': port must be a number 0..65535", s);
		return -EINVAL;
	}
	snprintf(out->host, sizeof(out->host), "%s", host);
	return 0;
}

int vg_listen_socket(const struct vg_listen_addr *a, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd = -1, family = a->family, one = 1, zero = 0, e;

	for (int attempt = 0; attempt < 2; attempt++) {
		memset(&ss, 0, sizeof(ss));
		if (family == AF_INET6 || family == AF_UNSPEC) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(a->port);
			if (family == AF_UNSPEC)
				s6->sin6_addr = in6addr_any;
			else
				inet_pton(AF_INET6, a->host, &s6->sin6_addr);
			sl = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons(a->port);
			if (a->host[0])
				inet_pton(AF_INET, a->host, &s4->sin_addr);
			else
				s4->sin_addr.s_addr = htonl(INADDR_ANY);
			sl = sizeof(*s4);
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 && family == AF_UNSPEC &&
		    (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
			family = AF_INET; /* no IPv6 here: all IPv4 addresses */
			continue;
		}
		break;
	}
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
			   family == AF_UNSPEC ? &zero : &one, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0) {
		e = errno;
		if (a->family == AF_INET6)
			snprintf(err, errlen, "[%s]:%u: %s", a->host,
				 (unsigned)a->port, strerror(e));
		else
			snprintf(err, errlen, "%s:%u: %s", a->host,
				 (unsigned)a->port, strerror(e));
		close(fd);
		return -e;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		e = errno;
		snprintf(err, errlen, "fcntl: %s", strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}
