/* Internals of `vmm ctl` shared by ctl.c (arguments, connection, commands) and ctl_print.c. */
#ifndef VMM_CONTROL_CTL_PRIV_H
#define VMM_CONTROL_CTL_PRIV_H

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_OK	       0
#define EXIT_REPLY_ERR 1
#define EXIT_USAGE     2

/* ctl_args.c: what the command line asked for. */
struct opts {
	const char *socket;
	bool json, wait, guest, stop;
	bool has_timeout;
	uint64_t timeout_ms;
	bool watch, has_interval;
	uint64_t interval_ms; /* memory --watch period (default 1 s) */
	uint64_t mib;	      /* balloon set SIZE */
	int nwords;
	char *words[8];
};

/* Print "vmm ctl: " @fmt (with one %s for @arg) and the help hint; returns EXIT_USAGE. */
int ctl_usage_err(const char *fmt, const char *arg);

/* Options and words of `vmm ctl` into @o; EXIT_OK, or EXIT_USAGE with a message printed. */
int ctl_parse_args(int argc, char **argv, struct opts *o);

/* Every usage error of @o (found before connecting); EXIT_OK or EXIT_USAGE. */
int ctl_check(struct opts *o);

/* Do @o's words start with @w0 (and @w1 when not NULL), with at least @n words? */
bool ctl_is(const struct opts *o, const char *w0, const char *w1, int n);

/* ctl_print.c: the human-readable output (--json prints the raw lines instead). */

/* The "ok" object of @reply (borrowed), NULL when there is none. */
struct json_object *ok_of(struct json_object *reply);

/* Member @key of @o as an unsigned integer, 0 when absent. */
uint64_t get_u64(struct json_object *o, const char *key);

/* Print every field as "prefix.key  value", with sizes in bytes also shown in KiB/MiB/GiB. */
void print_flat(struct json_object *o, const char *prefix);

/* vm.info in words. */
void print_info(struct json_object *ok);

/* balloon.get / balloon.set in words. */
void print_balloon(struct json_object *ok);

/* balloon.stats in words. */
void print_stats(struct json_object *ok);

/* One event line (JSON text) as "NAME key=value ...". */
void print_event(const char *line);

/* memory.stats in words. */
void print_memory(struct json_object *ok);

/* vm.pause / vm.resume: the state and whether it changed. */
void print_state(struct json_object *ok);

/*
 * ctl_watch.c: `memory --watch`. @stats(@conn, &ok) fetches one memory.stats "ok" object (owned
 * by the caller afterwards) or returns an exit status; one line (or JSON object with @json) per
 * @interval_ms until *@stop. Returns 0, or @stats's failure.
 */
int ctl_watch(int (*stats)(void *conn, struct json_object **ok), void *conn, bool json,
	      uint64_t interval_ms, volatile sig_atomic_t *stop);

/* The usage text, to @f (stdout for --help, stderr on a usage error). */
void usage(FILE *f);

#endif
