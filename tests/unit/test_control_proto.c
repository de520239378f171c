/* The control protocol parser and reply builders (vmm/control/protocol.c): no sockets, no VM. */
#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/virtio_console.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/control/protocol.h"
#include "../../vmm/util.h"

static int parse(const char *line, struct ctl_request *req, struct ctl_error *err)
{
	return ctl_parse_request(line, strlen(line), req, err);
}

static struct ctl_request parse_ok(const char *line)
{
	struct ctl_request req;
	struct ctl_error err = {0};

	cr_assert_eq(parse(line, &req, &err), 0, "%s -> %s: %s", line, ctl_code_name(err.code),
		     err.message);
	return req;
}

static struct ctl_error parse_err(const char *line, enum ctl_code code)
{
	struct ctl_request req;
	struct ctl_error err = {0};

	cr_assert_eq(parse(line, &req, &err), -1, "%s was accepted", line);
	cr_assert_eq(err.code, code, "%s -> %s (%s), expected %s", line, ctl_code_name(err.code),
		     err.message, ctl_code_name(code));
	cr_assert(err.message[0], "%s: empty message", line);
	return err;
}

Test(control_proto, every_command_parses)
{
	static const char *const names[] = {"vm.info",	    "vm.pause",	       "vm.resume",
					    "vm.shutdown",  "balloon.get",     "balloon.stats",
					    "memory.stats", "events.subscribe"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char line[128];
		struct ctl_request req;

		snprintf(line, sizeof(line), "{\"id\":%zu,\"cmd\":\"%s\"}", i, names[i]);
		req = parse_ok(line);
		cr_assert(req.has_id);
		cr_assert_eq(req.id, (int64_t)i);
		cr_assert_str_eq(ctl_cmd_name(req.cmd), names[i]);
		snprintf(line, sizeof(line), "{\"cmd\":\"%s\",\"args\":{},\"id\":1}", names[i]);
		parse_ok(line);
	}
	parse_ok("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1}}");
}

Test(control_proto, id_forms)
{
	struct ctl_request req = parse_ok("{\"cmd\":\"vm.info\"}");

	cr_assert_not(req.has_id);
	req = parse_ok("{\"id\":null,\"cmd\":\"vm.info\"}");
	cr_assert_not(req.has_id);
	req = parse_ok("{\"id\":-7,\"cmd\":\"vm.info\"}");
	cr_assert_eq(req.id, -7);
	req = parse_ok("{\"id\":9223372036854775807,\"cmd\":\"vm.info\"}");
	cr_assert_eq(req.id, INT64_MAX);
	parse_err("{\"id\":\"1\",\"cmd\":\"vm.info\"}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1.5,\"cmd\":\"vm.info\"}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":true,\"cmd\":\"vm.info\"}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":[1],\"cmd\":\"vm.info\"}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":9223372036854775808,\"cmd\":\"vm.info\"}", CTL_E_INVALID_ARG);
}

Test(control_proto, error_keeps_the_id)
{
	struct ctl_request req;
	struct ctl_error err;

	cr_assert_eq(parse("{\"id\":42,\"cmd\":\"nope\"}", &req, &err), -1);
	cr_assert(req.has_id);
	cr_assert_eq(req.id, 42);
	cr_assert_eq(parse("{\"id\":43,\"cmd\":\"vm.info\",\"extra\":1}", &req, &err), -1);
	cr_assert_eq(req.id, 43);
	cr_assert_eq(err.code, CTL_E_INVALID_ARG);
	cr_assert(strstr(err.message, "extra"), "%s", err.message);
}

