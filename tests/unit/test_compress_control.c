/*
 * memory.reclaim and the compressed tier's memory.stats figures (vmm/control/protocol.c, the
 * deferred reply in vmm/control/server.c) over a small backend of this file's own.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/control/server.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

static int parse(const char *line, struct ctl_request *req, struct ctl_error *err)
{
	return ctl_parse_request(line, strlen(line), req, err);
}

Test(compress_control, parse_reclaim)
{
	struct ctl_request req;
	struct ctl_error err;

	cr_assert_eq(parse("{\"id\":1,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":128}}",
			   &req, &err),
		     0);
	cr_assert_eq(req.cmd, CTL_CMD_MEMORY_RECLAIM);
	cr_assert_eq(req.args.reclaim.target_mib, 128);
	cr_assert_eq(req.args.reclaim.timeout_ms, CTL_RECLAIM_DEF_MS);
	cr_assert_eq(
		parse("{\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":0,\"timeout_ms\":5}}",
		      &req, &err),
		0);
	cr_assert_eq(req.args.reclaim.timeout_ms, 5);
	cr_assert_eq(parse("{\"cmd\":\"memory.reclaim\"}", &req, &err), -1);
	cr_assert_eq(err.code, CTL_E_INVALID_ARG);
	cr_assert(strstr(err.message, "target_mib"));
	cr_assert_eq(parse("{\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":-1}}", &req, &err),
		     -1);
	cr_assert_eq(parse("{\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1,\"timeout_ms\":"
			   "99999999}}",
			   &req, &err),
		     -1);
	cr_assert_eq(parse("{\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1,\"x\":1}}", &req,
			   &err),
		     -1);
	cr_assert(strstr(err.message, "unknown argument 'x'"));
	cr_assert_eq(ctl_event_bit("memory.reclaim"), CTL_EV_MEMORY_RECLAIM);
}

/* --- the server over a backend with a reclaim hook -------------------------------------------- */

struct rb {
	int ret;
	uint64_t job, target, timeout;
	int calls;
};

static int rb_reclaim(void *opaque, uint64_t target_mib, uint64_t timeout_ms, uint64_t *job)
{
	struct rb *b = opaque;

	b->calls++;
	b->target = target_mib;
	b->timeout = timeout_ms;
	*job = b->job;
	return b->ret;
}

static int rb_stats(void *opaque, struct ctl_memory_stats *out)
{
	(void)opaque;
	out->guest_ram_bytes = 512 * MiB;
	out->compressed.enabled = true;
	out->compressed.tier = (struct memtier_stats){.algo = "lz4",
						      .stored_pages = 10,
						      .compressed_pages = 8,
						      .compressed_bytes = 8 * 1024,
						      .same_filled_pages = 2,
						      .fault_p50_ns = 4000,
						      .fault_p99_ns = 9000,
						      .reclaim_input_bytes = 1000000,
						      .reclaim_cpu_ns = 1000000};
	return 0;
}

struct env {
	struct loop *loop;
	struct control *ctl;
	struct ctl_client *cl;
	struct rb b;
	struct control_backend_ops ops;
};

static void env_init(struct env *e, bool with_reclaim)
{
	memset(e, 0, sizeof(*e));
	e->ops.memory_stats = rb_stats;
	if (with_reclaim)
		e->ops.reclaim = rb_reclaim;
	e->b.job = 7;
	e->loop = loop_create();
	cr_assert_eq(control_create(e->loop, NULL, &e->ops, &e->b, &e->ctl), 0);
	e->cl = control_test_client(e->ctl);
}

static void env_fini(struct env *e)
{
	control_test_free(e->ctl, e->cl);
	control_destroy(e->ctl);
	loop_destroy(e->loop);
}

static struct json_object *output(struct env *e)
{
	char *s = control_test_output(e->cl);
	struct json_object *o = *s ? json_tokener_parse(s) : NULL;

	free(s);
	return o;
}

static void feed(struct env *e, const char *line)
{
	control_test_feed(e->ctl, e->cl, line, strlen(line), false);
}

static const char *code_of(struct json_object *r)
{
	struct json_object *err, *code;

	if (!json_object_object_get_ex(r, "error", &err) ||
	    !json_object_object_get_ex(err, "code", &code))
		return "";
	return json_object_get_string(code);
}

