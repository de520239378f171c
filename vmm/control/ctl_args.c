/* `vmm ctl` arguments: options, words and every usage check, before anything connects. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_priv.h"
#include "protocol.h"
#include "../util.h"

int ctl_usage_err(const char *fmt, const char *arg)
{
	fprintf(stderr, "vmm ctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see 'vmm ctl --help')\n");
	return EXIT_USAGE;
}

/* "30" and "30s" are seconds, "500ms" milliseconds, "2m" minutes. */
static int parse_duration_ms(const char *s, uint64_t *ms)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v > 1000000000ULL)
		return -ERANGE;
	if (!*end || !strcmp(end, "s"))
		*ms = v * 1000;
	else if (!strcmp(end, "ms"))
		*ms = v;
	else if (!strcmp(end, "m"))
		*ms = v * 60000;
	else
		return -EINVAL;
	return 0;
}

/* A bare number is MiB; with a suffix it must be a whole number of MiB. */
static int parse_mib(const char *s, uint64_t *mib)
{
	uint64_t bytes;
	size_t digits = strspn(s, "0123456789");

	if (digits && !s[digits]) {
		errno = 0;
		*mib = strtoull(s, NULL, 10);
		return errno ? -ERANGE : 0;
	}
	if (parse_size(s, &bytes) < 0 || bytes % MiB)
		return -EINVAL;
	*mib = bytes / MiB;
	return 0;
}

int ctl_parse_args(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(EXIT_OK);
		} else if (!strcmp(a, "-s") || !strcmp(a, "--socket")) {
			if (++i == argc)
				return ctl_usage_err("%s needs a path", a);
			o->socket = argv[i];
		} else if (!strncmp(a, "--socket=", 9)) {
			o->socket = a + 9;
		} else if (!strcmp(a, "--json")) {
			o->json = true;
		} else if (!strcmp(a, "--wait")) {
			o->wait = true;
		} else if (!strcmp(a, "--guest")) {
			o->guest = true;
		} else if (!strcmp(a, "--timeout") || !strncmp(a, "--timeout=", 10)) {
			const char *v = a[9] == '=' ? a + 10 : (++i < argc ? argv[i] : NULL);

			if (parse_duration_ms(v, &o->timeout_ms) < 0)
				return ctl_usage_err("bad --timeout '%s' (e.g. 30, 30s, 500ms, 2m)",
						     v ? v : "");
			o->has_timeout = true;
		} else if (!strcmp(a, "--stop")) {
			o->stop = true;
		} else if (!strcmp(a, "--watch")) {
			o->watch = true;
		} else if (!strcmp(a, "--interval") || !strncmp(a, "--interval=", 11)) {
			const char *v = a[10] == '=' ? a + 11 : (++i < argc ? argv[i] : NULL);

			if (parse_duration_ms(v, &o->interval_ms) < 0 || o->interval_ms < 100)
				return ctl_usage_err(
					"bad --interval '%s' (at least 100ms; e.g. 1s, 500ms)",
					v ? v : "");
			o->has_interval = true;
		} else if (a[0] == '-' && a[1]) {
			return ctl_usage_err("unknown option '%s'", a);
		} else {
			if (o->nwords == (int)ARRAY_SIZE(o->words))
				return ctl_usage_err("too many arguments%s", "");
			o->words[o->nwords++] = argv[i];
		}
	}
	if (!o->socket)
		return ctl_usage_err("no control socket given (-s PATH)%s", "");
	if (!o->nwords)
		return ctl_usage_err("no command given%s", "");
	return 0;
}

bool ctl_is(const struct opts *o, const char *w0, const char *w1, int n)
{
	return o->nwords >= n && !strcmp(o->words[0], w0) && (!w1 || !strcmp(o->words[1], w1));
}

/* Every usage error is found before connecting, so it never depends on the socket. */
int ctl_check(struct opts *o)
{
	static const char *const plain[] = {"info", "pause", "resume", "shutdown", "memory"};
	const char *w0 = o->words[0];
	bool bal = !strcmp(w0, "balloon"), set = ctl_is(o, "balloon", "set", 2);
	bool reclaim = ctl_is(o, "memory", "reclaim", 2);
	bool snap = !strcmp(w0, "snapshot");
	bool known = bal || snap || !strcmp(w0, "events");

	for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
		known |= !strcmp(w0, plain[i]);
	if (!known)
		return ctl_usage_err("unknown command '%s'", w0);
	if (bal && (o->nwords < 2 || (strcmp(o->words[1], "set") && strcmp(o->words[1], "get") &&
				      strcmp(o->words[1], "stats"))))
		return ctl_usage_err("usage: balloon set|get|stats%s", "");
	if (reclaim && o->nwords != 3)
		return ctl_usage_err("usage: memory reclaim SIZE [--timeout DUR]%s", "");
	if (reclaim && parse_mib(o->words[2], &o->mib) < 0)
		return ctl_usage_err("bad SIZE '%s' (MiB, or a whole number of MiB with K/M/G/T)",
				     o->words[2]);
	if (snap && (o->nwords != 3 || strcmp(o->words[1], "create")))
		return ctl_usage_err("usage: snapshot create DIR [--stop]%s", "");
	if (o->stop && !snap)
		return ctl_usage_err("--stop goes with 'snapshot create'%s", "");
	if (!bal && !reclaim && !snap && strcmp(w0, "events") && o->nwords > 1)
		return ctl_usage_err("'%s' takes no arguments", w0);
	if (bal && !set && o->nwords > 2)
		return ctl_usage_err("'balloon %s' takes no arguments", o->words[1]);
	if ((o->wait || o->guest) && !set)
		return ctl_usage_err("--wait and --guest go with 'balloon set'%s", "");
	if (o->has_timeout && strcmp(w0, "shutdown") && !(set && o->wait) && !reclaim)
		return ctl_usage_err(
			"--timeout goes with 'shutdown', 'balloon set --wait' or 'memory "
			"reclaim'%s",
			"");
	if ((o->watch || o->has_interval) && !ctl_is(o, "memory", NULL, 1))
		return ctl_usage_err("--watch and --interval go with 'memory'%s", "");
	if (o->has_interval && !o->watch)
		return ctl_usage_err("--interval goes with --watch%s", "");
	if (set && o->nwords != 3)
		return ctl_usage_err("usage: balloon set [--guest] SIZE [--wait [--timeout DUR]]%s",
				     "");
	if (set && parse_mib(o->words[2], &o->mib) < 0)
		return ctl_usage_err("bad SIZE '%s' (MiB, or a whole number of MiB with K/M/G/T)",
				     o->words[2]);
	return 0;
}
