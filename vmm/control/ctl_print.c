/* `vmm ctl`: replies and events in words, for people (docs/control.md "vmm ctl"). */
#include "ctl_priv.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../util.h"

struct json_object *ok_of(struct json_object *reply)
{
	struct json_object *ok = NULL;

	json_object_object_get_ex(reply, "ok", &ok);
	return ok;
}

uint64_t get_u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "?";
}

static void human_bytes(uint64_t b, char *buf, size_t size)
{
	if (b >= GiB)
		snprintf(buf, size, "%.2f GiB", (double)b / GiB);
	else if (b >= MiB)
		snprintf(buf, size, "%.1f MiB", (double)b / MiB);
	else
		snprintf(buf, size, "%.1f KiB", (double)b / KiB);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Print every field as "prefix.key  value", with sizes in bytes also shown in KiB/MiB/GiB. */
void print_flat(struct json_object *o, const char *prefix)
{
	json_object_object_foreach(o, key, val)
	{
		char name[128], human[32];

		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key);
		if (json_object_is_type(val, json_type_object)) {
			print_flat(val, name);
			continue;
		}
		if (json_object_is_type(val, json_type_int) && ends_with(key, "_bytes") &&
		    json_object_get_int64(val) >= 0) {
			human_bytes(json_object_get_uint64(val), human, sizeof(human));
			printf("%-40s %s (%s)\n", name, json_object_get_string(val), human);
		} else if (json_object_is_type(val, json_type_array) &&
			   json_object_array_length(val) &&
			   json_object_is_type(json_object_array_get_idx(val, 0),
					       json_type_object)) {
			/* An array of objects (balloon.queues): NAME.INDEX.KEY lines. */
			for (size_t i = 0; i < json_object_array_length(val); i++) {
				char item[160];

				snprintf(item, sizeof(item), "%s.%zu", name, i);
				print_flat(json_object_array_get_idx(val, i), item);
			}
		} else if (json_object_is_type(val, json_type_array)) {
			printf("%-40s %s\n", name,
			       json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
		} else {
			printf("%-40s %s\n", name, val ? json_object_get_string(val) : "-");
		}
	}
}

void print_info(struct json_object *ok)
{
	struct json_object *devs, *control;

	printf("state     %s\n", get_str(ok, "state"));
	printf("vcpus     %" PRIu64 "\n", get_u64(ok, "vcpus"));
	printf("memory    %" PRIu64 " MiB\n", get_u64(ok, "memory_mib"));
	printf("uptime    %.3f s\n", (double)get_u64(ok, "uptime_ms") / 1000);
	printf("devices  ");
	if (json_object_object_get_ex(ok, "devices", &devs)) {
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			struct json_object *d = json_object_array_get_idx(devs, i), *f;

			printf("%s %s", i ? "," : "", get_str(d, "name"));
			if (json_object_object_get_ex(d, "features", &f) &&
			    json_object_array_length(f)) {
				printf(" (");
				for (size_t j = 0; j < json_object_array_length(f); j++)
					printf("%s%s", j ? " " : "",
					       json_object_get_string(
						       json_object_array_get_idx(f, j)));
				printf(")");
			}
		}
	}
	printf("\n");
	if (json_object_object_get_ex(ok, "exit_status", NULL))
		printf("exit      status %" PRIu64 ": %s\n", get_u64(ok, "exit_status"),
		       get_str(ok, "exit_reason"));
	if (json_object_object_get_ex(ok, "control", &control))
		printf("control   %" PRIu64 " client(s), %" PRIu64 " request(s)\n",
		       get_u64(control, "clients"), get_u64(control, "requests"));
}

void print_balloon(struct json_object *ok)
{
	printf("target    %" PRIu64 " MiB (%" PRIu64 " pages)\n", get_u64(ok, "target_mib"),
	       get_u64(ok, "target_pages"));
	printf("actual    %" PRIu64 " MiB (%" PRIu64 " pages)\n", get_u64(ok, "actual_mib"),
	       get_u64(ok, "actual_pages"));
	printf("guest     %" PRIu64 " MiB of %" PRIu64 " MiB\n", get_u64(ok, "guest_mib"),
	       get_u64(ok, "guest_ram_mib"));
}

void print_stats(struct json_object *ok)
{
	struct json_object *age = NULL, *stats;

	json_object_object_get_ex(ok, "age_ms", &age);
	if (!get_u64(ok, "seq")) {
		printf("no statistics received from the guest yet\n");
		return;
	}
	printf("seq %" PRIu64 ", %s ms old%s\n", get_u64(ok, "seq"),
	       age ? json_object_get_string(age) : "?",
	       json_object_get_boolean(json_object_object_get(ok, "fresh")) ? "" : " (not fresh)");
	if (json_object_object_get_ex(ok, "stats", &stats))
		print_flat(stats, "");
}

void print_event(const char *line)
{
	struct json_object *e = json_tokener_parse(line), *data;
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	printf("%s.%03ld %s", when, ts.tv_nsec / 1000000, e ? get_str(e, "event") : "?");
	if (e && json_object_object_get_ex(e, "data", &data) &&
	    json_object_is_type(data, json_type_object)) {
		json_object_object_foreach(data, key, val)
		{
			printf(" %s=%s", key,
			       json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
		}
	}
	printf("\n");
	json_object_put(e);
}

void print_memory(struct json_object *ok)
{
	print_flat(ok, "");
}

void print_state(struct json_object *ok)
{
	printf("%s%s\n", get_str(ok, "state"),
	       json_object_get_boolean(json_object_object_get(ok, "changed")) ? "" : " (already)");
}

void usage(FILE *f)
{
	fprintf(f,
		"usage: vmm ctl -s PATH [--json] COMMAND [ARGS]\n"
		"  info                          VM state, vCPUs, memory, devices, uptime\n"
		"  pause | resume                park / restart every vCPU\n"
		"  snapshot create DIR [--stop]  pause, write a snapshot into DIR, resume (or "
		"stop);\n"
		"                                restore it with 'vmm run --restore DIR'\n"
		"  shutdown [--timeout DUR]      ask the guest to shut down; stop it hard after "
		"DUR\n"
		"                                (default 5s; 0 stops at once)\n"
		"  balloon set SIZE              take SIZE from the guest (balloon size)\n"
		"  balloon set --guest SIZE      leave the guest SIZE of RAM\n"
		"        [--wait [--timeout DUR]] block until the guest reaches it (default 60s)\n"
		"  balloon get                   target and actual balloon size\n"
		"  balloon stats                 the guest's memory statistics\n"
		"  memory                        host RSS, ballooned pages, KSM, compressed tier\n"
		"  memory --watch [--interval DUR]\n"
		"                                one line per DUR (default 1s): resident, "
		"balloon,\n"
		"                                reported, KSM, compressed, fault-ins/s; --json: "
		"one\n"
		"                                object per line; Ctrl-C ends it\n"
		"  memory reclaim SIZE [--timeout DUR]\n"
		"                                compress cold guest pages until at most SIZE of\n"
		"                                guest RAM is resident; prints what was reached\n"
		"                                (DUR: the reclaim's time limit, default 300s)\n"
		"  events [NAME...]              print events until interrupted\n"
		"options: -s, --socket PATH   control socket (vmm run --control PATH)\n"
		"         --json              print the raw JSON reply lines\n"
		"SIZE: MiB, or with a K/M/G/T suffix (a whole number of MiB). DUR: 30, 30s, 500ms, "
		"2m.\n"
		"exit status: 0 ok, 1 error reply or --wait timeout, 2 usage or connection "
		"error\n");
}
