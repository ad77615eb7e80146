/*
 * free_port.h — a loopback TCP port nobody listens on, for a test or
 * benchmark that starts a daemon on it (tests/unit/pg_harness.h,
 * tests/unit/rrdcached_harness.h). Header-only, no cmocka.
 *
 * The port is drawn below the ephemeral range (12000..31999), so no
 * outgoing connection takes it while a test restarts its daemon; the
 * draw is seeded by the process id and the time, so parallel test
 * binaries seldom try the same ports. A port found free can still be
 * taken by another process before the daemon binds it.
 */
#ifndef VIGIE_TEST_FREE_PORT_H
#define VIGIE_TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A free port, or -errno (-EADDRINUSE after 500 tries). salt tells the
 * callers of one process apart (each has its own sequence). Not
 * thread-safe: *seed is the caller's. */
static inline int vg_test_free_port(uint32_t *seed, uint32_t salt)
{
	if (!*seed)
		*seed = ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)time(NULL) ^ salt;
	for (int i = 0; i < 500; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		*seed = *seed * 1103515245u + 12345u;
		int port = 12000 + (int)((*seed >> 8) % 20000), fd = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		if (fd < 0)
			return -errno;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		a.sin_port = htons((uint16_t)port);
		int ok = !bind(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
		if (ok)
			return port;
	}
	return -EADDRINUSE;
}

#endif
