/* `vmm run`'s option parsers and the guest command line's encoding (vmm/main.c uses them). */
#include "cli_options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/*
 * Is @s the value of a --balloon given as its own word? Any word but an option or `--` is (so
 * `--balloon sometimes` is still an error); a bare --balloon is followed by an option, `--` or
 * nothing.
 */
bool cli_is_balloon_value(const char *s)
{
	return s[0] != '-';
}

/* Quote one argument for sh: 'it'\''s'. */
int cli_append_quoted(char *dst, size_t cap, size_t *len, const char *arg)
{
	size_t need = strlen(arg) * 4 + 3;

	if (*len + need + 1 > cap)
		return -E2BIG;
	if (*len)
		dst[(*len)++] = ' ';
	dst[(*len)++] = '\'';
	for (; *arg; arg++) {
		if (*arg == '\'') {
			memcpy(dst + *len, "'\\''", 4);
			*len += 4;
		} else {
			dst[(*len)++] = *arg;
		}
	}
	dst[(*len)++] = '\'';
	dst[*len] = '\0';
	return 0;
}

void cli_base64(const uint8_t *in, size_t n, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];

		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = tbl[(v >> 6) & 63];
		out[o++] = tbl[v & 63];
	}
	if (i < n) {
		uint32_t v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0);

		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

bool cli_parse_onoff(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = false;
	else
		return false;
	return true;
}

void cli_parse_balloon(const char *arg, struct balloon_config *b)
{
	char *copy = strdup(arg), *save = NULL, *tok;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');
		bool ok = false;

		if (!val) {
			if (!cli_parse_onoff(tok, &b->enabled))
				die("--balloon: '%s' is not on, off or KEY=VALUE", tok);
			continue;
		}
		*val++ = '\0';
		if (!strcmp(tok, "deflate-on-oom"))
			ok = cli_parse_onoff(val, &b->deflate_on_oom);
		else if (!strcmp(tok, "free-page-reporting"))
			ok = cli_parse_onoff(val, &b->free_page_reporting);
		else if (!strcmp(tok, "stats"))
			ok = cli_parse_onoff(val, &b->stats);
		else if (!strcmp(tok, "stats-period")) {
			char *end;
			unsigned long s = strtoul(val, &end, 10);

			ok = *val && !*end && s <= 3600;
			b->stats_period_s = (unsigned int)s;
		} else
			die("--balloon: unknown option '%s' (deflate-on-oom, free-page-reporting, "
			    "stats, stats-period)",
			    tok);
		if (!ok)
			die("--balloon: bad value '%s' for %s", val, tok);
	}
	free(copy);
}

/* --disk PATH[,ro=on|off][,cache=none|writeback][,serial=ID]; PATH is kept (argv outlives cfg). */
void cli_parse_disk(char *arg, struct machine_config *cfg)
{
	struct blk_config *d;
	char *save = NULL, *tok, *path;

	if (cfg->nr_disks == MACHINE_MAX_DISKS)
		die("--disk: at most %d disks", MACHINE_MAX_DISKS);
	d = &cfg->disks[cfg->nr_disks++];
	*d = (struct blk_config){.cache = BLK_CACHE_WRITEBACK};
	path = strtok_r(arg, ",", &save);
	if (!path || !*path)
		die("--disk: expected PATH[,ro=on][,cache=none|writeback][,serial=ID]");
	d->path = path;
	while ((tok = strtok_r(NULL, ",", &save))) {
		char *val = strchr(tok, '=');

		if (!val)
			die("--disk %s: '%s' is not KEY=VALUE (ro, cache, serial)", path, tok);
		*val++ = '\0';
		if (!strcmp(tok, "ro")) {
			if (!cli_parse_onoff(val, &d->ro))
				die("--disk %s: ro=%s: expected on or off", path, val);
		} else if (!strcmp(tok, "cache")) {
			if (!strcmp(val, "none"))
				d->cache = BLK_CACHE_NONE;
			else if (!strcmp(val, "writeback"))
				d->cache = BLK_CACHE_WRITEBACK;
			else
				die("--disk %s: cache=%s: expected none or writeback", path, val);
		} else if (!strcmp(tok, "serial")) {
			if (strlen(val) > VIRTIO_BLK_ID_BYTES)
				die("--disk %s: serial '%s' is longer than %d bytes", path, val,
				    VIRTIO_BLK_ID_BYTES);
			snprintf(d->serial, sizeof(d->serial), "%s", val);
		} else {
			die("--disk %s: unknown option '%s' (ro, cache, serial)", path, tok);
		}
	}
}

/* --debug corrupt-store=GPA | exit-stats. */
void cli_parse_debug(const char *arg, struct machine_config *cfg)
{
	const char *v = strncmp(arg, "corrupt-store=", 14) ? NULL : arg + 14;
	char *end;

	if (!strcmp(arg, "exit-stats")) {
		cfg->vm.exit_stats = true;
		return;
	}
	if (!v)
		die("--debug '%s': expected corrupt-store=GPA or exit-stats", arg);
	errno = 0;
	cfg->debug_corrupt_gpa = strtoull(v, &end, 0);
	if (!*v || *end || errno || *v == '-')
		die("--debug corrupt-store='%s': expected a guest-physical address like 0x1000000",
		    v);
	cfg->debug_corrupt_store = true;
}

void cli_parse_compress(const char *arg, struct machine_config *cfg)
{
	bool on;

	cfg->compress_level = 0;
	if (!strcmp(arg, "lz4")) {
		cfg->compress = COMPRESS_LZ4;
	} else if (!strncmp(arg, "zstd", 4) && (!arg[4] || arg[4] == ':')) {
		char *end = NULL;
		long lvl = arg[4] ? strtol(arg + 5, &end, 10) : 0;

		if (arg[4] && (!arg[5] || *end || lvl < 1 || lvl > 19))
			die("--compress '%s': the zstd level goes from 1 to 19", arg);
		cfg->compress = COMPRESS_ZSTD;
		cfg->compress_level = (int)lvl;
	} else if (cli_parse_onoff(arg, &on) && !on) {
		cfg->compress = COMPRESS_OFF;
	} else {
		die("--compress '%s': expected lz4, zstd, zstd:LEVEL or off", arg);
	}
}
