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
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
