/*
 * Control socket server (design.md "Control protocol", docs/control.md): a Unix stream socket,
 * JSON lines, at most CTL_MAX_CLIENTS clients, every client non-blocking on the event loop.
 * The server knows no VM: commands go to a small backend ops table. vm_backend.c is the real
 * backend (control_start()/control_stop()); tests/fake/control_fake.c is the one tests and benches
 * use.
 */
#ifndef VMM_CONTROL_SERVER_H
#define VMM_CONTROL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

struct control;
struct ctl_client;
struct loop;

/* Server policy (docs/control.md "The socket", "Framing"); the wire format is protocol.h's. */
#define CTL_MAX_CLIENTS	  32   /* connections served at a time; the next get busy */
#define CTL_STATS_WAIT_MS 1000 /* balloon.stats waits this long for a fresh set */
#define CTL_RECLAIM_GRACE_MS \
	30000 /* memory.reclaim: the server answers by itself this long after */
#define CTL_WQ_HIGH	(256 * 1024)  /* queued reply bytes above which a client's requests wait */
#define CTL_WQ_MAX	(1024 * 1024) /* queued bytes above which a client is disconnected */
#define CTL_EVQ_MAX	4096	      /* events queued between any thread and the loop */
#define CTL_MAX_PENDING 16	      /* deferred replies (balloon.stats) per client */
#define CTL_IDLE_DEF_MS 60000	      /* idle timeout unless control_set_idle_timeout() says */
#define CTL_IDLE_MAX_MS (86400 * 1000ULL) /* largest idle timeout (one day) */
#define CTL_IDLE_NEVER	UINT64_MAX	  /* control_set_idle_timeout(): idle clients stay */

/*
 * What the server asks of a VM. Every hook runs on the loop thread and returns 0 or -errno
 * (mapped to error codes by ctl_code_from_errno(): -ESRCH vm-not-running, -ENODEV not-supported,
 * -EINVAL invalid-argument, -EBUSY/-EALREADY busy).
 */
struct control_backend_ops {
	/* vm.info figures. */
	int (*info)(void *opaque, struct ctl_vm_info *out);
	/* Pause/resume all vCPUs: 0 done, 1 already in that state, -ESRCH created/stopped. */
	int (*pause)(void *opaque);
	int (*resume)(void *opaque);
	/*
	 * Ask the guest to shut down; stop the VM hard after @timeout_ms unless it stopped by
	 * itself (0: stop at once). Must return before stopping so the reply goes out first.
	 * *@guest_notified: the request reached the guest.
	 */
	int (*shutdown)(void *opaque, uint64_t timeout_ms, bool *guest_notified);
	/* Set the balloon target in 4 KiB pages; -ENODEV without a balloon, -EINVAL too large. */
	int (*balloon_set)(void *opaque, uint64_t num_pages);
	/* Balloon counters and the guest RAM size in bytes; -ENODEV without a balloon. */
	int (*balloon_get)(void *opaque, struct balloon_counters *out, uint64_t *ram_bytes);
	/*
	 * Ask the guest for fresh stats: 0 (a "balloon.stats" event will follow), -EAGAIN (a
	 * request is already in flight), -ENOTSUP (no stats queue), -ENODEV (no balloon).
	 */
	int (*stats_request)(void *opaque);
	/* Latest stats set; -ENODEV without a balloon. */
	int (*stats_get)(void *opaque, struct balloon_stats *out);
	/* memory.stats figures. */
	int (*memory_stats)(void *opaque, struct ctl_memory_stats *out);
	/*
	 * memory.reclaim: start compressing guest RAM down to @target_mib resident within
	 * @timeout_ms; *@job identifies the run. The backend then posts the event
	 * "memory.reclaim" with ctl_reclaim_json() data carrying that "job" (control_post_event()),
	 * which completes the deferred reply. -ENODEV without a compressed tier, -EBUSY while a
	 * reclaim runs. May be NULL (not-supported).
	 */
	int (*reclaim)(void *opaque, uint64_t target_mib, uint64_t timeout_ms, uint64_t *job);
	/*
	 * snapshot.create: pause, write the snapshot into directory @path, then resume (or stop
	 * when @stop: the VM stops after the reply is queued). @why gets one line on failure.
	 * May be NULL (not-supported).
	 */
	int (*snapshot)(void *opaque, const char *path, bool stop, struct ctl_snapshot_result *out,
			char *why, size_t why_len);
};

