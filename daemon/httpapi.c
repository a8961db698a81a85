/* The daemon's HTTP routes (httpapi.h): /metrics renders metrics.c over the counters the
 * App hands over; /api/COMMAND maps the path and query onto a control request line, which
 * control_parse() checks exactly as it checks spamflowctl's, and commands_run() renders:
 * the same code, the same JSON. Only read-only commands are reachable. The page's files
 * are compiled in (web/, a GResource) and, like the evidence files, served on the server's
 * thread: they read nothing of the daemon's state. */
#include "httpapi.h"

#include "control.h"
#include "spamflow-config.h"
#include "webres.h"

#include "alert.h"
#include "json.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The page's: its own scripts and styles only, no inline script or style, JSON from here. */
#define CSP_PAGE                                                                                   \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; frame-ancestors 'none'"
#define WEB_PREFIX "/spamflow/web/"
/* the pages themselves are asked again each time (they are small); scripts and styles are
 * kept a while: a daemon upgrade shows within ten minutes */
#define CACHE_PAGE "no-cache"
#define CACHE_ASSET "public, max-age=600"

/* The read-only commands, by the path under /api/ */
static const ControlCmdId api_commands[] = {
    CONTROL_CMD_OFFENDERS, CONTROL_CMD_HISTORY, CONTROL_CMD_HOST,
    CONTROL_CMD_EXPORTERS, CONTROL_CMD_STATS,	CONTROL_CMD_SUPPRESSIONS,
};

#define VALUE_MAX 64

/* a plain word: what the UINT and REASON arguments take, and nothing that could split */
static gboolean
plain_word(const char *v, gboolean addr)
{
	gsize n = strlen(v);

	if (n == 0 || n > VALUE_MAX)
		return FALSE;
	for (gsize i = 0; i < n; i++) {
		char c = v[i];
		if (addr ? !(g_ascii_isxdigit(c) || c == '.' || c == ':')
			 : !(g_ascii_isalnum(c) || c == '-'))
			return FALSE;
	}
	return TRUE;
}

/* a time, a duration or an address: one token, no blank, no '=' */
static gboolean
plain_value(const char *v)
{
	gsize n = strlen(v);

	if (n == 0 || n > VALUE_MAX)
		return FALSE;
	for (gsize i = 0; i < n; i++)
		if (!(g_ascii_isalnum(v[i]) || strchr("-:.+_", v[i]) != NULL))
			return FALSE;
	return TRUE;
}

gboolean
httpapi_control_line(const char *path, const char *const *args, GString *line, guint *status,
		     GError **error)
{
	const char *slash = strchr(path, '/');
	g_autofree char *name =
	    slash != NULL ? g_strndup(path, (gsize)(slash - path)) : g_strdup(path);
	const ControlCommand *cmd = control_command_find(name);
	gboolean served = FALSE;

	*status = 404;
	for (guint i = 0; cmd != NULL && i < G_N_ELEMENTS(api_commands); i++)
		served |= cmd->id == api_commands[i];
	if (!served || cmd->changes) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
			    "no such API: /api/%.64s (offenders, history, host/ADDR, exporters, "
			    "stats, suppressions)",
			    path);
		return FALSE;
	}
	gboolean wants_addr = FALSE;
	for (guint i = 0; i < cmd->n_args; i++)
		wants_addr |= cmd->args[i].type == CONTROL_ARG_ADDR;
	g_string_truncate(line, 0);
	g_string_append(line, cmd->name);
	if (wants_addr) {
		if (slash == NULL || !plain_word(slash + 1, TRUE)) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "/api/%s/ADDR: an IPv4 or IPv6 address is needed", cmd->name);
			return FALSE;
		}
		g_string_append_printf(line, " %s", slash + 1);
	} else if (slash != NULL) {
		g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE, "no such API: /api/%.64s",
			    path);
		return FALSE;
	}
	*status = 400;
	for (guint i = 0; args != NULL && args[i] != NULL && args[i + 1] != NULL; i += 2) {
		const ControlArg *a = NULL;
		for (guint k = 0; k < cmd->n_args; k++)
			if (strcmp(cmd->args[k].name, args[i]) == 0)
				a = &cmd->args[k];
		/* TEXT takes the rest of the line: none of the read-only commands has one */
		if (a == NULL || a->type == CONTROL_ARG_TEXT || a->type == CONTROL_ARG_ADDR) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE,
				    "%s: unknown argument '%.64s'", cmd->name, args[i]);
			return FALSE;
		}
		/* numbers and reasons are words; times ("24h", "2026-12-06T10:00:00+01:00")
		 * and addresses take ':', '.' and '+' too. Never a blank or '=': nothing can
		 * split the line, and control_parse() then checks the value as it checks
		 * spamflowctl's. */
		gboolean word = a->type == CONTROL_ARG_UINT || a->type == CONTROL_ARG_REASON;
		if (!(word ? plain_word(args[i + 1], FALSE) : plain_value(args[i + 1]))) {
			g_set_error(error, CONTROL_ERROR, CONTROL_ERROR_USAGE, "%s: %s: %s",
				    cmd->name, args[i],
				    word ? "a number or a reason name is needed"
					 : "a time, a duration or an address is needed");
			return FALSE;
		}
		g_string_append_printf(line, " %s=%s", args[i], args[i + 1]);
	}
	return TRUE;
}

