/*
 * `vmm run`'s option parsers (README "Launching a guest") and the guest command line's encoding of
 * `-- COMMAND`. The parsers print one line and exit with status 2 (die()) on a bad value.
 */
#ifndef VMM_CLI_OPTIONS_H
#define VMM_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "machine.h"

/* The default guest's kernel command line (vmm run --cmdline replaces it). */
#define CLI_BASE_CMDLINE "console=ttyS0 reboot=k panic=-1 tsc=reliable no_timer_check"

/** cli_usage() - print `vmm run`'s usage and option reference to @f. */
void cli_usage(FILE *f);

/**
 * cli_is_balloon_value() - is @s, the word after a bare --balloon, its value? Any word but an
 * option or `--` is; a bare --balloon is followed by an option, `--` or nothing.
 */
bool cli_is_balloon_value(const char *s);

/**
 * cli_append_quoted() - append @arg quoted for sh ('it'\''s') to @dst, after a space when *@len
 * is not 0 (@cap bytes, *@len used so far, kept NUL-terminated). Returns 0, or -E2BIG when it may
 * not fit (nothing appended).
 */
int cli_append_quoted(char *dst, size_t cap, size_t *len, const char *arg);

/** cli_base64() - standard base64 of @n bytes at @in into @out (4 * ((n + 2) / 3) + 1 bytes). */
void cli_base64(const uint8_t *in, size_t n, char *out);

/** cli_parse_onoff() - "on" / "off" into *@out; false for anything else. */
bool cli_parse_onoff(const char *v, bool *out);

/** cli_parse_balloon() - --balloon on|off|KEY=VALUE,... into @b (dies on a bad word). */
void cli_parse_balloon(const char *arg, struct balloon_config *b);

/** cli_parse_disk() - one --disk PATH[,ro=on][,cache=...][,serial=ID] appended to @cfg (@arg is
 * modified; it must outlive @cfg). */
void cli_parse_disk(char *arg, struct machine_config *cfg);

/** cli_parse_debug() - --debug corrupt-store=GPA or exit-stats into @cfg (dies on others). */
void cli_parse_debug(const char *arg, struct machine_config *cfg);

/** cli_parse_compress() - --compress lz4|zstd|zstd:LEVEL|off into @cfg. */
void cli_parse_compress(const char *arg, struct machine_config *cfg);

#endif
