/*
 * `vmm ctl memory --watch [--interval DUR] [--json]`: one line per interval from memory.stats
 * (issue 15 "Seeing it"): guest RAM resident in host memory, balloon target/actual, reported,
 * KSM-merged, compressed pages and ratio, fault-ins per second since the previous line. With
 * --json one JSON object per line. SIGINT/SIGTERM end it cleanly (exit status 0).
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "ctl_priv.h"
#include "../util.h"

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (double)MiB;
}

int ctl_watch(int (*stats)(void *conn, struct json_object **ok), void *conn, bool json,
	      uint64_t interval_ms, volatile sig_atomic_t *stop)
{
	uint64_t prev_faults = 0, prev_ns = 0;
	bool header = false;

	while (!*stop) {
		struct json_object *ok = NULL, *bal, *ksm, *cmp, *out;
		uint64_t faults, t = now_ns(), stored, sbytes;
		double rate = 0, ratio = 0;
		struct timespec ts = {.tv_sec = (time_t)(interval_ms / 1000),
				      .tv_nsec = (long)(interval_ms % 1000) * 1000000L};
		int ret = stats(conn, &ok);

		if (ret)
			return *stop ? 0 : ret;
		bal = member(ok, "balloon");
		ksm = member(ok, "ksm");
		cmp = member(ok, "compressed");
		faults = get_u64(cmp, "faults");
		stored = get_u64(cmp, "stored_pages");
		sbytes = get_u64(cmp, "stored_bytes");
		if (prev_ns && t > prev_ns && faults >= prev_faults)
			rate = (double)(faults - prev_faults) * 1e9 / (double)(t - prev_ns);
		if (sbytes)
			ratio = (double)(stored * 4096) / (double)sbytes;
		prev_faults = faults;
		prev_ns = t;
		if (json) {
			out = json_object_new_object();
			json_object_object_add(out, "time_ms", json_object_new_uint64(t / 1000000));
			json_object_object_add(
				out, "resident_bytes",
				json_object_new_uint64(get_u64(ok, "resident_bytes")));
			json_object_object_add(out, "balloon_target_mib",
					       json_object_new_uint64(get_u64(bal, "target_mib")));
			json_object_object_add(out, "balloon_actual_mib",
					       json_object_new_uint64(get_u64(bal, "actual_mib")));
			json_object_object_add(
				out, "reported_bytes",
				json_object_new_uint64(get_u64(ok, "reported_bytes")));
			json_object_object_add(
				out, "ksm_merging_pages",
				json_object_new_uint64(get_u64(ksm, "merging_pages")));
			json_object_object_add(out, "compressed_pages",
					       json_object_new_uint64(stored));
			json_object_object_add(out, "compression_ratio",
					       json_object_new_double(ratio));
			json_object_object_add(out, "fault_ins_per_s",
					       json_object_new_double(rate));
			puts(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
			json_object_put(out);
		} else {
			if (!header)
				printf("%10s %9s %9s %9s %9s %9s %10s %6s %9s\n", "time_s",
				       "rss_mib", "target", "actual", "reported", "ksm_mib",
				       "compressed", "ratio", "faults/s");
			header = true;
			printf("%10.1f %9.1f %9" PRIu64 " %9" PRIu64 " %9.1f %9.1f %10" PRIu64
			       " %6.2f %9.1f\n",
			       (double)t / 1e9, mib(get_u64(ok, "resident_bytes")),
			       get_u64(bal, "target_mib"), get_u64(bal, "actual_mib"),
			       mib(get_u64(ok, "reported_bytes")),
			       mib(get_u64(ksm, "merging_pages") * 4096), stored, ratio, rate);
		}
		fflush(stdout);
		json_object_put(ok);
		nanosleep(&ts, NULL); /* a signal ends the sleep early */
	}
	return 0;
}