static void
json_error(HttpReply *reply, guint status, const char *command, const char *message)
{
	reply->status = status;
	reply->content_type = "application/json";
	reply->no_store = TRUE;
	control_reply_error(reply->body, command, message);
}

/* The owner's answer to a routed host (cluster_node_request()), for the deferred reply. */
static void
host_routed(gpointer tag, const char *text, gsize len, const char *error)
{
	g_autoptr(GString) body = g_string_new(NULL);
	guint status;

	if (text != NULL) {
		g_string_append_len(body, text, (gssize)len);
		/* the owner's reply as over the socket: ok true, or a failure (nothing held
		 * about the host: 404, as this node says for its own) */
		status = g_str_has_prefix(body->str, "{\"ok\":true") ? 200 : 404;
	} else {
		g_autofree char *msg = g_strdup_printf(
		    "the node that owns the host did not answer: %s", error ? error : "no reply");
		control_reply_error(body, "host", msg);
		status = 504;
	}
	if (body->len == 0 || body->str[body->len - 1] != '\n')
		g_string_append_c(body, '\n');
	http_deferred_reply(tag, status, body->str, body->len);
}

/* A cluster node's host for a host another node owns: asked there, the reply deferred
 * (the connection waits aside). FALSE: answered here as usual. */
static gboolean
serve_routed_host(HttpApi *api, const ControlRequest *creq, HttpReply *reply)
{
	ClusterNode *cn = api->commands->cluster;
	char owner[64];

	if (cn == NULL || creq->cmd->id != CONTROL_CMD_HOST ||
	    cluster_node_analyzer_for(cn, creq->addr, owner) != NULL || owner[0] == '\0')
		return FALSE;
	HttpDeferred *d = http_reply_defer(reply);
	if (d == NULL)
		return FALSE;
	g_autoptr(GString) line = g_string_new(NULL);
	commands_host_line(creq, line);
	cluster_node_request(cn, owner, line->str, host_routed, d);
	return TRUE;
}

static void
serve_api(const HttpRequest *req, HttpReply *reply, gpointer data)
{
	HttpApi *api = data;
	g_autoptr(GString) line = g_string_new(NULL);
	g_autoptr(GError) err = NULL;
	ControlRequest creq;
	guint status;
	/* no uid: read-only (and changing commands are not reachable anyway) */
	const ControlPeer peer = {.uid = (uid_t)-1, .gid = (gid_t)-1, .pid = 0};

	if (!httpapi_control_line(req->path + strlen("/api/"), req->args, line, &status, &err) ||
	    !control_parse(line->str, &creq, &err)) {
		json_error(reply, err != NULL && status == 404 ? 404 : 400, NULL,
			   err != NULL ? err->message : "bad request");
		return;
	}
	creq.max_reply = api->max_reply;
	reply->content_type = "application/json";
	reply->no_store = TRUE;
	if (serve_routed_host(api, &creq, reply))
		return;
	if (!commands_run(*api->control, &creq, &peer, reply->body, (gpointer)api->commands,
			  &err)) {
		g_string_truncate(reply->body, 0);
		/* host: nothing is held about it */
		json_error(reply, creq.cmd->id == CONTROL_CMD_HOST ? 404 : 500, creq.cmd->name,
			   err != NULL ? err->message : "failed");
	}
}

