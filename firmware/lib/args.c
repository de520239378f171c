/* The argument string the loader put at FW_ARGS_GPA: "key=value" words separated by spaces. */
#include "fw.h"

#define MAX_WORDS 64

/* A program may define its own defaults (strong symbol); runtime arguments win. */
__attribute__((weak)) const char fw_default_args[] = "";

static char raw[FW_ARGS_MAX], copy[FW_ARGS_MAX], defaults[FW_ARGS_MAX];
static char *words[MAX_WORDS], *dwords[MAX_WORDS];
static unsigned int nr_words, nr_dwords;

static unsigned int split(char *s, char **out)
{
	unsigned int n = 0;

	while (*s && n < MAX_WORDS) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			*s++ = '\0';
		if (!*s)
			break;
		out[n++] = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
	}
	return n;
}

void args_init(void)
{
	const volatile char *src = (const volatile char *)(uintptr_t)FW_ARGS_GPA;
	size_t i;

	/* The loader always writes a NUL-terminated string there; stay bounded anyway. */
	for (i = 0; i + 1 < sizeof(raw) && src[i]; i++)
		raw[i] = src[i];
	raw[i] = '\0';
	memcpy(copy, raw, sizeof(copy));
	nr_words = split(copy, words);
	for (i = 0; i + 1 < sizeof(defaults) && fw_default_args[i]; i++)
		defaults[i] = fw_default_args[i];
	nr_dwords = split(defaults, dwords);
}

static const char *lookup(char **w, unsigned int n, const char *key)
{
	size_t klen = strlen(key);

	for (unsigned int i = n; i-- > 0;) { /* the last occurrence wins */
		if (!memcmp(w[i], key, klen) && (w[i][klen] == '=' || w[i][klen] == '\0'))
			return w[i][klen] == '=' ? w[i] + klen + 1 : "1";
	}
	return NULL;
}

const char *fw_arg_str(const char *key, const char *def)
{
	const char *v = lookup(words, nr_words, key);

	if (!v)
		v = lookup(dwords, nr_dwords, key);
	return v ? v : def;
}

uint64_t fw_arg_u64(const char *key, uint64_t def)
{
	const char *v = fw_arg_str(key, NULL);
	unsigned int base = 10;
	uint64_t n = 0;

	if (!v || !*v)
		return def;
	if (v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
	}
	for (; *v; v++) {
		unsigned int d;

		if (*v >= '0' && *v <= '9')
			d = *v - '0';
		else if (base == 16 && (*v | 0x20) >= 'a' && (*v | 0x20) <= 'f')
			d = (*v | 0x20) - 'a' + 10;
		else
			return def;
		n = n * base + d;
	}
	return n;
}

const char *fw_args(void)
{
	return raw;
}
