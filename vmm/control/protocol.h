/*
 * Control protocol, the pure half (no I/O): parse one request line into a validated struct, build
 * reply, error and event lines.
 * Wire format (design.md "Control protocol", docs/control.md): one JSON object per line,
 * request {"id":N,"cmd":"NAME","args":{...}}, reply {"id":N,"ok":{...}} or
 * {"id":N,"error":{"code":"...","message":"..."}}, event {"event":"NAME","data":{...}}.
 */
#ifndef VMM_CONTROL_PROTOCOL_H
#define VMM_CONTROL_PROTOCOL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../devices/virtio_balloon.h"
#include "../../devices/virtio_blk.h"
#include "../mem/host_stats.h"
#include "../mem/memtier.h"
#include "../mem/policy.h"

#define CTL_MAX_LINE	    65536	 /* bytes of one request line, '\n' not counted */
#define CTL_SHUTDOWN_DEF_MS 5000	 /* vm.shutdown grace period when timeout_ms is absent */
#define CTL_SHUTDOWN_MAX_MS 600000	 /* largest accepted timeout_ms */
#define CTL_MAX_MIB	    (1ULL << 32) /* largest accepted *_mib argument (4 PiB) */
#define CTL_RECLAIM_DEF_MS  300000	 /* memory.reclaim time limit when timeout_ms is absent */
#define CTL_RECLAIM_MAX_MS  3600000	 /* largest accepted memory.reclaim timeout_ms */
#define CTL_MAX_DEVICES	    16
#define CTL_MSG_LEN	    192
#define CTL_PATH_MAX	    4096 /* bytes of a snapshot.create path, NUL included */

/* Commands, in the order of docs/control.md. */
enum ctl_cmd {
	CTL_CMD_VM_INFO,
	CTL_CMD_VM_PAUSE,
	CTL_CMD_VM_RESUME,
	CTL_CMD_VM_SHUTDOWN,
	CTL_CMD_BALLOON_SET,
	CTL_CMD_BALLOON_GET,
	CTL_CMD_BALLOON_STATS,
	CTL_CMD_MEMORY_STATS,
	CTL_CMD_EVENTS_SUBSCRIBE,
	CTL_CMD_MEMORY_RECLAIM,
	CTL_CMD_SNAPSHOT_CREATE,
	CTL_NR_CMDS,
};

/* The fixed set of error codes; their wire names are ctl_code_name(). */
enum ctl_code {
	CTL_E_PARSE,	      /* "parse-error": the line is not one valid JSON value */
	CTL_E_INVALID_ARG,    /* "invalid-argument": wrong shape, type, range or unknown field */
	CTL_E_UNKNOWN_CMD,    /* "unknown-command" */
	CTL_E_NOT_SUPPORTED,  /* "not-supported": the VM lacks the device or feature */
	CTL_E_BUSY,	      /* "busy": too many clients / requests, or already in progress */
	CTL_E_VM_NOT_RUNNING, /* "vm-not-running": the VM is created or stopped */
	CTL_E_LINE_TOO_LONG,  /* "line-too-long": more than CTL_MAX_LINE bytes; connection closed */
	CTL_E_INTERNAL,	      /* "internal-error": out of memory or an unexpected host error */
	CTL_E_IDLE_TIMEOUT,   /* "idle-timeout": nothing sent for the idle timeout; closed */
	CTL_E_NOT_PERMITTED,  /* "not-permitted": the peer is neither the VMM's uid nor root */
	CTL_NR_CODES,
};

/* Event kinds, as bits of a subscription mask. */
enum ctl_event_bit {
	CTL_EV_BALLOON_CHANGE = 1u << 0, /* "balloon.change" */
	CTL_EV_BALLOON_STATS = 1u << 1,	 /* "balloon.stats" */
	CTL_EV_VM_STATE = 1u << 2,	 /* "vm.state" */
	CTL_EV_GUEST_EXIT = 1u << 3,	 /* "guest.exit" */
	CTL_EV_OTHER = 1u << 4,		 /* any other name (only with a full subscription) */
	CTL_EV_MEMORY_RECLAIM = 1u << 5, /* "memory.reclaim" */
	CTL_EV_MEMORY_POLICY = 1u << 6,	 /* "memory.policy" (--auto-balloon decisions) */
	CTL_EV_ALL = (1u << 7) - 1,
};