static void post_result(struct env *e, uint64_t job, uint64_t resident)
{
	struct memtier_result r = {.job = job,
				   .target_bytes = 128 * MiB,
				   .reached = true,
				   .why = "reached",
				   .resident_before = 400 * MiB,
				   .resident_after = resident,
				   .evicted_pages = 1000,
				   .compressed_pages = 600,
				   .input_bytes = 1000 * 4096,
				   .output_bytes = 600 * 1024,
				   .elapsed_ns = 2000000000,
				   .cpu_ns = 1000000000};
	struct json_object *o = ctl_reclaim_json(&r);

	control_post_event(e->ctl, "memory.reclaim",
			   json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	control_test_poll(e->ctl, false);
}

Test(compress_control, reclaim_reply_waits_for_its_result)
{
	struct env e;
	struct json_object *r, *ok, *v;

	env_init(&e, true);
	feed(&e, "{\"id\":3,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":128,"
		 "\"timeout_ms\":9000}}\n");
	cr_assert_eq(e.b.calls, 1);
	cr_assert_eq(e.b.target, 128);
	cr_assert_eq(e.b.timeout, 9000);
	cr_assert_null(output(&e), "no reply before the result");
	post_result(&e, 6, 1 * MiB); /* another run's result */
	cr_assert_null(output(&e));
	post_result(&e, 7, 100 * MiB);
	r = output(&e);
	cr_assert_not_null(r);
	cr_assert_eq(json_object_get_int(json_object_object_get(r, "id")), 3);
	cr_assert(json_object_object_get_ex(r, "ok", &ok), "%s", json_object_to_json_string(r));
	cr_assert(json_object_get_boolean(json_object_object_get(ok, "reached")));
	cr_assert_eq(json_object_get_uint64(json_object_object_get(ok, "resident_bytes")),
		     100 * MiB);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(ok, "resident_mib")), 100);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(ok, "target_mib")), 128);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(ok, "stopped_because")),
			 "reached");
	v = json_object_object_get(ok, "compression_ratio");
	cr_assert_float_eq(json_object_get_double(v), 4.0, 1e-9);
	v = json_object_object_get(ok, "mb_per_s_per_core");
	cr_assert_float_eq(json_object_get_double(v), 4.096, 1e-9);
	json_object_put(r);
	env_fini(&e);
}

Test(compress_control, reclaim_errors)
{
	struct env e;
	struct json_object *r;

	env_init(&e, false);
	feed(&e, "{\"id\":1,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1}}\n");
	r = output(&e);
	cr_assert_str_eq(code_of(r), "not-supported");
	json_object_put(r);
	env_fini(&e);

	env_init(&e, true);
	e.b.ret = -EBUSY;
	feed(&e, "{\"id\":1,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1}}\n");
	r = output(&e);
	cr_assert_str_eq(code_of(r), "busy");
	json_object_put(r);
	e.b.ret = -ENODEV;
	feed(&e, "{\"id\":2,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1}}\n");
	r = output(&e);
	cr_assert_str_eq(code_of(r), "not-supported");
	json_object_put(r);
	/* A run that never reports: the server answers by itself once the wait is over. */
	e.b.ret = 0;
	feed(&e, "{\"id\":3,\"cmd\":\"memory.reclaim\",\"args\":{\"target_mib\":1}}\n");
	cr_assert_null(output(&e));
	control_test_poll(e.ctl, true);
	r = output(&e);
	cr_assert_str_eq(code_of(r), "internal-error");
	json_object_put(r);
	env_fini(&e);
}

Test(compress_control, memory_stats_compressed_fields)
{
	struct ctl_memory_stats ms = {0};
	struct json_object *o, *c, *k;

	rb_stats(NULL, &ms);
	ms.ksm.pages_to_scan = 100;
	ms.ksm.sleep_millisecs = -1;
	o = ctl_memory_json(&ms, NULL);
	cr_assert(json_object_object_get_ex(o, "compressed", &c));
	cr_assert(json_object_get_boolean(json_object_object_get(c, "enabled")));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(c, "algorithm")), "lz4");
	cr_assert_float_eq(json_object_get_double(json_object_object_get(c, "compression_ratio")),
			   4.0, 1e-9);
	cr_assert_eq(json_object_get_uint64(json_object_object_get(c, "fault_p99_ns")), 9000);
	cr_assert_float_eq(
		json_object_get_double(json_object_object_get(c, "reclaim_mb_per_s_per_core")),
		1000.0, 1e-9);
	cr_assert(json_object_object_get_ex(c, "incompressible_pages_skipped", NULL));
	cr_assert(json_object_object_get_ex(o, "ksm", &k));
	cr_assert_eq(json_object_get_int(json_object_object_get(k, "pages_to_scan")), 100);
	cr_assert(json_object_object_get_ex(k, "sleep_millisecs", NULL));
	cr_assert_null(json_object_object_get(k, "sleep_millisecs"), "unreadable is null");
	json_object_put(o);
}
