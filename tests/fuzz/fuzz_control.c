/*
 * libFuzzer target for the control protocol: the request parser and the dispatcher, through an
 * in-memory client of a real server over the fake backend (no sockets, no VM).
 * Input: 1 flag byte, then
 *   flags bit 7 clear: a client byte stream, fed in two pieces split at flag-chosen offset;
 *   flags bit 7 set:   an event "NAME\nDATA" posted to a subscribed client.
 * Flag bits 0-2 turn off the fake's balloon / stats queue / stats answers, bit 3 ends the stream
 * with EOF, bit 4 expires deferred replies. Every output line must be one JSON object.
 */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/control/server.h"
#include "../fake/control_fake.h"
#include "../../vmm/loop.h"
#include "../../vmm/util.h"

static struct loop *loop;
static struct control *ctl;
static struct control_fake fake;

/* Each line of @out is a complete JSON object with "id"+"ok"/"error" or "event". */
static void check_output(char *out)
{
	for (char *line = out, *nl; *line; line = nl + 1) {
		struct json_object *o;

		nl = strchr(line, '\n');
		if (!nl)
			__builtin_trap(); /* every line is terminated */
		*nl = '\0';
		o = json_tokener_parse(line);
		if (!o || !json_object_is_type(o, json_type_object))
			__builtin_trap();
		if (!json_object_object_get_ex(o, "event", NULL) &&
		    (!json_object_object_get_ex(o, "id", NULL) ||
		     (!json_object_object_get_ex(o, "ok", NULL) &&
		      !json_object_object_get_ex(o, "error", NULL))))
			__builtin_trap();
		json_object_put(o);
	}
}

static void setup(uint8_t flags)
{
	if (!loop) {
		log_level = LOG_ERR;
		loop = loop_create();
		if (!loop || control_create(loop, NULL, &control_fake_ops, &fake, &ctl))
			abort();
	}
	control_fake_init(&fake, 256 * MiB, 1);
	fake.ctl = ctl;
	fake.has_balloon = !(flags & 1);
	fake.stats_vq = !(flags & 2);
	fake.stats_answer = !(flags & 4);
}

static void post_event(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *nl;

	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	control_post_event(ctl, text, nl ? nl + 1 : NULL);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_client *cl;
	uint8_t flags;
	char *out;

	if (!size)
		return 0;
	flags = data[0];
	data++;
	size--;
	setup(flags);
	cl = control_test_client(ctl);
	if (!cl)
		abort();
	if (flags & 0x80) {
		static const char sub[] = "{\"id\":0,\"cmd\":\"events.subscribe\"}\n";

		control_test_feed(ctl, cl, sub, sizeof(sub) - 1, false);
		post_event(data, size);
	} else {
		size_t cut = size ? (size_t)(flags >> 5) * size / 4 % size : 0;

		if (control_test_feed(ctl, cl, data, cut, false) == 0)
			control_test_feed(ctl, cl, data + cut, size - cut, flags & 8);
	}
	control_test_poll(ctl, flags & 16);
	out = control_test_output(cl);
	if (out)
		check_output(out);
	free(out);
	control_test_free(ctl, cl);
	return 0;
}
