/* The control protocol: wire names and the request parser (protocol.h, docs/control.md). */
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_balloon.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util.h"

#define PAGE_4K (1ULL << VIRTIO_BALLOON_PFN_SHIFT) /* balloon and state-map page size */

static const char *const cmd_names[CTL_NR_CMDS] = {
	[CTL_CMD_VM_INFO] = "vm.info",
	[CTL_CMD_VM_PAUSE] = "vm.pause",
	[CTL_CMD_VM_RESUME] = "vm.resume",
	[CTL_CMD_VM_SHUTDOWN] = "vm.shutdown",
	[CTL_CMD_SNAPSHOT_CREATE] = "snapshot.create",
	[CTL_CMD_BALLOON_SET] = "balloon.set",
	[CTL_CMD_BALLOON_GET] = "balloon.get",
	[CTL_CMD_BALLOON_STATS] = "balloon.stats",
	[CTL_CMD_MEMORY_STATS] = "memory.stats",
	[CTL_CMD_EVENTS_SUBSCRIBE] = "events.subscribe",
	[CTL_CMD_MEMORY_RECLAIM] = "memory.reclaim",
};

static const char *const code_names[CTL_NR_CODES] = {
	[CTL_E_PARSE] = "parse-error",
	[CTL_E_INVALID_ARG] = "invalid-argument",
	[CTL_E_UNKNOWN_CMD] = "unknown-command",
	[CTL_E_NOT_SUPPORTED] = "not-supported",
	[CTL_E_BUSY] = "busy",
	[CTL_E_VM_NOT_RUNNING] = "vm-not-running",
	[CTL_E_LINE_TOO_LONG] = "line-too-long",
	[CTL_E_INTERNAL] = "internal-error",
	[CTL_E_IDLE_TIMEOUT] = "idle-timeout",
	[CTL_E_NOT_PERMITTED] = "not-permitted",
};

static const struct {
	const char *name;
	uint32_t bit;
} event_names[] = {
	{"balloon.change", CTL_EV_BALLOON_CHANGE},
	{"balloon.stats", CTL_EV_BALLOON_STATS},
	{"vm.state", CTL_EV_VM_STATE},
	{"guest.exit", CTL_EV_GUEST_EXIT},
	{"memory.reclaim", CTL_EV_MEMORY_RECLAIM},
	{"memory.policy", CTL_EV_MEMORY_POLICY},
};

/*
 * Tags 10-15 were added by Linux 6.12 and are missing from older UAPI headers, hence the
 * literal indices. Values the guest reports in bytes carry _bytes (virtio 1.2 §5.5.6.3).
 */
static const char *const stat_names[BALLOON_NR_STAT_TAGS] = {
	[VIRTIO_BALLOON_S_SWAP_IN] = "swap_in_bytes",
	[VIRTIO_BALLOON_S_SWAP_OUT] = "swap_out_bytes",
	[VIRTIO_BALLOON_S_MAJFLT] = "major_faults",
	[VIRTIO_BALLOON_S_MINFLT] = "minor_faults",
	[VIRTIO_BALLOON_S_MEMFREE] = "free_bytes",
	[VIRTIO_BALLOON_S_MEMTOT] = "total_bytes",
	[VIRTIO_BALLOON_S_AVAIL] = "available_bytes",
	[VIRTIO_BALLOON_S_CACHES] = "disk_caches_bytes",
	[VIRTIO_BALLOON_S_HTLB_PGALLOC] = "hugetlb_allocations",
	[VIRTIO_BALLOON_S_HTLB_PGFAIL] = "hugetlb_failures",
	[10] = "oom_kills",
	[11] = "alloc_stalls",
	[12] = "async_scans",
	[13] = "direct_scans",
	[14] = "async_reclaims",
	[15] = "direct_reclaims",
};

const char *ctl_cmd_name(enum ctl_cmd cmd)
{
	return (unsigned int)cmd < CTL_NR_CMDS ? cmd_names[cmd] : NULL;
}

