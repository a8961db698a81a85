/* libFuzzer harness for the HTTP API's request mapping (daemon/httpapi.c): the input is a
 * request as libmicrohttpd hands it over, the path after "/api/" on the first line and one
 * query argument per following line ("name=value", or "name" for ?name). What the mapping
 * accepts must be one request line that control_parse() takes or refuses as a usage error,
 * for the same read-only command the path named, never a changing one, with no argument
 * the query did not carry; a refusal is a 404 or 400 with a message. */
#include "fuzz_daemon.h"

#include "control.h"
#include "httpapi.h"

#define MAX_PAIRS 16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *text = g_strndup((const char *)data, size); /* stops at a NUL */
	g_auto(GStrv) lines = g_strsplit(text, "\n", MAX_PAIRS + 2);
	g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) line = g_string_new(NULL);
	g_autoptr(GError) err = NULL;
	guint status = 0;

	fuzz_quiet_logs();
	if (lines[0] == NULL)
		return 0;
	for (guint i = 1; lines[i] != NULL && i <= MAX_PAIRS; i++) {
		char *eq = strchr(lines[i], '=');
		g_ptr_array_add(args, eq != NULL ? g_strndup(lines[i], (gsize)(eq - lines[i]))
						 : g_strdup(lines[i]));
		g_ptr_array_add(args, g_strdup(eq != NULL ? eq + 1 : ""));
	}
	g_ptr_array_add(args, NULL);
	if (!httpapi_control_line(lines[0], (const char *const *)args->pdata, line, &status,
				  &err)) {
		FUZZ_CHECK(err != NULL && err->message[0] != '\0');
		FUZZ_CHECK(status == 404 || status == 400);
		return 0;
	}
	FUZZ_CHECK(err == NULL);
	FUZZ_CHECK(strchr(line->str, '\n') == NULL && strchr(line->str, '\r') == NULL);
	/* one word per path part and argument: nothing split into more */
	guint words = 1;
	for (const char *p = line->str; *p != '\0'; p++)
		words += *p == ' ';
	FUZZ_CHECK(words <= 2 + (args->len - 1) / 2);
	ControlRequest req;
	if (!control_parse(line->str, &req, &err)) {
		FUZZ_CHECK(g_error_matches(err, CONTROL_ERROR, CONTROL_ERROR_USAGE));
		return 0;
	}
	FUZZ_CHECK(!req.cmd->changes);
	gsize n = strlen(req.cmd->name);
	FUZZ_CHECK(strncmp(lines[0], req.cmd->name, n) == 0 &&
		   (lines[0][n] == '\0' || lines[0][n] == '/'));
	FUZZ_CHECK(req.cmd->id == CONTROL_CMD_OFFENDERS || req.cmd->id == CONTROL_CMD_HISTORY ||
		   req.cmd->id == CONTROL_CMD_HOST || req.cmd->id == CONTROL_CMD_EXPORTERS ||
		   req.cmd->id == CONTROL_CMD_STATS || req.cmd->id == CONTROL_CMD_SUPPRESSIONS);
	return 0;
}