static void
serve_metrics(const HttpRequest *req, HttpReply *reply, gpointer data)
{
	HttpApi *api = data;
	MetricsSource src;

	(void)req;
	api->metrics_source(api->data, &src);
	reply->content_type = METRICS_CONTENT_TYPE;
	reply->no_store = TRUE;
	metrics_render(reply->body, &src);
}

/* ---- the page (files compiled in) ---- */

static gboolean
web_file(const char *name, HttpReply *reply)
{
	g_autofree char *path = g_strconcat(WEB_PREFIX, name, NULL);
	g_autoptr(GBytes) b =
	    g_resource_lookup_data(webres_get_resource(), path, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".html", "text/html; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".svg", "image/svg+xml"},
	};

	if (b == NULL)
		return FALSE;
	/* resources are not compressed: the data is in the binary, for as long as it runs */
	reply->static_data = g_bytes_get_data(b, &reply->static_len);
	reply->content_type = "application/octet-stream";
	for (guint i = 0; i < G_N_ELEMENTS(types); i++)
		if (g_str_has_suffix(name, types[i].ext))
			reply->content_type = types[i].type;
	reply->csp = g_str_has_suffix(name, ".html") ? CSP_PAGE : NULL;
	reply->cache = g_str_has_suffix(name, ".html") ? CACHE_PAGE : CACHE_ASSET;
	return TRUE;
}

static void
not_found(HttpReply *reply, const char *what)
{
	reply->status = 404;
	reply->no_store = TRUE;
	g_string_assign(reply->body, what);
	g_string_append_c(reply->body, '\n');
}

/* "app.js": a file name of web/ (the resource is a table, no file system is read) */
static gboolean
static_name_ok(const char *n)
{
	gsize len = strlen(n);

	if (len == 0 || len > VALUE_MAX || n[0] == '.')
		return FALSE;
	for (gsize i = 0; i < len; i++)
		if (!(g_ascii_isalnum(n[i]) || n[i] == '-' || n[i] == '.' || n[i] == '_'))
			return FALSE;
	return TRUE;
}

/* "/" the offenders, "/host/ADDR" a host, "/static/NAME" their scripts and styles */
static void
serve_web(const HttpRequest *req, HttpReply *reply, gpointer data)
{
	const char *p = req->path;
	const char *name = NULL;

	(void)data;
	if (strcmp(p, "/") == 0 || strcmp(p, "/index.html") == 0)
		name = "index.html";
	else if (g_str_has_prefix(p, "/host/") && plain_word(p + strlen("/host/"), TRUE))
		name = "host.html";
	else if (g_str_has_prefix(p, "/static/") && static_name_ok(p + strlen("/static/")))
		name = p + strlen("/static/");
	if (name == NULL || !web_file(name, reply))
		not_found(reply, "not found");
}

static void
serve_favicon(const HttpRequest *req, HttpReply *reply, gpointer data)
{
	(void)req;
	(void)data;
	if (!web_file("favicon.svg", reply))
		not_found(reply, "not found");
}

/* ---- evidence files ---- */

gboolean
httpapi_evidence_name_ok(const char *n)
{
	static const char shape[] = "########T######.###Z-";
	gsize len = strlen(n), pre = sizeof shape - 1, suf = strlen(".ipfix");

	if (len <= pre + suf || len > 120 || !g_str_has_suffix(n, ".ipfix") ||
	    strstr(n, "..") != NULL)
		return FALSE;
	for (gsize i = 0; i < pre; i++)
		if (shape[i] == '#' ? !g_ascii_isdigit(n[i]) : n[i] != shape[i])
			return FALSE;
	/* <reason>-<host>[-N]: lower-case reason, IPv4 dots, IPv6 hex with '_' for ':' */
	for (gsize i = pre; i < len - suf; i++) {
		char c = n[i];
		if (!(g_ascii_isdigit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '.' ||
		      c == '_'))
			return FALSE;
	}
	return TRUE;
}

static void
serve_evidence(const HttpRequest *req, HttpReply *reply, gpointer data)
{
	HttpApi *api = data;
	const char *name = req->path + strlen("/evidence/");
	struct stat st;

	if (api->evidence_fd < 0 || !httpapi_evidence_name_ok(name)) {
		not_found(reply, "no such evidence file");
		return;
	}
	/* by name in the directory opened at start: no path is built, no link followed */
	int fd = openat(api->evidence_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		not_found(reply, "no such evidence file (pruned, or never written)");
		return;
	}
	reply->fd = fd;
	reply->fd_size = (guint64)st.st_size;
	/* RFC 5655 8.1: an IPFIX file */
	reply->content_type = "application/ipfix";
	reply->no_store = TRUE;
	g_snprintf(reply->disposition, sizeof reply->disposition, "attachment; filename=\"%s\"",
		   name);
}

