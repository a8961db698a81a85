/* Builds spamflowd's SinkSet from the [sinks] section (and --alerts). The order is fixed,
 * json, csv, syslog, remote, so every run writes its sinks the same way and the summary
 * lists them the same way. */
#include "sinks.h"

#include "sink_csv.h"
#include "sink_json.h"
#include "sink_syslog.h"

SinkSet *
sinks_from_config(const Config *cfg, const char *alerts_override, GError **error)
{
	g_autoptr(SinkSet) set = sink_set_new();
	const char *json = alerts_override != NULL ? alerts_override : cfg->sink_json;
	Sink *s;
	int facility = 0;

	if (json != NULL && *json != '\0') {
		if ((s = sink_json_new(json, error)) == NULL)
			return NULL;
		sink_set_add(set, s);
	}
	if (cfg->sink_csv != NULL && *cfg->sink_csv != '\0') {
		if ((s = sink_csv_new(cfg->sink_csv, error)) == NULL)
			return NULL;
		sink_set_add(set, s);
	}
	if ((cfg->sink_syslog || (cfg->sink_remote != NULL && *cfg->sink_remote != '\0')) &&
	    !sink_syslog_facility_from_name(cfg->syslog_facility, &facility, error))
		return NULL;
	if (cfg->sink_syslog) {
		if ((s = sink_syslog_new(cfg->syslog_ident, facility, error)) == NULL)
			return NULL;
		sink_set_add(set, s);
	}
	if (cfg->sink_remote != NULL && *cfg->sink_remote != '\0') {
		if ((s = sink_syslog_remote_new(cfg->sink_remote, cfg->remote_queue, error)) ==
		    NULL)
			return NULL;
		sink_syslog_remote_set_origin(s, cfg->syslog_ident, facility);
		sink_set_add(set, s);
	}
	return g_steal_pointer(&set);
}