const char *ctl_code_name(enum ctl_code code)
{
	return (unsigned int)code < CTL_NR_CODES ? code_names[code] : NULL;
}

const char *ctl_stat_name(unsigned int tag)
{
	return tag < BALLOON_NR_STAT_TAGS ? stat_names[tag] : NULL;
}

enum ctl_code ctl_code_from_errno(int err)
{
	switch (err) {
	case -ESRCH:
		return CTL_E_VM_NOT_RUNNING;
	case -EINVAL:
	case -ERANGE:
		return CTL_E_INVALID_ARG;
	case -ENODEV:
	case -ENOTSUP:
		return CTL_E_NOT_SUPPORTED;
	case -EBUSY:
	case -EAGAIN:
	case -EALREADY:
		return CTL_E_BUSY;
	default:
		return CTL_E_INTERNAL;
	}
}

uint32_t ctl_event_bit(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(event_names); i++)
		if (!strcmp(name, event_names[i].name))
			return event_names[i].bit;
	return CTL_EV_OTHER;
}

/* Echoed names are cut to a short prefix, on a UTF-8 character boundary. */
static const char *clip(const char *s, char *buf, size_t size)
{
	size_t n = strlen(s);

	if (n < size)
		return s;
	n = size - 4;
	while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	return buf;
}