Test(control_proto, malformed_json_is_parse_error)
{
	static const char *const bad[] = {
		"",
		"{",
		"}",
		"not json",
		"{\"id\":1,}",
		"[1,2,]",
		"{} {}",
		"{\"id\":1} x",
		"{\"id\":1,\"cmd\"}",
		"\"\\u\"",
		"{\"a\":\"\xff\"}",
		"nul",
		"{\"id\":01}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		parse_err(bad[i], CTL_E_PARSE);
}

Test(control_proto, nul_byte_is_parse_error)
{
	static const char line[] = "{\"id\":1,\"cmd\":\"vm.info\"}\0{}";
	struct ctl_request req;
	struct ctl_error err;

	cr_assert_eq(ctl_parse_request(line, sizeof(line) - 1, &req, &err), -1);
	cr_assert_eq(err.code, CTL_E_PARSE);
}

Test(control_proto, not_an_object_is_invalid_argument)
{
	static const char *const bad[] = {"[]", "123", "\"vm.info\"", "null", "true", "1.5"};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		parse_err(bad[i], CTL_E_INVALID_ARG);
}

Test(control_proto, request_shape)
{
	parse_err("{\"id\":1}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":null}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":7}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":[\"vm.info\"]}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.info\",\"args\":null}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.info\",\"args\":[]}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.info\",\"args\":\"x\"}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.info\",\"Args\":{}}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"VM.INFO\"}", CTL_E_UNKNOWN_CMD);
	parse_err("{\"id\":1,\"cmd\":\"\"}", CTL_E_UNKNOWN_CMD);
	parse_err("{\"id\":1,\"cmd\":\"vm.info \"}", CTL_E_UNKNOWN_CMD);
}

Test(control_proto, commands_without_args_reject_any)
{
	static const char *const names[] = {"vm.info",	   "vm.pause",	    "vm.resume",
					    "balloon.get", "balloon.stats", "memory.stats"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char line[128];
		struct ctl_error err;

		snprintf(line, sizeof(line), "{\"id\":1,\"cmd\":\"%s\",\"args\":{\"x\":1}}",
			 names[i]);
		err = parse_err(line, CTL_E_INVALID_ARG);
		cr_assert(strstr(err.message, "'x'"), "%s", err.message);
	}
}

Test(control_proto, shutdown_args)
{
	struct ctl_request req = parse_ok("{\"id\":1,\"cmd\":\"vm.shutdown\"}");

	cr_assert_eq(req.args.shutdown.timeout_ms, CTL_SHUTDOWN_DEF_MS);
	req = parse_ok("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":0}}");
	cr_assert_eq(req.args.shutdown.timeout_ms, 0);
	req = parse_ok("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":600000}}");
	cr_assert_eq(req.args.shutdown.timeout_ms, CTL_SHUTDOWN_MAX_MS);
	parse_err("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":600001}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":-1}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":1.5}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":\"5s\"}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout_ms\":null}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"vm.shutdown\",\"args\":{\"timeout\":5}}", CTL_E_INVALID_ARG);
}

Test(control_proto, balloon_set_args)
{
	struct ctl_request req =
		parse_ok("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":256}}");

	cr_assert_not(req.args.balloon_set.guest);
	cr_assert_eq(req.args.balloon_set.mib, 256);
	req = parse_ok("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":768}}");
	cr_assert(req.args.balloon_set.guest);
	cr_assert_eq(req.args.balloon_set.mib, 768);
	req = parse_ok("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":0}}");
	cr_assert_eq(req.args.balloon_set.mib, 0);
	req = parse_ok("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":4294967296}}");
	cr_assert_eq(req.args.balloon_set.mib, CTL_MAX_MIB);

	parse_err("{\"id\":1,\"cmd\":\"balloon.set\"}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{}}", CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1,\"guest_mib\":2}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":4294967297}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":"
		  "99999999999999999999999}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":-1}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1.0}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1e3}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":\"256\"}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":true}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"guest_mib\":{}}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"target_mib\":1}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"balloon.set\",\"args\":{\"balloon_mib\":1,\"wait\":true}}",
		  CTL_E_INVALID_ARG);
}

Test(control_proto, subscribe_args)
{
	struct ctl_request req = parse_ok("{\"id\":1,\"cmd\":\"events.subscribe\"}");

	cr_assert_eq(req.args.subscribe.mask, CTL_EV_ALL);
	req = parse_ok("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":"
		       "[\"vm.state\",\"guest.exit\",\"vm.state\"]}}");
	cr_assert_eq(req.args.subscribe.mask, CTL_EV_VM_STATE | CTL_EV_GUEST_EXIT);
	req = parse_ok("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":"
		       "[\"balloon.change\",\"balloon.stats\"]}}");
	cr_assert_eq(req.args.subscribe.mask, CTL_EV_BALLOON_CHANGE | CTL_EV_BALLOON_STATS);
	parse_err("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":[]}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":\"vm.state\"}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":[1]}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"events\":[\"vm.nope\"]}}",
		  CTL_E_INVALID_ARG);
	parse_err("{\"id\":1,\"cmd\":\"events.subscribe\",\"args\":{\"filter\":1}}",
		  CTL_E_INVALID_ARG);
}

