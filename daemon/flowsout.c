/* The --flows CSV writer: a FlowBatch consumer that prints each record with flowcsv_write(),
 * naming the exporter by address. Names come from collector_exporter_addr() and are cached
 * per exporter index. */
#include "flowsout.h"

#include "flowcsv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>

struct FlowsOut {
	FILE *fp;
	char *path;
	gboolean is_stdout;
	gboolean flush_each;
	const Collector *collector;
	GHashTable *names; /* exporter index -> address text ("" when not found) */
};

FlowsOut *
flowsout_new(const char *path, gboolean flush_each_batch, GError **error)
{
	FlowsOut *fo;
	FILE *fp;

	if (g_strcmp0(path, "-") == 0) {
		fp = stdout;
	} else {
		/* 0640: the flows name internal hosts (as the alert files do) */
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0640);
		fp = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (fp == NULL) {
			int saved = errno;
			if (fd >= 0)
				close(fd);
			g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
				    "flows file '%s': %s", path, g_strerror(saved));
			return NULL;
		}
	}
	fo = g_new0(FlowsOut, 1);
	fo->fp = fp;
	fo->path = g_strdup(path);
	fo->is_stdout = fp == stdout;
	fo->flush_each = flush_each_batch;
	fo->names = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	fputs(FLOWCSV_HEADER "\n", fp);
	if (fo->flush_each)
		fflush(fp);
	return fo;
}

void
flowsout_set_collector(FlowsOut *fo, const Collector *c)
{
	fo->collector = c;
	g_hash_table_remove_all(fo->names);
}

void
flowsout_forget_exporters(FlowsOut *fo)
{
	g_hash_table_remove_all(fo->names);
}

static const char *
exporter_name(FlowsOut *fo, guint32 index)
{
	gpointer key = GUINT_TO_POINTER(index);
	const char *name = g_hash_table_lookup(fo->names, key);
	guint8 addr[16];
	char buf[INET6_ADDRSTRLEN];

	if (name != NULL)
		return name;
	/* "" when the exporter is gone: remembered, so it is not looked up per record */
	char *text = fo->collector != NULL && collector_exporter_addr(fo->collector, index, addr, NULL)
			 ? g_strdup(flow_addr_str(addr, buf, sizeof buf))
			 : g_strdup("");
	g_hash_table_insert(fo->names, key, text);
	return text;
}

void
flowsout_write(const Flow *flows, guint n, gpointer user_data)
{
	FlowsOut *fo = user_data;

	for (guint i = 0; i < n; i++)
		flowcsv_write(fo->fp, &flows[i], exporter_name(fo, flows[i].exporter));
	if (fo->flush_each)
		fflush(fo->fp);
}

gboolean
flowsout_close(FlowsOut *fo, GError **error)
{
	gboolean ok = TRUE;
	int saved = 0;

	if (fo->fp == NULL)
		return TRUE;
	if (fflush(fo->fp) != 0 || ferror(fo->fp)) {
		ok = FALSE;
		saved = errno;
	}
	if (!fo->is_stdout && fclose(fo->fp) != 0 && ok) {
		ok = FALSE;
		saved = errno;
	}
	fo->fp = NULL;
	if (!ok)
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
			    "flows file '%s': write failed: %s", fo->path,
			    saved != 0 ? g_strerror(saved) : "I/O error");
	return ok;
}

void
flowsout_free(FlowsOut *fo)
{
	if (fo == NULL)
		return;
	if (fo->fp != NULL && !fo->is_stdout)
		fclose(fo->fp);
	else if (fo->fp != NULL)
		fflush(fo->fp);
	g_hash_table_unref(fo->names);
	g_free(fo->path);
	g_free(fo);
}
