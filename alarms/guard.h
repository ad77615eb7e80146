/*
 * vigie — where a project's webhook may connect (alarms/guard.c).
 *
 * A webhook URL written by a project (a tenant) must not make the
 * collector POST to itself, to loopback, to link-local addresses (cloud
 * metadata at 169.254.169.254), or into private networks: the collector
 * sits inside the cloud's control plane. The check is made on the address
 * libcurl is about to connect to (its open-socket callback), after DNS,
 * so a name that resolves to a forbidden address, or re-resolves to one
 * later, is refused as well; redirects are never followed.
 *
 * Refused unless an [alarms] webhook_allow CIDR contains the address:
 *   IPv4 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24,
 *        192.168/16, 198.18/15, 224/4 and 240/4 (multicast, reserved,
 *        broadcast)
 *   IPv6 ::, ::1, fc00::/7, fe80::/10, ff00::/8, and the IPv4 inside
 *        ::ffff:0:0/96 and 64:ff9b::/96 checked as IPv4
 *   every address of the collector's own interfaces (read at creation)
 *
 * Thread-safety: a guard is read-only after vg_alarm_guard_create; any
 * number of threads may check against it.
 */
#ifndef VIGIE_ALARM_GUARD_H
#define VIGIE_ALARM_GUARD_H

#include <stddef.h>

#include <sys/socket.h>

struct vg_alarm_guard;

#define VG_GUARD_ALLOW_MAX 64 /* CIDRs in webhook_allow */
#define VG_GUARD_OWN_MAX 64   /* own interface addresses remembered */

/* A guard with the allow list `allow` ("CIDR,CIDR,...", NULL or "" for
 * none; a bare address is a /32 or /128). 0, -EINVAL with the bad entry
 * named in err, or -ENOMEM. Free with vg_alarm_guard_free. */
int vg_alarm_guard_create(const char *allow, struct vg_alarm_guard **out,
			  char *err, size_t errlen);
void vg_alarm_guard_free(struct vg_alarm_guard *g); /* accepts NULL */

/* Whether a webhook may connect to sa: 0 allowed; -EACCES refused, with
 * why (one line such as "127.0.0.1 is loopback") in why; -EAFNOSUPPORT
 * for a family other than IPv4/IPv6 (refused too). */
int vg_alarm_guard_check(const struct vg_alarm_guard *g,
			 const struct sockaddr *sa, char *why, size_t len);

#endif
