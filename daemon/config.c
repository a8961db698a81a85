/* Loads spamflowd's INI configuration into a Config value. One table lists every key: its
 * section, type, range, the Config field it fills and a line of help; loading, validation,
 * unknown-key detection and config_to_string() all walk that table, so a new section
 * ([analyzer], [sinks], ...) is new rows, not new code. */
#include "config.h"

#include "listener.h"

#include <stddef.h>
#include <string.h>

/* clang-format off */
G_DEFINE_QUARK(config-error-quark, config_error)
/* clang-format on */

typedef enum {
	KEY_UINT,      /* guint */
	KEY_SIZE,      /* guint64 bytes, optional K/M/G suffix (binary) */
	KEY_ADDR_LIST, /* char ** of listen addresses */
	KEY_CHOICE,    /* guint index into choices */
} KeyType;

typedef struct {
	const char *group;
	const char *key;
	KeyType type;
	gsize offset; /* into Config */
	guint64 min, max;
	const char *const *choices;
	const char *help;
} ConfigKey;

static const char *const log_levels[] = {"error", "critical", "warning", "message",
					 "info",  "debug",    NULL};

#define COLLECTOR(f) (offsetof(Config, collector) + offsetof(CollectorConfig, f))

static const ConfigKey config_keys[] = {
    {"collector", "listen", KEY_ADDR_LIST, offsetof(Config, listen), 0, 0, NULL,
     "UDP addresses to receive NetFlow/IPFIX on, ';'-separated, 'a.b.c.d:port' or "
     "'[v6]:port'"},
    {"collector", "rcvbuf", KEY_SIZE, offsetof(Config, rcvbuf), 4096, G_MAXINT / 2, NULL,
     "socket receive buffer in bytes (K, M, G suffixes); above net.core.rmem_max needs "
     "CAP_NET_ADMIN"},
    {"collector", "max_exporters", KEY_UINT, COLLECTOR(max_exporters), 1, 1000000, NULL,
     "exporters tracked at once; more are refused and counted"},
    {"collector", "max_domains", KEY_UINT, COLLECTOR(max_domains), 1, 100000, NULL,
     "observation domains per exporter"},
    {"collector", "max_templates", KEY_UINT, COLLECTOR(max_templates), 1, 1000000, NULL,
     "templates per exporter, all domains"},
    {"collector", "template_timeout", KEY_UINT, COLLECTOR(template_timeout_s), 1, 31536000, NULL,
     "seconds: templates not refreshed for this long expire"},
    {"collector", "exporter_timeout", KEY_UINT, COLLECTOR(exporter_timeout_s), 1, 31536000, NULL,
     "seconds: silent exporters are forgotten"},
    {"daemon", "log_level", KEY_CHOICE, offsetof(Config, log_level), 0, 0, log_levels,
     "error, critical, warning, message, info or debug"},
    {"daemon", "stats_interval", KEY_UINT, offsetof(Config, stats_interval_s), 0, 86400, NULL,
     "seconds between counter lines in the log; 0 = off"},
};

Config *
config_new(void)
{
	static const char *const listen[] = {LISTENER_DEFAULT_ADDRS, NULL};
	Config *cfg = g_new0(Config, 1);

	cfg->listen = g_strdupv((char **)listen);
	cfg->rcvbuf = LISTENER_DEFAULT_RCVBUF;
	collector_config_defaults(&cfg->collector);
	cfg->log_level = CONFIG_LOG_MESSAGE;
	cfg->stats_interval_s = 60;
	return cfg;
}

void
config_free(Config *cfg)
{
	if (cfg == NULL)
		return;
	g_strfreev(cfg->listen);
	g_free(cfg);
}

static const ConfigKey *
find_key(const char *group, const char *key)
{
	for (gsize i = 0; i < G_N_ELEMENTS(config_keys); i++)
		if (strcmp(config_keys[i].group, group) == 0 &&
		    (key == NULL || strcmp(config_keys[i].key, key) == 0))
			return &config_keys[i];
	return NULL;
}

/* GKeyFile keeps no line numbers: find the line of "[group]" (key NULL) or of "key =" in
 * that group by scanning the text. 0 when not found. */
