/* libFuzzer harness for the configuration parser (daemon/config.c): the input is the text of
 * a config file, loaded with config_new_from_data() (what config_new_from_file() does after
 * reading it). A file that loads must print (--print-config) as text that loads back to the
 * same configuration, and render as the control socket's `config` reply and as a reload's
 * list of changed keys, both valid JSON. */
#include "fuzz_daemon.h"

#include "commands.h"
#include "config.h"

/* A reply line from commands_run() or ,"member":... text: must be one JSON object. */
static void
check_object(const GString *s, gboolean members)
{
	if (!members) {
		FUZZ_CHECK(s->len > 0 && s->str[s->len - 1] == '\n');
		FUZZ_CHECK(fuzz_json_is_object(s->str, s->len - 1));
		return;
	}
	g_autoptr(GString) obj = g_string_new("{");
	FUZZ_CHECK(s->len > 0 && s->str[0] == ',');
	g_string_append_len(obj, s->str + 1, (gssize)s->len - 1);
	g_string_append_c(obj, '}');
	FUZZ_CHECK(fuzz_json_is_object(obj->str, obj->len));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) err = NULL;

	fuzz_quiet_logs();
	/* a copy of exactly size bytes: the parser is given the length, not a terminator */
	g_autofree guint8 *copy = fuzz_copy(data, size);
	g_autoptr(Config) cfg =
	    config_new_from_data((const char *)copy, (gssize)size, "fuzz.conf", &err);
	if (cfg == NULL) {
		FUZZ_CHECK(err != NULL && err->domain == CONFIG_ERROR && err->message[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(err == NULL);

	/* --print-config: every key, loading back to the same configuration */
	g_autofree char *text = config_to_string(cfg);
	g_autoptr(Config) again = config_new_from_data(text, -1, "print-config", &err);
	if (again == NULL && g_getenv("FUZZ_VERBOSE") != NULL)
		g_printerr("fuzz_config: printed config does not load: %s\n", err->message);
	FUZZ_CHECK(again != NULL);
	g_autofree char *text2 = config_to_string(again);
	FUZZ_CHECK(strcmp(text, text2) == 0);

	(void)config_log_mask(cfg);
	FUZZ_CHECK(config_log_level_name(cfg->log_level) != NULL);
	const AnalyzerConfig *acfg = config_analyzer(cfg);
	FUZZ_CHECK(acfg->internal_nets == cfg->internal_nets);

	/* the control socket's `config` reply, as spamflowd answers it */
	ControlRequest req;
	Config *in_force = cfg;
	CommandsDeps deps = {.cfg = &in_force, .config_path = "fuzz.conf"};
	g_autoptr(GString) reply = g_string_new(NULL);
	FUZZ_CHECK(control_parse("config", &req, &err));
	FUZZ_CHECK(commands_run(NULL, &req, NULL, reply, &deps, &err));
	check_object(reply, FALSE);

	/* what a reload from the defaults to this file would report, and back */
	g_autoptr(Config) defaults = config_new();
	g_autoptr(GString) changes = g_string_new(NULL);
	commands_reload_members(changes, defaults, cfg);
	check_object(changes, TRUE);
	g_string_truncate(changes, 0);
	commands_reload_members(changes, cfg, defaults);
	check_object(changes, TRUE);
	return 0;
}
