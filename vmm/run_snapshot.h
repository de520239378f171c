/* `vmm run --restore DIR` and `vmm run --await-command` (docs/snapshot.md). */
#ifndef VMM_RUN_SNAPSHOT_H
#define VMM_RUN_SNAPSHOT_H

#include "machine.h"
#include "snapshot/snapshot.h"

#define RUN_CMD_MAX 3072 /* bytes of a guest command (as on the kernel command line) */

/**
 * run_cmd_pipe() - the host side of the vmm.cmd port: a pipe whose read end is returned. With
 * @shcmd (a sh command string) it holds one line, the command's base64, then end of file (the
 * guest's init reads it and runs the command); with NULL it stays open and empty (the guest keeps
 * waiting, e.g. the idle guest a snapshot is taken of). Dies on failure (setup, status 2).
 */
int run_cmd_pipe(const char *shcmd);

/**
 * run_restore_config() - `--restore @arg`: open the snapshot into @r and replace @cfg by the
 * snapshotted machine's configuration, keeping @cfg's runtime options (console, control
 * socket); @shcmd (may be "") is sent to an awaiting guest through the vmm.cmd port. Dies with
 * one line (status 2) when the snapshot cannot be used.
 */
void run_restore_config(const char *arg, struct machine_config *cfg, const char *shcmd,
			struct snapshot_restore *r);

#endif
