/*
 * rrd_file.c — librrd operations on one series file that both engines
 * need: the conversion of `vigie-collector storage convert` and the INFO a
 * daemon would print of a file (the contract: collector/rrd_file.h).
 *
 * Why rrd_tune (librrd's modify: RRA#k:=rows, RRA:..., DELRRA:k) and not
 * a create from a source or a dump/restore: measured on librrd 1.7.2, a
 * create with --source re-averages every row it copies (34 of 601 rows of
 * a counter's 1 min archive came out one ulp off, even with the archive
 * unchanged) and a dump prints 10 significant digits, while modify copies
 * the rows of the archives it keeps bit for bit, resizes them (new rows
 * unknown, oldest rows dropped on shrinking), fills new archives from the
 * old ones and keeps the data source's state; rrd_resize refuses version
 * 0005 files. librrd's modify writes a new file and renames it over the
 * old one: a crash leaves one or the other, and a hard link to the old
 * one keeps it whole (the rrdcached backend's undo). The new file is
 * the converting process's: it gets the old one's mode back and, run as
 * root, its owner (a daemon running as its own user must still write
 * it). rrd_tune parses with getopt, so this is for the single-threaded
 * `storage convert` command only.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RRD_EXPORT_DEPRECATED /* only for the header structs (live_head) */
#include <rrd.h>

#include "vigie/fsutil.h"

#include "collector/rrd_file.h"

static const char *const cf_names[] = {"AVERAGE", "MIN", "MAX"};

static void note(char *msg, size_t msglen, const char *path, const char *what)
{
	size_t len = strlen(path);

	if (msg && msglen)
		snprintf(msg, msglen, "%.300s: %.200s", len > 300 ? path + len - 300 : path,
			 what);
}

int vg_rrd_file_convert(const char *path, const struct vg_rrd_layout *lay, char *msg,
			size_t msglen)
{
	enum { MAXRRA = 64,
	       MAXARG = 2 + MAXRRA + 3 * VG_MAX_ARCHIVES };
	rrd_info_t *info, *i;
	long pdp[MAXRRA], rows[MAXRRA];
	int cf[MAXRRA], used[MAXRRA];
	char args[MAXARG][64], file[PATH_MAX];
	char *argv[MAXARG + 1];
	size_t n = 0;
	int argc = 0;
	uint64_t bytes = 4096 + (64u << 10);
	struct stat st;

	if (lay->narchives > VG_MAX_ARCHIVES || !lay->step_s)
		return -EINVAL;
	if (stat(path, &st))
		return errno == ENOENT ? -ENOENT : -EIO;
	if (!(info = rrd_info_r(path))) {
		note(msg, msglen, path, *rrd_get_error() ? rrd_get_error() : "librrd cannot read it");
		rrd_clear_error();
		return -EIO;
	}
	for (size_t k = 0; k < MAXRRA; k++)
		pdp[k] = rows[k] = cf[k] = -1, used[k] = 0;
	for (i = info; i; i = i->next) {
		unsigned idx;
		char field[32];
		if (sscanf(i->key, "rra[%u].%31s", &idx, field) != 2 || idx >= MAXRRA)
			continue;
		if (!strcmp(field, "pdp_per_row") && i->type == RD_I_CNT)
			pdp[idx] = (long)i->value.u_cnt;
		else if (!strcmp(field, "rows") && i->type == RD_I_CNT)
			rows[idx] = (long)i->value.u_cnt;
		else if (!strcmp(field, "cf") && i->type == RD_I_STR)
			for (int c = 0; c < 3; c++)
				if (!strcmp(i->value.u_str, cf_names[c]))
					cf[idx] = c;
		if (idx + 1 > n)
			n = idx + 1;
	}
	rrd_info_free(info);
	snprintf(file, sizeof(file), "%s", path);
	argv[argc++] = "tune";
	argv[argc++] = file;
	for (size_t a = 0; a < lay->narchives; a++) {
		long want = (long)(lay->archives[a].retention_s / lay->archives[a].resolution_s);
		long p = (long)(lay->archives[a].resolution_s / lay->step_s);
		bytes += 3 * (uint64_t)(want > 0 ? want : 1) * sizeof(double);
		for (int c = 0; c < 3; c++) {
			size_t k;
			for (k = 0; k < n && !(cf[k] == c && pdp[k] == p && !used[k]); k++)
				;
			if (k < n) {
				used[k] = 1;
				if (rows[k] == want)
					continue;
				snprintf(args[argc], sizeof(args[0]), "RRA#%zu:=%ld", k,
					 want > 0 ? want : 1);
			} else {
				snprintf(args[argc], sizeof(args[0]), "RRA:%s:0.5:%ld:%ld",
					 cf_names[c], p, want > 0 ? want : 1);
			}
			argv[argc] = args[argc];
			argc++;
		}
	}
	for (size_t k = 0; k < n; k++)
		if (!used[k] && argc < MAXARG) {
			snprintf(args[argc], sizeof(args[0]), "DELRRA:%zu", k);
			argv[argc] = args[argc];
			argc++;
		}
	if (argc == 2)
		return 0;
	argv[argc] = NULL;
	optind = 0;
	rrd_clear_error();
	if (rrd_tune(argc, argv)) {
		int full = vg_fs_short_of(path, bytes);
		note(msg, msglen, path,
		     *rrd_get_error() ? rrd_get_error() : "rrd_tune could not convert the file");
		rrd_clear_error();
		return full ? -EAGAIN : -EIO;
	}
	(void)chmod(path, st.st_mode & 07777);
	if (geteuid() == 0 && lchown(path, st.st_uid, st.st_gid)) {
		note(msg, msglen, path, "converted, but cannot give it back its owner");
		return -EIO;
	}
	return 0;
}

