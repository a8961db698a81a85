/* JSON text output shared by everything that writes JSON with plain GString appends. */
#pragma once

#include <glib.h>

/* Append s as a JSON string literal (quotes included); control characters are escaped. */
void json_string(GString *out, const char *s);