static guint
find_line(const char *text, const char *group, const char *key)
{
	g_auto(GStrv) lines = g_strsplit(text != NULL ? text : "", "\n", -1);
	gboolean in_group = FALSE;

	for (guint i = 0; lines[i] != NULL; i++) {
		char *l = g_strstrip(lines[i]);
		if (l[0] == '[') {
			char *end = strchr(l, ']');
			in_group = end != NULL && (gsize)(end - l - 1) == strlen(group) &&
				   strncmp(l + 1, group, (gsize)(end - l - 1)) == 0;
			if (in_group && key == NULL)
				return i + 1;
			continue;
		}
		if (!in_group || key == NULL || l[0] == '#')
			continue;
		char *eq = strchr(l, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		if (strcmp(g_strchomp(l), key) == 0)
			return i + 1;
	}
	return 0;
}

/* "name:line: " or "name: " */
static char *
where(const char *name, const char *text, const char *group, const char *key)
{
	guint line = find_line(text, group, key);
	if (line == 0)
		return g_strdup_printf("%s: ", name);
	return g_strdup_printf("%s:%u: ", name, line);
}

static gboolean
parse_uint(const char *v, const ConfigKey *k, guint64 *out, char **why)
{
	guint64 n, mult = 1;
	g_autofree char *num = g_strdup(v);
	gsize len = strlen(num);

	if (k->type == KEY_SIZE && len > 0) {
		switch (g_ascii_toupper(num[len - 1])) {
		case 'K':
			mult = 1024;
			break;
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		}
		if (mult != 1)
			num[len - 1] = '\0';
	}
	/* g_ascii_string_to_unsigned() refuses signs, spaces, empty text and overflow. */
	if (!g_ascii_string_to_unsigned(num, 10, 0, G_MAXUINT64, &n, NULL)) {
		*why = g_strdup_printf("'%s' is not a number", v);
		return FALSE;
	}
	if (n > G_MAXUINT64 / mult || n * mult < k->min || n * mult > k->max) {
		*why = g_strdup_printf("'%s' is out of range %" G_GUINT64_FORMAT
				       "..%" G_GUINT64_FORMAT,
				       v, k->min, k->max);
		return FALSE;
	}
	*out = n * mult;
	return TRUE;
}

/* Read one key from kf into cfg. On failure *why says what is wrong with the value. */
static gboolean
load_key(GKeyFile *kf, const ConfigKey *k, Config *cfg, char **why)
{
	guint8 *field = (guint8 *)cfg + k->offset;
	g_autoptr(GError) err = NULL;

	if (k->type == KEY_ADDR_LIST) {
		gsize n = 0;
		g_auto(GStrv) list = g_key_file_get_string_list(kf, k->group, k->key, &n, &err);
		if (list == NULL) {
			*why = g_strdup(err->message);
			return FALSE;
		}
		g_autoptr(GPtrArray) v = g_ptr_array_new_with_free_func(g_free);
		for (gsize i = 0; i < n; i++) {
			struct sockaddr_storage ss;
			socklen_t sslen;
			char *a = g_strstrip(list[i]);
			if (*a == '\0')
				continue;
			if (!listener_parse_address(a, &ss, &sslen, &err)) {
				*why = g_strdup(err->message);
				return FALSE;
			}
			g_ptr_array_add(v, g_strdup(a));
		}
		if (v->len == 0) {
			*why = g_strdup("needs at least one address");
			return FALSE;
		}
		g_ptr_array_add(v, NULL);
		g_strfreev(*(char ***)field);
		*(char ***)field = (char **)g_ptr_array_free(g_steal_pointer(&v), FALSE);
		return TRUE;
	}

	g_autofree char *raw = g_key_file_get_string(kf, k->group, k->key, &err);
	if (raw == NULL) {
		*why = g_strdup(err->message);
		return FALSE;
	}
	const char *v = g_strstrip(raw);
	guint64 n;
	switch (k->type) {
	case KEY_UINT:
		if (!parse_uint(v, k, &n, why))
			return FALSE;
		*(guint *)field = (guint)n;
		return TRUE;
	case KEY_SIZE:
		if (!parse_uint(v, k, &n, why))
			return FALSE;
		*(guint64 *)field = n;
		return TRUE;
	case KEY_CHOICE: {
		for (guint i = 0; k->choices[i] != NULL; i++) {
			if (g_ascii_strcasecmp(v, k->choices[i]) == 0) {
				*(guint *)field = i;
				return TRUE;
			}
		}
		g_autofree char *all = g_strjoinv(", ", (char **)k->choices);
		*why = g_strdup_printf("'%s' is not one of %s", v, all);
		return FALSE;
	}
	case KEY_ADDR_LIST:
		break;
	}
	g_assert_not_reached();
}

/* Every section and key in the text is in the table, and no key is set twice. The text
 * already parsed as a GKeyFile, so each line is blank, a comment, "[group]" or "key=value". */
static gboolean
check_keys(const char *name, const char *text, GError **error)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autofree char *group = NULL;

	for (guint i = 0; lines[i] != NULL; i++) {
		char *l = g_strstrip(lines[i]);
		char *end;

		if (l[0] == '\0' || l[0] == '#')
			continue;
		if (l[0] == '[' && (end = strrchr(l, ']')) != NULL) {
			g_free(group);
			group = g_strndup(l + 1, (gsize)(end - l - 1));
			if (find_key(group, NULL) == NULL) {
				g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_UNKNOWN,
					    "%s:%u: unknown section [%s]", name, i + 1, group);
				return FALSE;
			}
			continue;
		}
		end = strchr(l, '=');
		if (end == NULL || group == NULL)
			continue;
		*end = '\0';
		g_strchomp(l);
		if (find_key(group, l) == NULL) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_UNKNOWN,
				    "%s:%u: [%s] unknown key '%s'", name, i + 1, group, l);
			return FALSE;
		}
		char *id = g_strconcat(group, "\n", l, NULL);
		guint first = GPOINTER_TO_UINT(g_hash_table_lookup(seen, id));
		if (first != 0) {
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_DUPLICATE,
				    "%s:%u: [%s] %s: set twice (first on line %u)", name, i + 1,
				    group, l, first);
			g_free(id);
			return FALSE;
		}
		g_hash_table_insert(seen, id, GUINT_TO_POINTER(i + 1));
	}
	return TRUE;
}