/* ---- a conversion a kill leaves safe ------------------------------------------------- */

#define CONV_SIDE ".vigie-convert"
#define CONV_OLD ".vigie-convert.old" /* versions before the side name */

/* The test hook: VIGIE_TEST_CONVERT_KILL names the step after which the
 * process kills itself, as a kill -9 there would (the steps are too
 * short to hit from outside). */
static void test_kill_after(const char *step)
{
	const char *want = getenv("VIGIE_TEST_CONVERT_KILL");

	if (want && !strcmp(want, step))
		raise(SIGKILL);
}

int vg_rrd_file_convert_safe(const char *path, const struct vg_rrd_layout *lay,
			     int (*check)(void *ctx, const char *side, char *why, size_t whylen),
			     void *ctx, char *msg, size_t msglen)
{
	char side[PATH_MAX];
	int rc, fd;

	if ((size_t)snprintf(side, sizeof(side), "%s" CONV_SIDE, path) >= sizeof(side) - 8)
		return -ENAMETOOLONG;
	/* 1. the side name: PATH's inode, which librrd below only reads */
	if (link(path, side)) {
		rc = -errno;
		note(msg, msglen, side,
		     rc == -EEXIST ? "exists: a conversion killed before its end left it"
				   : strerror(-rc));
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	test_kill_after("linked");
	/* 2. converted under the side name: a new file replaces the link */
	if ((rc = vg_rrd_file_convert(side, lay, msg, msglen)))
		goto drop;
	test_kill_after("tuned");
	if ((fd = open(side, O_RDONLY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	/* 3. the caller's check of the converted file */
	if (check && (rc = check(ctx, side, msg, msglen)))
		goto drop;
	test_kill_after("checked");
	/* 4. the one step that changes PATH */
	if (rename(side, path)) {
		rc = -errno;
		note(msg, msglen, path, strerror(-rc));
		rc = -EIO;
		goto drop;
	}
	/* nothing converted (librrd had nothing to do): the side name was
	 * still PATH's inode, which rename leaves in place */
	(void)unlink(side);
	(void)vg_fs_fsync_parent(path);
	test_kill_after("renamed");
	return 0;
drop:
	(void)unlink(side);
	return rc;
}

/* librrd's temporary name of NAME: NAME and six letters or digits. */
static int rrd_tmp_of(const char *entry, const char *name, size_t namelen)
{
	if (strncmp(entry, name, namelen) || strlen(entry) != namelen + 6)
		return 0;
	for (size_t i = namelen; entry[i]; i++)
		if (!isalnum((unsigned char)entry[i]))
			return 0;
	return 1;
}

static void add_note(char *out, size_t outlen, const char *what, const char *name)
{
	size_t l = strlen(out);

	if (l < outlen)
		snprintf(out + l, outlen - l, "%s%s %.200s", l ? "; " : "", what, name);
}

int vg_rrd_file_conv_cleanup(const char *path, char *note_out, size_t notelen)
{
	char dir[PATH_MAX], side[NAME_MAX + 32], old[NAME_MAX + 32], full[PATH_MAX + NAME_MAX + 2];
	const char *base = strrchr(path, '/');
	struct stat sp, so;
	struct dirent *de;
	size_t blen, slen;
	int n = 0, rc = 0, have_path;
	DIR *d;

	if (notelen)
		note_out[0] = '\0';
	if (!base) {
		snprintf(dir, sizeof(dir), ".");
		base = path;
	} else {
		if ((size_t)(base - path) >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, (size_t)(base - path));
		dir[base - path] = '\0';
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
		base++;
	}
	blen = strlen(base);
	if (blen > NAME_MAX)
		return -ENAMETOOLONG;
	snprintf(side, sizeof(side), "%s" CONV_SIDE, base);
	snprintf(old, sizeof(old), "%s" CONV_OLD, base);
	slen = strlen(side);
	have_path = !lstat(path, &sp);
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		struct stat st;
		snprintf(full, sizeof(full), "%s/%s", dir, de->d_name);
		if (!strcmp(de->d_name, old)) {
			if (lstat(full, &so) || !S_ISREG(so.st_mode))
				continue;
			if (have_path && so.st_dev == sp.st_dev && so.st_ino == sp.st_ino) {
				if (!unlink(full)) {
					n++;
					add_note(note_out, notelen,
						 "removed (a link to the file itself)", full);
				}
			} else if (!have_path) {
				if (!rename(full, path)) {
					n++;
					add_note(note_out, notelen, "put back over the missing file",
						 full);
				}
			} else {
				rc = -EEXIST;
				add_note(note_out, notelen,
					 "left alone (an older version's conversion stopped "
					 "after replacing the file, before its check: put it "
					 "back over the file or delete it)",
					 full);
			}
			continue;
		}
		if (!strcmp(de->d_name, side) || rrd_tmp_of(de->d_name, side, slen) ||
		    rrd_tmp_of(de->d_name, base, blen)) {
			if (lstat(full, &st) || !S_ISREG(st.st_mode))
				continue;
			if (!unlink(full)) {
				n++;
				add_note(note_out, notelen, "removed", full);
			}
		}
	}
	closedir(d);
	if (n)
		(void)vg_fs_fsync_parent(path);
	return rc ? rc : n;
}

/* ---- INFO as a daemon prints it ---------------------------------------------------- */

int vg_rrd_file_info(const char *path, struct vg_rrdcd_info *out)
{
	rrd_info_t *info, *i;
	size_t n = 0, k = 0;
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (stat(path, &st))
		return errno == ENOENT ? -ENOENT : -EIO;
	if (!(info = rrd_info_r(path))) {
		rrd_clear_error();
		return -EIO;
	}
	for (i = info; i; i = i->next)
		n++;
	if (!(out->items = calloc(n ? n : 1, sizeof(*out->items)))) {
		rrd_info_free(info);
		return -ENOMEM;
	}
	for (i = info; i; i = i->next) {
		char v[64];
		const char *val = v;
		switch (i->type) {
		case RD_I_VAL:
			if (isnan(i->value.u_val))
				snprintf(v, sizeof(v), "NaN");
			else
				snprintf(v, sizeof(v), "%0.10e", i->value.u_val);
			break;
		case RD_I_CNT:
			snprintf(v, sizeof(v), "%lu", i->value.u_cnt);
			break;
		case RD_I_INT:
			snprintf(v, sizeof(v), "%d", i->value.u_int);
			break;
		case RD_I_STR:
			val = i->value.u_str;
			break;
		default:
			continue; /* a blob: rrdcached prints none for a file */
		}
		struct vg_rrdcd_kv *kv = &out->items[k];
		if (!(kv->key = strdup(i->key)) || !(kv->value = strdup(val))) {
			free(kv->key);
			out->n = k;
			vg_rrdcd_info_free(out);
			rrd_info_free(info);
			return -ENOMEM;
		}
		kv->type = (int)i->type;
		out->n = ++k;
	}
	rrd_info_free(info);
	return 0;
}

int vg_rrd_info_archives(struct vg_rrd_info *d, size_t n, const long *cf_of, const long *pdp,
			 const long *rows)
{
	if (!d->step || !d->kind)
		return -EIO;
	for (size_t k = 0; k < n; k++) {
		if (cf_of[k] != 1 || pdp[k] <= 0 || rows[k] <= 0)
			continue;
		struct vg_rrd_archive *r = &d->rra[d->nrra++];
		time_t res = (time_t)(pdp[k] * (long)d->step);
		time_t cal_end = d->last_update - d->last_update % res;
		r->res_s = (uint32_t)res;
		r->cal_start = cal_end - res * rows[k];
	}
	return d->nrra ? 0 : -EIO;
}

/* Header only (see rrd_file.h); a pread of the file's first bytes, so
 * a write of the file in flight (mmap'd by librrd) can be seen half
 * done: what the callers make of that is theirs to say. */
int vg_rrd_file_last_ms(const char *path, int64_t *out)
{
	/* one page: the header of a layout up to ~30 archives (the default
	 * one's live_head ends at ~2 KiB); a longer header's live_head is
	 * read by a second pread of its own bytes */
	unsigned char buf[4096];
	stat_head_t sh;
	live_head_t lh;
	ssize_t n, got = -1;
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), known = 0;

	if (fd < 0) /* out of descriptors passes: not a damaged file */
		return errno == ENOENT ? -ENOENT : vg_fs_short_of_fds(errno) ? -EAGAIN
									     : -EIO;
	n = pread(fd, buf, sizeof(buf), 0);
	if (n >= (ssize_t)sizeof(sh)) {
		memcpy(&sh, buf, sizeof(sh));
		off = sizeof(stat_head_t) + sh.ds_cnt * sizeof(ds_def_t) +
		      sh.rra_cnt * sizeof(rra_def_t);
		known = !memcmp(sh.cookie, RRD_COOKIE, 4) && sh.float_cookie == FLOAT_COOKIE &&
			strncmp(sh.version, RRD_VERSION3, 4) >= 0 && sh.ds_cnt <= 64 &&
			sh.rra_cnt <= 256;
		if (known && off + sizeof(lh) <= (size_t)n) {
			memcpy(&lh, buf + off, sizeof(lh));
			got = (ssize_t)sizeof(lh);
		} else if (known && n == (ssize_t)sizeof(buf)) {
			got = pread(fd, &lh, sizeof(lh), (off_t)off);
		}
	}
	close(fd);
	if (n < (ssize_t)sizeof(sh))
		return -EIO;
	if (got != (ssize_t)sizeof(lh)) {
		/* Not a layout we know: whole seconds from librrd. */
		time_t last;
		rrd_clear_error();
		last = rrd_last_r(path);
		rrd_clear_error();
		if (last <= 0)
			return -EIO;
		*out = (int64_t)last * 1000;
		return 0;
	}
	if (lh.last_up <= 0 || lh.last_up_usec < 0 || lh.last_up_usec >= 1000000)
		return -EIO;
	/* Nearest, not truncated: librrd keeps .229 as 228999 us (strtod's
	 * double of "seconds.229", truncated to microseconds). */
	*out = (int64_t)lh.last_up * 1000 + (lh.last_up_usec + 500) / 1000;
	return 0;
}