/* A validated request. Only the union member of @cmd is meaningful. */
struct ctl_request {
	bool has_id; /* false: the reply carries "id":null */
	int64_t id;
	enum ctl_cmd cmd;
	union {
		struct {
			uint64_t timeout_ms; /* grace period before the hard stop */
		} shutdown;
		struct {
			bool guest;   /* true: @mib is guest_mib (memory kept), else balloon_mib */
			uint64_t mib; /* <= CTL_MAX_MIB */
		} balloon_set;
		struct {
			uint32_t mask; /* enum ctl_event_bit */
		} subscribe;
		struct {
			uint64_t target_mib; /* guest RAM resident target, <= CTL_MAX_MIB */
			uint64_t timeout_ms; /* <= CTL_RECLAIM_MAX_MS */
		} reclaim;
		struct {
			char path[CTL_PATH_MAX]; /* absolute directory */
			bool stop;		 /* stop the VM after the snapshot */
		} snapshot;
	} args;
};

struct ctl_error {
	enum ctl_code code;
	char message[CTL_MSG_LEN];
};

#define CTL_MAX_DISKS 8

/* One virtio-blk disk in vm.info (devices[] lists "virtio-blk" once per disk, in this order). */
struct ctl_disk_info {
	const char *path; /* the --disk image */
	bool ro;
	struct blk_counters c;
};

/* vm.info figures, filled by the backend. */
struct ctl_vm_info {
	const char *state; /* vm_state_name() */
	unsigned int vcpus;
	uint64_t memory_bytes; /* guest RAM */
	uint64_t uptime_ms;    /* since the vCPUs started; 0 before */
	unsigned int nr_devices;
	const char *devices[CTL_MAX_DEVICES]; /* static names, e.g. "virtio-balloon" */
	bool has_balloon;
	uint64_t balloon_features; /* negotiated VIRTIO_BALLOON_F_* bits */
	unsigned int nr_disks;
	struct ctl_disk_info disks[CTL_MAX_DISKS];
	bool stopped; /* exit_status/exit_reason are meaningful */
	int exit_status;
	char exit_reason[256];
};

/* snapshot.create figures, filled by the backend. */
struct ctl_snapshot_result {
	uint64_t pause_ms, total_ms;
	uint64_t state_bytes;			       /* DIR/state */
	uint64_t memory_bytes, memory_allocated_bytes; /* DIR/memory: apparent, on disk */
	uint64_t data_pages;			       /* 4 KiB pages written */
	bool stopped;
};

/* Compressed-tier figures; all zero while the tier does not exist or is off. */
struct ctl_compressed_stats {
	bool enabled;
	struct memtier_stats tier; /* memtier.h; valid when enabled */
};

/* Server-side counters (the control socket itself). */
struct ctl_server_stats {
	uint64_t clients;	       /* connected now */
	uint64_t clients_total;	       /* accepted since start */
	uint64_t clients_rejected;     /* refused with busy (over the server's client limit) */
	uint64_t clients_dropped_slow; /* disconnected: output queue over its bound */
	uint64_t requests;	       /* request lines handled */
	uint64_t error_replies;	       /* error replies sent */
	uint64_t lines_too_long;
	uint64_t clients_idle_closed;  /* closed after the idle timeout */
	uint64_t clients_refused_peer; /* refused: SO_PEERCRED uid neither ours nor root */
	uint64_t events_dropped;       /* event queue overflow or invalid event data */
};

/* memory.stats figures, filled by the backend (server counters are added by the server). */
struct ctl_memory_stats {
	uint64_t guest_ram_bytes;
	uint64_t resident_bytes; /* host RSS of guest RAM (mincore) */
	uint64_t ballooned_pages, reported_pages, discard_calls;
	bool has_balloon;
	struct balloon_counters balloon;
	struct ksm_stats ksm;
	struct ctl_compressed_stats compressed;
	bool has_policy; /* --auto-balloon on */
	struct policy policy;
	uint64_t policy_now_ms; /* now_ns() / 1e6 when read, for hold_remaining_ms */
};

/** ctl_cmd_name() - wire name of @cmd ("vm.info", ...), or NULL when out of range. */
const char *ctl_cmd_name(enum ctl_cmd cmd);

