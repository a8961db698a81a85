/* JSON text output shared by everything that writes JSON with plain GString appends. */
#pragma once

#include <glib.h>

/* jansson (which libnftables links: the quarantine) exports a json_string() of its own, and
 * an executable's unversioned symbol wins over a library's versioned one: libnftables would
 * call ours and crash. The symbol is spamflow_json_string; callers keep the short name. */
#define json_string spamflow_json_string

/* Append s as a JSON string literal (quotes included); control characters are escaped. */
void json_string(GString *out, const char *s);