Test(control_proto, long_names_are_clipped_in_messages)
{
	char line[4096], name[2000];
	struct ctl_error err;

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	/* A multi-byte character straddling the cut must not be split. */
	memcpy(name + 58, "\xc3\xa9\xc3\xa9", 4);
	snprintf(line, sizeof(line), "{\"id\":1,\"cmd\":\"%s\"}", name);
	err = parse_err(line, CTL_E_UNKNOWN_CMD);
	cr_assert_lt(strlen(err.message), 100);
	cr_assert(strstr(err.message, "..."));
	{
		char *r = ctl_reply_error(true, 1, err.code, err.message);
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o;

		json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
		o = json_tokener_parse_ex(tok, r, (int)strlen(r));
		cr_assert_not_null(o, "reply is not valid UTF-8 JSON: %s", r);
		json_object_put(o);
		json_tokener_free(tok);
		free(r);
	}
}

Test(control_proto, line_limit)
{
	size_t n = CTL_MAX_LINE + 1;
	char *line = malloc(n);
	struct ctl_request req;
	struct ctl_error err;

	memset(line, ' ', n);
	cr_assert_eq(ctl_parse_request(line, n, &req, &err), -1);
	cr_assert_eq(err.code, CTL_E_LINE_TOO_LONG);
	/* Exactly the limit is parsed (padding is whitespace around a valid request). */
	memcpy(line, "{\"id\":1,\"cmd\":\"vm.info\"}", 24);
	cr_assert_eq(ctl_parse_request(line, CTL_MAX_LINE, &req, &err), 0, "%s", err.message);
	free(line);
}

Test(control_proto, deep_nesting_is_rejected)
{
	char line[4096];
	size_t n = 0;

	n += (size_t)sprintf(line, "{\"id\":1,\"cmd\":\"vm.info\",\"args\":{\"x\":");
	for (int i = 0; i < 1000; i++)
		line[n++] = '[';
	line[n] = '\0';
	parse_err(line, CTL_E_PARSE);
}

static struct json_object *reparse(char *line)
{
	struct json_object *o;
	size_t n;

	cr_assert_not_null(line);
	n = strlen(line);
	cr_assert(n && line[n - 1] == '\n', "line not terminated: %s", line);
	cr_assert_null(memchr(line, '\n', n - 1), "embedded newline: %s", line);
	o = json_tokener_parse(line);
	cr_assert_not_null(o, "%s", line);
	free(line);
	return o;
}

Test(control_proto, reply_lines)
{
	struct json_object *r = reparse(ctl_reply_error(true, 5, CTL_E_BUSY, "x\ny\"z"));
	struct json_object *e, *v;

	cr_assert_eq(json_object_get_int64(json_object_object_get(r, "id")), 5);
	cr_assert(json_object_object_get_ex(r, "error", &e));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(e, "code")), "busy");
	cr_assert_str_eq(json_object_get_string(json_object_object_get(e, "message")), "x\ny\"z");
	json_object_put(r);

	r = reparse(ctl_reply_error(false, 0, CTL_E_PARSE, "bad"));
	cr_assert(json_object_object_get_ex(r, "id", &v));
	cr_assert_null(v);
	json_object_put(r);

	r = reparse(ctl_reply_ok(true, -3, NULL));
	cr_assert(json_object_is_type(json_object_object_get(r, "ok"), json_type_object));
	cr_assert_eq(json_object_get_int64(json_object_object_get(r, "id")), -3);
	json_object_put(r);
}

Test(control_proto, code_names_are_the_documented_set)
{
	static const char *const want[] = {
		"parse-error",	"invalid-argument", "unknown-command", "not-supported",
		"busy",		"vm-not-running",   "line-too-long",   "internal-error",
		"idle-timeout", "not-permitted"};

	cr_assert_eq(ARRAY_SIZE(want), CTL_NR_CODES);
	for (unsigned int i = 0; i < CTL_NR_CODES; i++)
		cr_assert_str_eq(ctl_code_name(i), want[i]);
	cr_assert_null(ctl_code_name(CTL_NR_CODES));
	cr_assert_eq(ctl_code_from_errno(-ESRCH), CTL_E_VM_NOT_RUNNING);
	cr_assert_eq(ctl_code_from_errno(-ENODEV), CTL_E_NOT_SUPPORTED);
	cr_assert_eq(ctl_code_from_errno(-ENOTSUP), CTL_E_NOT_SUPPORTED);
	cr_assert_eq(ctl_code_from_errno(-EINVAL), CTL_E_INVALID_ARG);
	cr_assert_eq(ctl_code_from_errno(-EALREADY), CTL_E_BUSY);
	cr_assert_eq(ctl_code_from_errno(-EIO), CTL_E_INTERNAL);
}

