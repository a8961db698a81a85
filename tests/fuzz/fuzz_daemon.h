/* Shared by the daemon-side harnesses (fuzz_control.c, fuzz_config.c): a strict JSON checker
 * for what the control socket sends back (RFC 8259, UTF-8 only), and a log writer that keeps
 * the daemon's messages and warnings out of the fuzzer's output but turns a critical (a
 * g_return_if_fail() that fired) into a crash. */
#pragma once

#include "fuzz.h"

#define FUZZ_JSON_MAX_DEPTH 64

static inline const char *fuzz_json_value(const char *p, const char *end, guint depth);

static inline const char *
fuzz_json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* RFC 8259 7: no raw control characters, only the listed escapes, \u with four hex digits.
 * The bytes were checked as UTF-8 before. */
static inline const char *
fuzz_json_string(const char *p, const char *end)
{
	if (p >= end || *p != '"')
		return NULL;
	for (p++; p < end; p++) {
		guchar c = (guchar)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (++p >= end)
			return NULL;
		if (*p == 'u') {
			for (int i = 0; i < 4; i++)
				if (++p >= end || !g_ascii_isxdigit(*p))
					return NULL;
		} else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
			return NULL;
		}
	}
	return NULL;
}

/* RFC 8259 6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static inline const char *
fuzz_json_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end || !g_ascii_isdigit(*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && g_ascii_isdigit(*p))
			p++;
	if (p < end && *p == '.') {
		if (++p >= end || !g_ascii_isdigit(*p))
			return NULL;
		while (p < end && g_ascii_isdigit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !g_ascii_isdigit(*p))
			return NULL;
		while (p < end && g_ascii_isdigit(*p))
			p++;
	}
	return p;
}

static inline const char *
fuzz_json_literal(const char *p, const char *end, const char *word)
{
	gsize n = strlen(word);
	return (gsize)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* The members of an object ('}') or the elements of an array (']'), p past the opener. */
static inline const char *
fuzz_json_items(const char *p, const char *end, guint depth, char close)
{
	p = fuzz_json_ws(p, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			p = fuzz_json_string(fuzz_json_ws(p, end), end);
			if (p == NULL)
				return NULL;
			p = fuzz_json_ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p++;
		}
		p = fuzz_json_value(p, end, depth + 1);
		if (p == NULL)
			return NULL;
		p = fuzz_json_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		return p < end && *p == close ? p + 1 : NULL;
	}
}

static inline const char *
fuzz_json_value(const char *p, const char *end, guint depth)
{
	if (depth > FUZZ_JSON_MAX_DEPTH)
		return NULL;
	p = fuzz_json_ws(p, end);
	if (p >= end)
		return NULL;
	switch (*p) {
	case '{':
		return fuzz_json_items(p + 1, end, depth, '}');
	case '[':
		return fuzz_json_items(p + 1, end, depth, ']');
	case '"':
		return fuzz_json_string(p, end);
	case 't':
		return fuzz_json_literal(p, end, "true");
	case 'f':
		return fuzz_json_literal(p, end, "false");
	case 'n':
		return fuzz_json_literal(p, end, "null");
	default:
		return fuzz_json_number(p, end);
	}
}

/* One JSON object and nothing else, in valid UTF-8. */
static inline gboolean
fuzz_json_is_object(const char *s, gsize len)
{
	const char *end = s + len;

	if (!g_utf8_validate(s, (gssize)len, NULL) || len == 0 || s[0] != '{')
		return FALSE;
	const char *p = fuzz_json_value(s, end, 0);
	return p != NULL && fuzz_json_ws(p, end) == end;
}

static inline GLogWriterOutput
fuzz_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer user_data)
{
	(void)fields;
	(void)n;
	(void)user_data;
	/* A critical or an error is a broken precondition: as much a bug as a crash. Set
	 * FUZZ_VERBOSE to see the messages when chasing one. */
	if (g_getenv("FUZZ_VERBOSE") != NULL)
		g_log_writer_default(level, fields, n, user_data);
	FUZZ_CHECK((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) == 0);
	return G_LOG_WRITER_HANDLED;
}

/* Once per process, before anything logs. */
static inline void
fuzz_quiet_logs(void)
{
	static gboolean done;

	if (!done) {
		g_log_set_writer_func(fuzz_log_writer, NULL, NULL);
		done = TRUE;
	}
}