typedef struct {
	char *name;
	guint64 bytes;
	gint64 mtime_ms;
} EvidenceFile;

static void
evidence_file_clear(gpointer p)
{
	g_free(((EvidenceFile *)p)->name);
}

static gint
evidence_file_newest_first(gconstpointer a, gconstpointer b)
{
	/* the name starts with the event's time: later sorts higher */
	return -strcmp(((const EvidenceFile *)a)->name, ((const EvidenceFile *)b)->name);
}

/* "20260115T100225.001Z-smtp-fanout-192.0.2.1-2.ipfix" is host's ("192.0.2.1", as the
 * name writes it: an IPv6 address's ':' as '_'); *reason gets the reason */
static gboolean
evidence_name_host(const char *name, const char *host_part, AlertReason *reason)
{
	const gsize pre = strlen("20260115T100225.001Z-");
	g_autofree char *stem = g_strndup(name, strlen(name) - strlen(".ipfix"));
	char *dash = strrchr(stem, '-');

	/* "-2", "-3": the name was taken (a host part is never digits alone) */
	if (dash != NULL && dash[1] != '\0' && strspn(dash + 1, "0123456789") == strlen(dash + 1))
		*dash = '\0';
	gsize n = strlen(stem), h = strlen(host_part);
	if (n < pre + h + 2 || stem[n - h - 1] != '-' || strcmp(stem + n - h, host_part) != 0)
		return FALSE;
	stem[n - h - 1] = '\0';
	return alert_reason_from_name(stem + pre, reason);
}

/* /api/evidence?host=ADDR: the host's evidence files, newest first (at most 100), read
 * from the directory on this thread */