Config *
config_new_from_data(const char *data, gssize len, const char *name, GError **error)
{
	g_autoptr(Config) cfg = config_new();
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) err = NULL;
	g_autofree char *text = len < 0 ? g_strdup(data) : g_strndup(data, (gsize)len);

	if (!g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &err)) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX, "%s: %s", name, err->message);
		return NULL;
	}

	/* Refuse what the table does not know before reading anything. GKeyFile cannot do
	 * this: it lists a repeated key several times and localized keys ("key[de]") not at
	 * all, so the text itself is checked. */
	if (!check_keys(name, text, error))
		return NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(config_keys); i++) {
		const ConfigKey *k = &config_keys[i];
		g_autofree char *why = NULL;

		if (!g_key_file_has_key(kf, k->group, k->key, NULL))
			continue;
		if (!load_key(kf, k, cfg, &why)) {
			g_autofree char *at = where(name, text, k->group, k->key);
			g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_VALUE, "%s[%s] %s: %s", at,
				    k->group, k->key, why);
			return NULL;
		}
	}
	return g_steal_pointer(&cfg);
}

Config *
config_new_from_file(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	gsize len = 0;
	g_autoptr(GError) err = NULL;

	if (!g_file_get_contents(path, &text, &len, &err)) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_FILE, "%s", err->message);
		return NULL;
	}
	if (memchr(text, '\0', len) != NULL) {
		g_set_error(error, CONFIG_ERROR, CONFIG_ERROR_SYNTAX,
			    "%s: contains a NUL byte: not a text file", path);
		return NULL;
	}
	return config_new_from_data(text, (gssize)len, path, error);
}

char *
config_to_string(const Config *cfg)
{
	GString *s = g_string_new(NULL);
	const char *group = NULL;

	for (gsize i = 0; i < G_N_ELEMENTS(config_keys); i++) {
		const ConfigKey *k = &config_keys[i];
		const guint8 *field = (const guint8 *)cfg + k->offset;

		if (g_strcmp0(group, k->group) != 0) {
			g_string_append_printf(s, "%s[%s]\n", group != NULL ? "\n" : "", k->group);
			group = k->group;
		}
		g_string_append_printf(s, "# %s\n%s = ", k->help, k->key);
		switch (k->type) {
		case KEY_UINT:
			g_string_append_printf(s, "%u\n", *(const guint *)field);
			break;
		case KEY_SIZE:
			g_string_append_printf(s, "%" G_GUINT64_FORMAT "\n",
					       *(const guint64 *)field);
			break;
		case KEY_ADDR_LIST: {
			char *const *v = *(char **const *)field;
			for (guint j = 0; v != NULL && v[j] != NULL; j++)
				g_string_append_printf(s, "%s%s", j > 0 ? ";" : "", v[j]);
			g_string_append_c(s, '\n');
			break;
		}
		case KEY_CHOICE:
			g_string_append_printf(s, "%s\n", k->choices[*(const guint *)field]);
			break;
		}
	}
	return g_string_free(s, FALSE);
}

const char *
config_log_level_name(guint level)
{
	return level < G_N_ELEMENTS(log_levels) - 1 ? log_levels[level] : "unknown";
}

GLogLevelFlags
config_log_mask(const Config *cfg)
{
	static const GLogLevelFlags levels[] = {G_LOG_LEVEL_ERROR,   G_LOG_LEVEL_CRITICAL,
						G_LOG_LEVEL_WARNING, G_LOG_LEVEL_MESSAGE,
						G_LOG_LEVEL_INFO,    G_LOG_LEVEL_DEBUG};
	GLogLevelFlags mask = G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION;

	for (guint i = 0; i <= cfg->log_level && i < G_N_ELEMENTS(levels); i++)
		mask |= levels[i];
	return mask;
}