/** ctl_code_name() - wire name of @code ("parse-error", ...), or NULL when out of range. */
const char *ctl_code_name(enum ctl_code code);

/**
 * ctl_code_from_errno() - map a backend's -errno to an error code: -ESRCH vm-not-running,
 * -EINVAL/-ERANGE invalid-argument, -ENODEV/-ENOTSUP not-supported, -EBUSY/-EAGAIN/-EALREADY
 * busy, anything else internal-error.
 */
enum ctl_code ctl_code_from_errno(int err);

/** ctl_event_bit() - subscription bit of event name @name (CTL_EV_OTHER when unknown). */
uint32_t ctl_event_bit(const char *name);

/**
 * ctl_parse_request() - parse and validate one request line.
 * @line: @len bytes without the trailing '\n' (need not be NUL-terminated; may hold any bytes).
 * @req: filled on success; on failure req->has_id/req->id still tell the request's id when it
 * could be read, so the error reply can carry it.
 * @err: filled on failure with the code and a message naming the offending field.
 * Returns 0, or -1 on failure. Never fails on its own for lack of memory except with
 * CTL_E_INTERNAL.
 */
int ctl_parse_request(const char *line, size_t len, struct ctl_request *req, struct ctl_error *err);

/**
 * ctl_parse_json() - strict parse (RFC 8259, valid UTF-8) of exactly one JSON value filling all
 * of @text (NUL-terminated, @len bytes) into *@out (caller puts; NULL for the literal null).
 * Returns 0, -EINVAL with *@why set to json-c's static description, or -ENOMEM.
 */
int ctl_parse_json(const char *text, size_t len, struct json_object **out, const char **why);

/**
 * ctl_reply_ok() - the line {"id":..,"ok":@ok}\n. Takes ownership of @ok (NULL means {}).
 * Returns a malloc'd NUL-terminated string (caller frees), NULL on ENOMEM.
 */
char *ctl_reply_ok(bool has_id, int64_t id, struct json_object *ok);

/**
 * ctl_reply_error() - the line {"id":..,"error":{"code":..,"message":..}}\n.
 * Returns a malloc'd string (caller frees), NULL on ENOMEM.
 */
char *ctl_reply_error(bool has_id, int64_t id, enum ctl_code code, const char *message);

/**
 * ctl_event_line() - the line {"event":@event,"data":DATA}\n where DATA is @data_json parsed
 * (NULL or "" give null). Returns a malloc'd string, or NULL when @data_json is not valid JSON or
 * on ENOMEM.
 */
char *ctl_event_line(const char *event, const char *data_json);

/* Builders of the "ok" objects; each returns a new object (caller owns) or NULL on ENOMEM. */

/** ctl_info_json() - vm.info reply from @info (and @srv when not NULL). */
struct json_object *ctl_info_json(const struct ctl_vm_info *info,
				  const struct ctl_server_stats *srv);

/**
 * ctl_balloon_json() - balloon.get / balloon.set reply: target and actual in MiB (rounded down)
 * and 4 KiB pages, and the guest's share of @ram_bytes.
 */
struct json_object *ctl_balloon_json(const struct balloon_counters *bc, uint64_t ram_bytes);

/**
 * ctl_stats_json() - balloon.stats reply: @st's valid tags by name (VIRTIO_BALLOON_S_*,
 * virtio 1.2 §5.5.6.3), seq, age_ms relative to @now_ns, and @fresh (a set requested by this
 * call arrived in time).
 */
struct json_object *ctl_stats_json(const struct balloon_stats *st, uint64_t now_ns, bool fresh);

/** ctl_stat_name() - reply name of stats tag @tag ("swap_in_bytes", ...), NULL above 15. */
const char *ctl_stat_name(unsigned int tag);

/** ctl_memory_json() - memory.stats reply. @srv may be NULL. */
struct json_object *ctl_memory_json(const struct ctl_memory_stats *ms,
				    const struct ctl_server_stats *srv);

/**
 * ctl_reclaim_json() - memory.reclaim reply and event data from @r: the target, what was reached
 * and why it stopped, resident bytes before/after, pages evicted / skipped, bytes in and out,
 * times and throughput (docs/control.md).
 */
struct json_object *ctl_reclaim_json(const struct memtier_result *r);

#endif
