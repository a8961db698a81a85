/* JSON text output: string literals for the hand-written JSON of the alert formats, the
 * reports and the control protocol's replies. */
#include "json.h"

guint
json_nesting(const char *s, gsize len, guint max)
{
	guint depth = 0, deepest = 0;
	gboolean in_string = FALSE;

	for (gsize i = 0; i < len && deepest <= max; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = FALSE;
		} else if (s[i] == '"') {
			in_string = TRUE;
		} else if (s[i] == '{' || s[i] == '[') {
			depth++;
			deepest = MAX(deepest, depth);
		} else if ((s[i] == '}' || s[i] == ']') && depth > 0) {
			depth--;
		}
	}
	return deepest;
}

void
json_quote(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		case '\r':
			g_string_append(out, "\\r");
			break;
		case '\t':
			g_string_append(out, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				g_string_append_printf(out, "\\u%04x", *p);
			else
				g_string_append_c(out, (char)*p);
		}
	}
	g_string_append_c(out, '"');
}