Test(control_proto, event_lines)
{
	struct json_object *r = reparse(ctl_event_line("balloon.change", "{\"actual_mib\":3}"));
	struct json_object *d;

	cr_assert_str_eq(json_object_get_string(json_object_object_get(r, "event")),
			 "balloon.change");
	cr_assert(json_object_object_get_ex(r, "data", &d));
	cr_assert_eq(json_object_get_int64(json_object_object_get(d, "actual_mib")), 3);
	json_object_put(r);
	r = reparse(ctl_event_line("vm.state", NULL));
	cr_assert(json_object_object_get_ex(r, "data", &d));
	cr_assert_null(d);
	json_object_put(r);
	cr_assert_null(ctl_event_line("x", "{\"a\":"));
	cr_assert_null(ctl_event_line("x", "{} {}"));
	cr_assert_eq(ctl_event_bit("guest.exit"), CTL_EV_GUEST_EXIT);
	cr_assert_eq(ctl_event_bit("something.else"), CTL_EV_OTHER);
}

Test(control_proto, balloon_json_units)
{
	struct balloon_counters bc = {.target_pages = 256 * 300, .actual_pages = 256 * 100 + 7};
	struct json_object *o = ctl_balloon_json(&bc, 1024 * MiB);

	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "target_mib")), 300);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "actual_mib")), 100);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "actual_pages")),
		     256 * 100 + 7);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "guest_ram_mib")), 1024);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "guest_mib")), 923);
	json_object_put(o);
}

Test(control_proto, stats_json_names)
{
	struct balloon_stats st = {.seq = 4, .received_ns = 1000000000ULL};
	struct json_object *o, *s;

	for (unsigned int t = 0; t < BALLOON_NR_STAT_TAGS; t++) {
		cr_assert_not_null(ctl_stat_name(t));
		st.valid[t] = t != 3;
		st.val[t] = t;
	}
	cr_assert_null(ctl_stat_name(16));
	cr_assert_str_eq(ctl_stat_name(4), "free_bytes");
	cr_assert_str_eq(ctl_stat_name(7), "disk_caches_bytes");
	o = ctl_stats_json(&st, 1250000000ULL, true);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "age_ms")), 250);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "seq")), 4);
	cr_assert(json_object_get_boolean(json_object_object_get(o, "fresh")));
	s = json_object_object_get(o, "stats");
	cr_assert_eq(json_object_get_int64(json_object_object_get(s, "total_bytes")), 5);
	cr_assert_eq(json_object_get_int64(json_object_object_get(s, "direct_reclaims")), 15);
	cr_assert_null(json_object_object_get(s, "minor_faults"));
	cr_assert_eq(json_object_object_length(s), 15);
	json_object_put(o);
}

Test(control_proto, memory_json_fields)
{
	struct ctl_memory_stats ms = {
		.guest_ram_bytes = 1024 * MiB, .ballooned_pages = 10, .has_balloon = true};
	struct ctl_server_stats srv = {.error_replies = 2};
	struct json_object *o, *e;

	ms.ksm.run = 1;
	ms.ksm.have_ksm_stat = true;
	ms.ksm.process_profit = -4096;
	o = ctl_memory_json(&ms, &srv);
	cr_assert_eq(json_object_get_int64(json_object_object_get(o, "ballooned_bytes")), 40960);
	cr_assert_eq(json_object_get_int64(json_object_object_get(json_object_object_get(o, "ksm"),
								  "profit_bytes")),
		     -4096);
	cr_assert_not(json_object_get_boolean(
		json_object_object_get(json_object_object_get(o, "compressed"), "enabled")));
	e = json_object_object_get(o, "errors");
	cr_assert_eq(json_object_get_int64(json_object_object_get(e, "control_error_replies")), 2);
	cr_assert_eq(json_object_get_int64(json_object_object_get(e, "balloon")), 0);
	json_object_put(o);
}