/**
 * control_create() - start a control server.
 * @loop: the event loop whose thread runs every client; the server adds its fds to it.
 * @path: socket path, or NULL for no listening socket (tests attach in-memory clients). The
 * socket is created with mode 0600. A path holding a live socket is refused with -EADDRINUSE;
 * a stale socket file (nobody accepts) is replaced; a path holding anything else gives -EEXIST;
 * a path longer than sun_path gives -ENAMETOOLONG.
 * @ops/@opaque: the backend; @ops must outlive the server.
 * @out: the new server. Returns 0 or -errno (a message is printed).
 */
int control_create(struct loop *loop, const char *path, const struct control_backend_ops *ops,
		   void *opaque, struct control **out);

/**
 * control_set_idle_timeout() - close clients that sent nothing for @ms milliseconds while no
 * deferred reply of theirs waits (after one "idle-timeout" error line). Bytes sent to the client
 * count as activity too; a blank line is the keepalive. @ms: 1..CTL_IDLE_MAX_MS, 0 for
 * CTL_IDLE_DEF_MS (what control_create() sets), CTL_IDLE_NEVER for no timeout. Clients are
 * checked every min(1 s, @ms / 4). In-memory test clients never time out. Loop thread only (or
 * no loop running). Returns 0, -EINVAL out of range, or -errno from loop_add_timer().
 */
int control_set_idle_timeout(struct control *c, uint64_t ms);

/**
 * control_parse_arg() - split the --control argument "PATH[,idle-timeout=SECONDS]".
 * A comma starts an option only when "NAME=" follows it up to the next comma: "/a,b/s" is a
 * path. @path: @path_size bytes for the path. *@idle_ms: 0 when absent (the default),
 * CTL_IDLE_NEVER for 0 s, else SECONDS * 1000 (at most 86400 s). On error @err (@err_size bytes)
 * holds one line naming the problem. Returns 0, -EINVAL (bad or unknown option, empty path) or
 * -ENAMETOOLONG (the path does not fit @path).
 */
int control_parse_arg(const char *arg, char *path, size_t path_size, uint64_t *idle_ms, char *err,
		      size_t err_size);

/**
 * control_destroy() - deliver queued events, flush replies for at most ~200 ms, close every
 * client, remove the socket file (when it is still ours) and free @c. Call from the loop thread
 * or after loop_run() returned, and only when no thread can call control_post_event() any more.
 * NULL is a no-op.
 */
void control_destroy(struct control *c);

/**
 * control_post_event() - queue event @event with JSON text @data_json (copied; NULL for null)
 * for subscribed clients. Callable from any thread (vCPU threads included): it only takes a
 * mutex, copies and signals an eventfd; the loop thread does the rest. Drops (and counts) the
 * event when CTL_EVQ_MAX are already queued. The signature matches vm->event_fn and the
 * balloon's event sink, with @opaque the struct control.
 */
void control_post_event(void *opaque, const char *event, const char *data_json);

/** control_get_stats() - snapshot of the server counters. Loop thread only. */
void control_get_stats(struct control *c, struct ctl_server_stats *out);

/** control_backend_opaque() - the @opaque given to control_create(). */
void *control_backend_opaque(struct control *c);

/** control_socket_path() - the path given to control_create() (NULL when none). */
const char *control_socket_path(struct control *c);

/*
 * Test hooks: clients with no socket. Their output accumulates (bounded by CTL_WQ_MAX like any
 * client) until taken with control_test_output(). Loop thread only (or no loop running).
 */

/** control_test_client() - a new in-memory client, or NULL (busy or ENOMEM). */
struct ctl_client *control_test_client(struct control *c);

/**
 * control_test_feed() - process @len bytes as if read from @cl's socket; @eof: the peer shut
 * its write side after them. Returns 0, or -EPIPE once the server has closed @cl (then it is
 * still valid until control_test_free()).
 */
int control_test_feed(struct control *c, struct ctl_client *cl, const void *data, size_t len,
		      bool eof);

/**
 * control_test_output() - the bytes queued for @cl so far (NUL-terminated), which the call
 * removes from the queue. Returns a malloc'd string (caller frees), NULL on ENOMEM.
 */
char *control_test_output(struct ctl_client *cl);

/** control_test_free() - drop @cl (its deferred replies too). */
void control_test_free(struct control *c, struct ctl_client *cl);

/**
 * control_test_poll() - run what the loop would run now: deliver queued events, complete
 * deferred replies whose wait has ended (@expire_all: all of them, as if their deadline passed).
 */
void control_test_poll(struct control *c, bool expire_all);

#endif
