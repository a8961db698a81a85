/* JSON text output shared by everything that writes JSON with plain GString appends. */
#pragma once

#include <glib.h>

/* Append s as a JSON string literal (quotes included); control characters are escaped.
 * (Not named json_string(): jansson, which libnftables links for the quarantine, exports
 * one, and an executable's unversioned symbol wins over a library's versioned one, so
 * libnftables would call ours and crash.) */
void json_quote(GString *out, const char *s);
/* Nesting depth of a JSON text (brackets outside strings), counting stops at max + 1. Check
 * it before json-glib parses untrusted text: its parser recurses once per level, and a
 * megabyte of '[' overflows the stack (json-glib 1.6.6). */
guint json_nesting(const char *s, gsize len, guint max);