/* vm.info: each "virtio-blk" device entry carries its disk's path and request counters. */
Test(control_proto, info_lists_disks_with_counters)
{
	struct ctl_vm_info info = {
		.state = "running",
		.nr_devices = 3,
		.devices = {"pci-host", "virtio-blk", "virtio-blk"},
		.nr_disks = 2,
		.disks = {{.path = "/a.img", .c = {.reads = 7, .rejected = 2, .capacity = 2048}},
			  {.path = "/b.img", .ro = true, .c = {.io_errors = 1}}},
	};
	struct json_object *o = ctl_info_json(&info, NULL), *devs, *d, *v;

	cr_assert_not_null(o);
	cr_assert(json_object_object_get_ex(o, "devices", &devs));
	cr_assert_eq(json_object_array_length(devs), 3);
	d = json_object_array_get_idx(devs, 0);
	cr_assert_not(json_object_object_get_ex(d, "path", &v));
	d = json_object_array_get_idx(devs, 1);
	cr_assert(json_object_object_get_ex(d, "path", &v));
	cr_assert_str_eq(json_object_get_string(v), "/a.img");
	cr_assert(json_object_object_get_ex(d, "reads", &v));
	cr_assert_eq(json_object_get_uint64(v), 7);
	cr_assert(json_object_object_get_ex(d, "rejected", &v));
	cr_assert_eq(json_object_get_uint64(v), 2);
	cr_assert(json_object_object_get_ex(d, "capacity_sectors", &v));
	cr_assert_eq(json_object_get_uint64(v), 2048);
	d = json_object_array_get_idx(devs, 2);
	cr_assert(json_object_object_get_ex(d, "read_only", &v));
	cr_assert(json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(d, "io_errors", &v));
	cr_assert_eq(json_object_get_uint64(v), 1);
	json_object_put(o);
}

/* vm.info: the "virtio-rng" entry carries its rate limit and counters, "virtio-console" its
 * guest errors and one object per port (name, state, byte counters), in port order. */
Test(control_proto, info_lists_rng_and_console_counters)
{
	struct ctl_vm_info info = {
		.state = "running",
		.nr_devices = 3,
		.devices = {"pci-host", "virtio-rng", "virtio-console"},
		.has_rng = true,
		.rng_cfg = {.enabled = true, .rate_bytes_per_s = 1000},
		.rng = {.bytes = 300,
			.requests = 4,
			.throttled = 2,
			.timer_wakeups = 1,
			.err_count = 3},
		.has_vconsole = true,
		.vconsole = {.err_count = 5,
			     .features = 1ULL << VIRTIO_CONSOLE_F_MULTIPORT,
			     .nr_ports = 2,
			     .ports = {{.name = "vmm.stdout",
					.added = true,
					.guest_open = true,
					.tx_bytes = 10,
					.written = 6,
					.dropped = 1,
					.buffered = 3},
				       {.name = "vmm.stdin", .added = true, .rx_bytes = 9}}},
	};
	struct json_object *o = ctl_info_json(&info, NULL), *devs, *d, *ports, *p;

	cr_assert_not_null(o);
	cr_assert(json_object_object_get_ex(o, "devices", &devs));
	cr_assert_eq(json_object_array_length(devs), 3);
	cr_assert_not(json_object_object_get_ex(json_object_array_get_idx(devs, 0), "bytes", NULL));
	d = json_object_array_get_idx(devs, 1);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "rate_bytes_per_s")), 1000);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "burst_bytes")), 1000,
		     "burst 0 means one second's worth");
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "bytes")), 300);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "requests")), 4);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "throttled")), 2);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "timer_wakeups")), 1);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "guest_errors")), 3);
	d = json_object_array_get_idx(devs, 2);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(d, "guest_errors")), 5);
	cr_assert(json_object_get_boolean(json_object_object_get(d, "multiport")));
	cr_assert(json_object_object_get_ex(d, "ports", &ports));
	cr_assert_eq(json_object_array_length(ports), 2);
	p = json_object_array_get_idx(ports, 0);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "id")), 0);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(p, "name")), "vmm.stdout");
	cr_assert(json_object_get_boolean(json_object_object_get(p, "guest_open")));
	cr_assert_not(json_object_get_boolean(json_object_object_get(p, "host_open")));
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "tx_bytes")), 10);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "written")), 6);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "dropped")), 1);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "buffered")), 3);
	p = json_object_array_get_idx(ports, 1);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "id")), 1);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(p, "name")), "vmm.stdin");
	cr_assert_eq(json_object_get_uint64(json_object_object_get(p, "rx_bytes")), 9);
	json_object_put(o);
}
