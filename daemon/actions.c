/* Builds the daemon's actions (actions.h) from [actions] and [quarantine]. */
#include "actions.h"

#include <string.h>

#include "action_exec.h"
#include "action_webhook.h"
#include "quarantine.h"

/* The items of a comma-separated list, blanks trimmed, empty ones skipped. */
static GPtrArray *
list_items(const char *v)
{
	g_auto(GStrv) items = g_strsplit(v != NULL ? v : "", ",", -1);
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

	for (guint i = 0; items[i] != NULL; i++) {
		const char *it = g_strstrip(items[i]);
		if (*it != '\0')
			g_ptr_array_add(out, g_strdup(it));
	}
	return out;
}

/* webhook_header_file's one line (trailing newline and blanks dropped), else
 * webhook_header; NULL on error. */
static char *
webhook_header(const Config *cfg, GError **error)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) err = NULL;

	if (cfg->webhook_header_file[0] == '\0')
		return g_strdup(cfg->webhook_header);
	if (!g_file_get_contents(cfg->webhook_header_file, &text, NULL, &err)) {
		g_set_error(error, ACTION_ERROR, 0, "[actions] webhook_header_file: %s",
			    err->message);
		return NULL;
	}
	g_strchomp(text);
	if (strchr(text, '\n') != NULL || strchr(text, '\r') != NULL) {
		g_set_error(error, ACTION_ERROR, 0,
			    "[actions] webhook_header_file %s: must hold one header line",
			    cfg->webhook_header_file);
		return NULL;
	}
	return g_steal_pointer(&text);
}

static gboolean
add_exec(SinkSet *set, const Config *cfg, const ActionFilterSpec *filter, GError **error)
{
	g_autoptr(GPtrArray) paths = list_items(cfg->action_exec);

	for (guint i = 0; i < paths->len; i++) {
		ActionExecConfig c = {.path = g_ptr_array_index(paths, i),
				      .timeout_s = cfg->exec_timeout_s,
				      .max_running = cfg->exec_max_running,
				      .queue = cfg->exec_queue,
				      .host_limit = cfg->exec_host_limit,
				      .output_lines = cfg->exec_output_lines,
				      .filter = *filter};
		Sink *s = action_exec_new(&c, error);
		if (s == NULL) {
			g_prefix_error(error, "[actions] ");
			return FALSE;
		}
		sink_set_add(set, s);
	}
	return TRUE;
}

static gboolean
add_webhooks(SinkSet *set, const Config *cfg, const ActionFilterSpec *filter, GError **error)
{
	g_autoptr(GPtrArray) urls = list_items(cfg->action_webhook);

	if (urls->len == 0)
		return TRUE;
	g_autofree char *header = webhook_header(cfg, error);
	if (header == NULL)
		return FALSE;
	for (guint i = 0; i < urls->len; i++) {
		ActionWebhookConfig c = {.url = g_ptr_array_index(urls, i),
					 .header = header,
					 .ca_file = cfg->webhook_ca,
					 .format = cfg->webhook_format == 1 ? WEBHOOK_FORMAT_CHAT
									    : WEBHOOK_FORMAT_JSON,
					 .queue = cfg->webhook_queue,
					 .timeout_s = cfg->webhook_timeout_s,
					 .max_attempts = cfg->webhook_attempts,
					 .backoff_ms = cfg->webhook_backoff_s * 1000,
					 .filter = *filter};
		Sink *s = action_webhook_new(&c, error);
		if (s == NULL) {
			g_prefix_error(error, "[actions] ");
			return FALSE;
		}
		sink_set_add(set, s);
	}
	return TRUE;
}

static gboolean
add_quarantine(Actions *a, const Config *cfg, ActionLog *log, gboolean dry, GError **error)
{
	g_autofree char *family = NULL, *table = NULL, *setname = NULL, *why = NULL;
	ActionFilterSpec filter;

	if (cfg->quarantine_set[0] == '\0')
		return TRUE;
	if (!config_parse_nft_set(cfg->quarantine_set, &family, &table, &setname, &why)) {
		g_set_error(error, ACTION_ERROR, 0, "[quarantine] set: %s", why);
		return FALSE;
	}
	if (!action_filter_spec_parse(&filter, "", cfg->quarantine_reasons,
				      cfg->quarantine_min_severity, error))
		return FALSE;
	QuarantineConfig c = {.family = family,
			      .table = table,
			      .set = setname,
			      .timeout_s = cfg->quarantine_timeout_s,
			      .delete_on_clear = cfg->quarantine_on_clear == 0,
			      .internal_networks = cfg->internal_nets,
			      .mail_servers = cfg->mail_servers,
			      .never = cfg->quarantine_never,
			      .max_hosts = cfg->quarantine_max_hosts,
			      .queue = cfg->quarantine_queue,
			      .dry_run = cfg->quarantine_dry_run || dry,
			      .filter = filter,
			      .log = log};
	Sink *s = quarantine_new(&c, error);
	if (s == NULL)
		return FALSE;
	sink_set_add(a->set, s);
	a->quarantine = s;
	return TRUE;
}

gboolean
actions_from_config(Actions *out, const Config *cfg, ActionLog *log, gboolean dry_quarantine,
		    GError **error)
{
	Actions a = {.set = sink_set_new()};
	ActionFilterSpec filter;

	if (!action_filter_spec_parse(&filter, cfg->action_events, cfg->action_reasons,
				      cfg->action_min_severity, error) ||
	    !add_exec(a.set, cfg, &filter, error) || !add_webhooks(a.set, cfg, &filter, error) ||
	    !add_quarantine(&a, cfg, log, dry_quarantine, error)) {
		actions_clear(&a);
		return FALSE;
	}
	*out = a;
	return TRUE;
}

void
actions_clear(Actions *a)
{
	g_clear_pointer(&a->set, sink_set_free);
	a->quarantine = NULL;
}
