/*
 * rrdcd_strip.h — a relay in front of a real rrdcached that, while asked
 * to, sends the daemon every FLUSH command without its file name, so the
 * real daemon answers it with a real refusal of its own ("-1 Usage: FLUSH
 * <filename>", or within a BATCH "<n> Usage: FLUSH <filename>"): an
 * answer the collector's client maps to -EREMOTEIO (an error message it
 * does not recognise). Header-only, no cmocka.
 *
 * Why a relay (the one fake part, on the request side only: every answer
 * is the daemon's, passed through byte for byte). rrdcached 1.7.2 answers
 * a FLUSH of a valid name with such an unrecognised error only when it is
 * out of memory ("Cannot allocate memory", handle_request_flush), which a
 * test cannot cause for real; -P makes it answer "Permission denied."
 * (-EACCES), which store_sync_refused_test covers.
 *
 * Each accepted connection gets a thread that relays until either side
 * closes; commands are rewritten whole lines at a time (a line split over
 * two reads is kept until its end arrives). rcs_start returns 0 or
 * -errno; rcs_stop closes the listening socket (the relay threads end
 * with their connections).
 */
#ifndef VIGIE_TEST_RRDCD_STRIP_H
#define VIGIE_TEST_RRDCD_STRIP_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct rcs_relay {
	char listen_path[108];
	char daemon_path[108];
	int lfd;
	int strip; /* __atomic: 1 while FLUSH names are stripped */
	pthread_t th;
};

struct rcs_conn {
	struct rcs_relay *r;
	int cfd, dfd;
};

static inline int rcs_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static inline void *rcs_conn_main(void *arg)
{
	struct rcs_conn *k = arg;
	char *line = malloc(1 << 17);
	size_t used = 0;

	for (int done = !line; !done;) {
		struct pollfd p[2] = {{.fd = k->cfd, .events = POLLIN}, {.fd = k->dfd, .events = POLLIN}};
		char in[8192];
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents) { /* the daemon's answers: as they are */
			ssize_t n = read(k->dfd, in, sizeof(in));
			if (n <= 0 || rcs_write_all(k->cfd, in, (size_t)n))
				done = 1;
		}
		if (!done && p[0].revents) { /* commands: whole lines */
			ssize_t n = read(k->cfd, in, sizeof(in));
			if (n <= 0 || used + (size_t)n > (1 << 17)) {
				done = 1;
				continue;
			}
			memcpy(line + used, in, (size_t)n);
			used += (size_t)n;
			size_t start = 0;
			for (char *nl; (nl = memchr(line + start, '\n', used - start));) {
				size_t len = (size_t)(nl - (line + start)) + 1;
				const char *s = line + start;
				if (__atomic_load_n(&k->r->strip, __ATOMIC_RELAXED) && len > 6 &&
				    !strncmp(s, "FLUSH ", 6)) {
					if (rcs_write_all(k->dfd, "FLUSH\n", 6))
						done = 1;
				} else if (rcs_write_all(k->dfd, s, len)) {
					done = 1;
				}
				start += len;
			}
			memmove(line, line + start, used - start);
			used -= start;
		}
	}
	close(k->cfd);
	close(k->dfd);
	free(line);
	free(k);
	return NULL;
}

static inline int rcs_unix(const char *path, int listen_it)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	size_t len = strlen(path);

	if (len >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	if (fd < 0)
		return -errno;
	memcpy(a.sun_path, path, len + 1);
	if (listen_it ? bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64)
		      : connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static inline void *rcs_accept_main(void *arg)
{
	struct rcs_relay *r = arg;

	for (;;) {
		int cfd = accept(r->lfd, NULL, NULL);
		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			return NULL; /* closed by rcs_stop */
		}
		int dfd = rcs_unix(r->daemon_path, 0);
		struct rcs_conn *k = dfd >= 0 ? malloc(sizeof(*k)) : NULL;
		pthread_t th;
		if (!k) {
			close(cfd);
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		k->r = r;
		k->cfd = cfd;
		k->dfd = dfd;
		if (pthread_create(&th, NULL, rcs_conn_main, k)) {
			close(cfd);
			close(dfd);
			free(k);
			continue;
		}
		pthread_detach(th);
	}
}

/* Relay LISTEN_PATH (a unix socket made here) to the daemon's unix socket
 * DAEMON_PATH, FLUSHes passed as they are until rcs_strip(r, 1). */
static inline int rcs_start(struct rcs_relay *r, const char *listen_path, const char *daemon_path)
{
	size_t ll = strlen(listen_path), dl = strlen(daemon_path);

	memset(r, 0, sizeof(*r));
	if (ll >= sizeof(r->listen_path) || dl >= sizeof(r->daemon_path))
		return -ENAMETOOLONG;
	memcpy(r->listen_path, listen_path, ll + 1);
	memcpy(r->daemon_path, daemon_path, dl + 1);
	unlink(listen_path);
	if ((r->lfd = rcs_unix(listen_path, 1)) < 0)
		return r->lfd;
	if (pthread_create(&r->th, NULL, rcs_accept_main, r)) {
		close(r->lfd);
		return -EAGAIN;
	}
	return 0;
}

static inline void rcs_strip(struct rcs_relay *r, int on)
{
	__atomic_store_n(&r->strip, on, __ATOMIC_RELAXED);
}

static inline void rcs_stop(struct rcs_relay *r)
{
	shutdown(r->lfd, SHUT_RDWR);
	close(r->lfd);
	pthread_join(r->th, NULL);
	unlink(r->listen_path);
}

#endif
