/* `vmm run --restore` and `--await-command`: the command line's side of snapshots (run_snapshot.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_options.h"
#include "run_snapshot.h"
#include "util.h"

int run_cmd_pipe(const char *shcmd)
{
	static int keep_open = -1; /* the write end of an awaiting guest's empty pipe */
	char b64[4 * (RUN_CMD_MAX + 2) / 3 + 8];
	int p[2];
	size_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe for the vmm.cmd port: %s", strerror(errno));
	if (!shcmd) {
		keep_open = p[1];
		(void)keep_open;
		return p[0];
	}
	n = strlen(shcmd);
	if (n > RUN_CMD_MAX)
		die("the guest command is longer than %d bytes", RUN_CMD_MAX);
	cli_base64((const uint8_t *)shcmd, n, b64);
	strcat(b64, "\n");
	/* A pipe holds 64 KiB: the whole line goes in at once, then end of file. */
	if (write(p[1], b64, strlen(b64)) != (ssize_t)strlen(b64))
		die("writing the command to the vmm.cmd port: %s", strerror(errno));
	close(p[1]);
	return p[0];
}

void run_restore_config(const char *arg, struct machine_config *cfg, const char *shcmd,
			struct snapshot_restore *r)
{
	struct machine_config s = {0};
	char why[512];

	if (snapshot_open(arg, r, &s, why, sizeof(why)) < 0)
		die("%s", why);
	/* What the command line gives a restore: where its console and control socket go. */
	s.console = cfg->console;
	s.console_path = cfg->console_path;
	s.control_path = cfg->control_path;
	s.control_idle_ms = cfg->control_idle_ms;
	s.cmd_in_fd = -1;
	if (shcmd[0] && !s.await_command)
		die("cannot run a command in %s: its guest was not waiting for one (take the "
		    "snapshot of 'vmm run --await-command')",
		    r->dir);
	if (s.await_command)
		s.cmd_in_fd = run_cmd_pipe(shcmd[0] ? shcmd : NULL);
	*cfg = s;
}