static void
serve_evidence_list(const HttpRequest *req, HttpReply *reply, gpointer data)
{
	HttpApi *api = data;
	const char *host = NULL;
	guint8 a[16];
	char canon[INET6_ADDRSTRLEN];
	const guint max_files = 100;

	reply->content_type = "application/json";
	reply->no_store = TRUE;
	for (guint i = 0; req->args != NULL && req->args[i] != NULL && req->args[i + 1] != NULL;
	     i += 2)
		if (strcmp(req->args[i], "host") == 0 && host == NULL)
			host = req->args[i + 1];
		else
			host = "";
	int family = host != NULL && strchr(host, ':') != NULL ? AF_INET6 : AF_INET;
	if (host == NULL || !plain_word(host, TRUE) || inet_pton(family, host, a) != 1 ||
	    inet_ntop(family, a, canon, sizeof canon) == NULL) {
		json_error(reply, 400, "evidence", "/api/evidence?host=ADDR: an address is needed");
		return;
	}
	g_string_append(reply->body,
			"{\"ok\":true,\"version\":1,\"command\":\"evidence\",\"host\":");
	json_quote(reply->body, canon);
	g_string_append_printf(reply->body, ",\"enabled\":%s,\"files\":[",
			       api->evidence_fd >= 0 ? "true" : "false");
	g_autoptr(GArray) files = g_array_new(FALSE, FALSE, sizeof(EvidenceFile));
	g_array_set_clear_func(files, evidence_file_clear);
	g_strdelimit(canon, ":", '_');
	int dfd = api->evidence_fd >= 0 ? dup(api->evidence_fd) : -1;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (d == NULL && dfd >= 0)
		close(dfd);
	if (d != NULL) {
		struct dirent *de;
		rewinddir(d); /* the dup shares the offset of the directory opened at start */
		while ((de = readdir(d)) != NULL) {
			AlertReason r;
			struct stat st;
			if (!httpapi_evidence_name_ok(de->d_name) ||
			    !evidence_name_host(de->d_name, canon, &r) ||
			    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			EvidenceFile f = {g_strdup(de->d_name), (guint64)st.st_size,
					  (gint64)st.st_mtim.tv_sec * 1000 +
					      st.st_mtim.tv_nsec / 1000000};
			g_array_append_val(files, f);
		}
		closedir(d);
	}
	g_array_sort(files, evidence_file_newest_first);
	for (guint i = 0; i < files->len && i < max_files; i++) {
		const EvidenceFile *f = &g_array_index(files, EvidenceFile, i);
		AlertReason r = 0;
		(void)evidence_name_host(f->name, canon, &r);
		g_string_append(reply->body, i > 0 ? ",{\"name\":" : "{\"name\":");
		json_quote(reply->body, f->name);
		g_string_append(reply->body, ",\"reason\":");
		json_quote(reply->body, alert_reason_name(r));
		g_string_append_printf(reply->body,
				       ",\"bytes\":%" G_GUINT64_FORMAT
				       ",\"mtime_ms\":%" G_GINT64_FORMAT "}",
				       f->bytes, f->mtime_ms);
	}
	g_string_append_printf(reply->body, "],\"total\":%u,\"truncated\":%s}", files->len,
			       files->len > max_files ? "true" : "false");
}

gboolean
httpapi_start(HttpApi *api, const Config *cfg, GError **error)
{
	g_autoptr(GError) err = NULL;
	HttpConfig hc = {.listen = cfg->http_listen,
			 .allow = cfg->http_allow,
			 .auth_file = cfg->http_auth_file,
			 .tls_cert = cfg->http_tls_cert,
			 .tls_key = cfg->http_tls_key,
			 .max_clients = cfg->http_max_clients,
			 .max_request = (gsize)cfg->http_max_request,
			 .timeout_s = cfg->http_timeout_s};

	api->server = NULL;
	api->evidence_fd = -1;
	if (cfg->http_listen[0] == '\0')
		return TRUE;
	/* the first route that matches serves: "/" (every other path) last */
	api->routes[0] = (HttpRoute){"/metrics", serve_metrics, api, FALSE};
	api->routes[1] = (HttpRoute){"/api/evidence", serve_evidence_list, api, TRUE};
	api->routes[2] = (HttpRoute){"/api/", serve_api, api, FALSE};
	api->routes[3] = (HttpRoute){"/evidence/", serve_evidence, api, TRUE};
	api->routes[4] = (HttpRoute){"/favicon.ico", serve_favicon, api, TRUE};
	api->routes[5] = (HttpRoute){"/host/", serve_web, api, TRUE};
	api->routes[6] = (HttpRoute){"/", serve_web, api, TRUE};
	api->server = http_server_new(&hc, api->routes, G_N_ELEMENTS(api->routes), &err);
	if (api->server == NULL) {
		/* The built-in address is a convenience, as the control socket's path is: a
		 * second daemon on the machine still collects. A configured one must work. */
		if (strcmp(cfg->http_listen, HTTPAPI_DEFAULT_LISTEN) == 0 &&
		    g_error_matches(err, HTTP_ERROR, HTTP_ERROR_SOCKET)) {
			g_warning("%s; running without the HTTP endpoint", err->message);
			return TRUE;
		}
		g_propagate_error(error, g_steal_pointer(&err));
		return FALSE;
	}
	if (api->evidence_dir != NULL && api->evidence_dir[0] != '\0') {
		/* opened now, with the privileges of the start; the daemon's user owns it */
		api->evidence_fd = open(api->evidence_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (api->evidence_fd < 0)
			g_warning("http: evidence directory %s: %s: /evidence/ will answer 404",
				  api->evidence_dir, g_strerror(errno));
	}
	api->auth = cfg->http_auth_file[0] != '\0';
	g_strlcpy(api->allow, cfg->http_allow, sizeof api->allow);
	return TRUE;
}

gboolean
httpapi_run(HttpApi *api, GError **error)
{
	if (api->server == NULL)
		return TRUE;
	if (!http_server_start(api->server, error))
		return FALSE;
	g_message("http: serving the page, /metrics and /api/ on %s://%s (allow %s%s)",
		  http_server_tls(api->server) ? "https" : "http", http_server_address(api->server),
		  api->allow, api->auth ? "; basic auth" : "");
	return TRUE;
}

void
httpapi_stop(HttpApi *api)
{
	if (api->server == NULL)
		return; /* never started: evidence_fd was not opened */
	g_clear_pointer(&api->server, http_server_free);
	if (api->evidence_fd >= 0)
		close(api->evidence_fd);
	api->evidence_fd = -1;
}