static int fail(struct ctl_error *err, enum ctl_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct ctl_error *err, enum ctl_code code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* An integer argument in [0, @max]; json-c clamps huge literals, which the bound then rejects. */
static int get_u64(struct json_object *v, const char *name, uint64_t max, uint64_t *out,
		   struct ctl_error *err)
{
	if (!json_object_is_type(v, json_type_int))
		return fail(err, CTL_E_INVALID_ARG, "'%s' must be an integer", name);
	if (json_object_get_int64(v) < 0)
		return fail(err, CTL_E_INVALID_ARG, "'%s' must not be negative", name);
	*out = json_object_get_uint64(v);
	if (*out > max)
		return fail(err, CTL_E_INVALID_ARG, "'%s' must be at most %" PRIu64, name, max);
	return 0;
}

static int unknown_arg(const char *cmd, const char *key, struct ctl_error *err)
{
	char buf[64];

	return fail(err, CTL_E_INVALID_ARG, "%s: unknown argument '%s'", cmd,
		    clip(key, buf, sizeof(buf)));
}

static int args_none(struct json_object *args, struct ctl_request *req, struct ctl_error *err)
{
	json_object_object_foreach(args, key, val)
	{
		(void)val;
		return unknown_arg(ctl_cmd_name(req->cmd), key, err);
	}
	return 0;
}

static int args_shutdown(struct json_object *args, struct ctl_request *req, struct ctl_error *err)
{
	req->args.shutdown.timeout_ms = CTL_SHUTDOWN_DEF_MS;
	json_object_object_foreach(args, key, val)
	{
		if (strcmp(key, "timeout_ms"))
			return unknown_arg("vm.shutdown", key, err);
		if (get_u64(val, key, CTL_SHUTDOWN_MAX_MS, &req->args.shutdown.timeout_ms, err))
			return -1;
	}
	return 0;
}

static int args_balloon_set(struct json_object *args, struct ctl_request *req,
			    struct ctl_error *err)
{
	int seen = 0;

	json_object_object_foreach(args, key, val)
	{
		bool guest = !strcmp(key, "guest_mib");

		if (!guest && strcmp(key, "balloon_mib"))
			return unknown_arg("balloon.set", key, err);
		if (get_u64(val, key, CTL_MAX_MIB, &req->args.balloon_set.mib, err))
			return -1;
		req->args.balloon_set.guest = guest;
		seen++;
	}
	if (seen != 1)
		return fail(err, CTL_E_INVALID_ARG,
			    "balloon.set: give exactly one of 'balloon_mib' or 'guest_mib'");
	return 0;
}

static int args_subscribe(struct json_object *args, struct ctl_request *req, struct ctl_error *err)
{
	req->args.subscribe.mask = CTL_EV_ALL;
	json_object_object_foreach(args, key, val)
	{
		size_t n;

		if (strcmp(key, "events"))
			return unknown_arg("events.subscribe", key, err);
		if (!json_object_is_type(val, json_type_array))
			return fail(err, CTL_E_INVALID_ARG, "'events' must be an array of names");
		n = json_object_array_length(val);
		if (!n)
			return fail(err, CTL_E_INVALID_ARG, "'events' must not be empty");
		req->args.subscribe.mask = 0;
		for (size_t i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(val, i);
			uint32_t bit;
			char buf[64];

			if (!json_object_is_type(e, json_type_string))
				return fail(err, CTL_E_INVALID_ARG, "'events' must hold strings");
			bit = ctl_event_bit(json_object_get_string(e));
			if (bit == CTL_EV_OTHER)
				return fail(err, CTL_E_INVALID_ARG, "unknown event '%s'",
					    clip(json_object_get_string(e), buf, sizeof(buf)));
			req->args.subscribe.mask |= bit;
		}
	}
	return 0;
}

static int args_reclaim(struct json_object *args, struct ctl_request *req, struct ctl_error *err)
{
	bool target = false;

	req->args.reclaim.timeout_ms = CTL_RECLAIM_DEF_MS;
	json_object_object_foreach(args, key, val)
	{
		if (!strcmp(key, "target_mib")) {
			if (get_u64(val, key, CTL_MAX_MIB, &req->args.reclaim.target_mib, err))
				return -1;
			target = true;
		} else if (!strcmp(key, "timeout_ms")) {
			if (get_u64(val, key, CTL_RECLAIM_MAX_MS, &req->args.reclaim.timeout_ms,
				    err))
				return -1;
		} else {
			return unknown_arg("memory.reclaim", key, err);
		}
	}
	if (!target)
		return fail(err, CTL_E_INVALID_ARG, "memory.reclaim: 'target_mib' is required");
	return 0;
}

static int args_snapshot(struct json_object *args, struct ctl_request *req, struct ctl_error *err)
{
	bool have_path = false;

	req->args.snapshot.stop = false;
	json_object_object_foreach(args, key, val)
	{
		if (!strcmp(key, "path")) {
			const char *s = json_object_get_string(val);
			size_t n = s ? strlen(s) : 0;

			if (!json_object_is_type(val, json_type_string) || s[0] != '/' ||
			    n >= CTL_PATH_MAX || n != (size_t)json_object_get_string_len(val))
				return fail(err, CTL_E_INVALID_ARG,
					    "'path' must be an absolute directory path of at most "
					    "%d bytes",
					    CTL_PATH_MAX - 1);
			memcpy(req->args.snapshot.path, s, n + 1);
			have_path = true;
		} else if (!strcmp(key, "stop")) {
			if (!json_object_is_type(val, json_type_boolean))
				return fail(err, CTL_E_INVALID_ARG, "'stop' must be true or false");
			req->args.snapshot.stop = json_object_get_boolean(val);
		} else {
			return unknown_arg("snapshot.create", key, err);
		}
	}
	if (!have_path)
		return fail(err, CTL_E_INVALID_ARG, "snapshot.create: 'path' is required");
	return 0;
}

static int parse_args(struct json_object *args, struct ctl_request *req, struct ctl_error *err)
{
	struct json_object *none = NULL;
	int ret;

	/* json_object_object_foreach() needs an object: give absent args an empty one. */
	if (!args) {
		none = json_object_new_object();
		if (!none)
			return fail(err, CTL_E_INTERNAL, "out of memory");
		ret = parse_args(none, req, err);
		json_object_put(none);
		return ret;
	}
	switch (req->cmd) {
	case CTL_CMD_VM_SHUTDOWN:
		return args_shutdown(args, req, err);
	case CTL_CMD_BALLOON_SET:
		return args_balloon_set(args, req, err);
	case CTL_CMD_EVENTS_SUBSCRIBE:
		return args_subscribe(args, req, err);
	case CTL_CMD_MEMORY_RECLAIM:
		return args_reclaim(args, req, err);
	case CTL_CMD_SNAPSHOT_CREATE:
		return args_snapshot(args, req, err);
	default:
		return args_none(args, req, err);
	}
}

static int read_id(struct json_object *obj, struct ctl_request *req, struct ctl_error *err)
{
	struct json_object *id;

	if (!json_object_object_get_ex(obj, "id", &id) || json_object_is_type(id, json_type_null))
		return 0;
	/* json-c clamps integers beyond int64 to INT64_MAX/UINT64_MAX: tell them apart. */
	if (!json_object_is_type(id, json_type_int) ||
	    (json_object_get_int64(id) == INT64_MAX && json_object_get_uint64(id) != INT64_MAX))
		return fail(err, CTL_E_INVALID_ARG, "'id' must be an integer (int64)");
	req->has_id = true;
	req->id = json_object_get_int64(id);
	return 0;
}

static int validate(struct json_object *obj, struct ctl_request *req, struct ctl_error *err)
{
	struct json_object *cmd = NULL, *args = NULL;
	bool has_args = false;
	char buf[64];

	if (!json_object_is_type(obj, json_type_object))
		return fail(err, CTL_E_INVALID_ARG, "a request must be a JSON object");
	if (read_id(obj, req, err))
		return -1;
	json_object_object_foreach(obj, key, val)
	{
		if (!strcmp(key, "cmd")) {
			cmd = val;
		} else if (!strcmp(key, "args")) {
			args = val;
			has_args = true;
		} else if (strcmp(key, "id")) {
			return fail(err, CTL_E_INVALID_ARG, "unknown field '%s'",
				    clip(key, buf, sizeof(buf)));
		}
	}
	if (!cmd || !json_object_is_type(cmd, json_type_string))
		return fail(err, CTL_E_INVALID_ARG, "'cmd' must be a string");
	for (req->cmd = 0; req->cmd < CTL_NR_CMDS; req->cmd++)
		if (!strcmp(json_object_get_string(cmd), cmd_names[req->cmd]))
			break;
	if (req->cmd == CTL_NR_CMDS)
		return fail(err, CTL_E_UNKNOWN_CMD, "unknown command '%s'",
			    clip(json_object_get_string(cmd), buf, sizeof(buf)));
	if (has_args && !json_object_is_type(args, json_type_object))
		return fail(err, CTL_E_INVALID_ARG, "'args' must be an object");
	return parse_args(args, req, err);
}

int ctl_parse_json(const char *text, size_t len, struct json_object **out, const char **why)
{
	struct json_tokener *tok = json_tokener_new();
	enum json_tokener_error jerr;

	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* Passing the NUL lets a value that ends the text (a bare number) complete. */
	*out = json_tokener_parse_ex(tok, text, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (jerr == json_tokener_success)
		return 0;
	*why = json_tokener_error_desc(jerr);
	json_object_put(*out);
	*out = NULL;
	return -EINVAL;
}

int ctl_parse_request(const char *line, size_t len, struct ctl_request *req, struct ctl_error *err)
{
	struct json_object *obj;
	const char *why;
	char *text;
	int ret;

	memset(req, 0, sizeof(*req));
	if (len > CTL_MAX_LINE)
		return fail(err, CTL_E_LINE_TOO_LONG, "request line longer than %d bytes",
			    CTL_MAX_LINE);
	if (memchr(line, '\0', len))
		return fail(err, CTL_E_PARSE, "NUL byte in request");
	text = malloc(len + 1);
	if (!text)
		return fail(err, CTL_E_INTERNAL, "out of memory");
	memcpy(text, line, len);
	text[len] = '\0';
	ret = ctl_parse_json(text, len, &obj, &why);
	free(text);
	if (ret == -ENOMEM)
		return fail(err, CTL_E_INTERNAL, "out of memory");
	if (ret)
		return fail(err, CTL_E_PARSE, "invalid JSON: %s", why);
	ret = validate(obj, req, err);
	json_object_put(obj);
	return ret;
}
