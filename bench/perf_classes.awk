# perf_classes.awk — put each sample of a `perf script -F tid,ip,sym,dso`
# dump in one class, per group of threads, to split a process's CPU into
# the hand-off between threads, the file work and the rest
# (docs/benchmarks.md, "Where the CPU goes now, both sides").
#
#   perf script -i P-rrdcached1.data --comm rrdcached -F tid,ip,sym,dso |
#     awk -v WT=<writer tids> -v FT=<FLUSH connection tids> -v UT=<UPDATE tid> \
#         -f bench/perf_classes.awk | sort
#
# Classes, from the sample's leaf function and the system call or page
# fault it is under: handoff (futex, the scheduler, mutex and condition
# waits), file (page faults, mmap/munmap, open/close, fcntl, madvise,
# pread/pwrite, fstat, librrd's code, memory copies, kernel work outside a
# system call), socket (read/recv/write/send/poll), own (the rest: the
# program's own code, malloc, string functions). Threads not listed count
# as "rest". A heuristic: read the shares, not the second decimal.
BEGIN {
	split(WT, a, ","); for (i in a) G[a[i]] = "writers"
	split(FT, b, ","); for (i in b) G[b[i]] = "flushconn"
	split(UT, d, ","); for (i in d) G[d[i]] = "update"
}
/^[0-9]/ { if (n) out(); n = 1; tid = $1; leaf = ""; ldso = ""; sys = ""; next }
/^$/ { if (n) out(); n = 0; next }
{
	if (leaf == "") { leaf = $2; ldso = $3 }
	if (($2 ~ /^__x64_sys_/ || $2 ~ /asm_exc_page_fault/) && sys == "") sys = $2
}
function out(  k, g) {
	g = (tid in G) ? G[tid] : "rest"
	if (sys ~ /futex/ || leaf ~ /finish_task_switch|_raw_spin_unlock_irqrestore|lll_lock_wait|__schedule|pthread_cond|pthread_mutex|futex/)
		k = "handoff"
	else if (sys ~ /page_fault|munmap|mmap|openat|close|fcntl|madvise|pread|pwrite|fstat|msync|statx|access|mprotect/ || ldso ~ /librrd/ || leaf ~ /memmove|memset|memcpy/ || (ldso ~ /kernel/ && sys == ""))
		k = "file"
	else if (sys ~ /read|recv|write|send|poll/)
		k = "socket"
	else
		k = "own"
	c[g " " k]++; tg[g]++; t++
}
END {
	if (n) out()
	for (k in c) {
		split(k, p, " ")
		printf "%-10s %-8s %7d samples %5.1f%% of the group %5.1f%% of all\n", p[1], p[2], c[k], 100 * c[k] / tg[p[1]], 100 * c[k] / t
	}
	print t " samples"
}
