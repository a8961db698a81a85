/* --flows: every decoded record as a CSV line (collector/flowcsv.h), written from the
 * collector's FlowBatch flush callback. Maps each record's exporter index to its address
 * text through a small cache filled from the collector's session list. */
#pragma once

#include "collector.h"

#include <glib.h>

typedef struct FlowsOut FlowsOut;

/* path "-" is stdout. Writes FLOWCSV_HEADER first. flush_each_batch: fflush after every
 * batch (live mode, so a reader sees records as they come). */
FlowsOut *flowsout_new(const char *path, gboolean flush_each_batch,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* The collector whose exporters the records name (set it before the first flush). */
void flowsout_set_collector(FlowsOut *fo, const Collector *c);
/* Drop the exporter names (call after collector_expire(): indices may be reused). */
void flowsout_forget_exporters(FlowsOut *fo);
/* A FlowBatchFlush: user_data is the FlowsOut. */
void flowsout_write(const Flow *flows, guint n, gpointer user_data);
/* Flush and close; FALSE when any write failed (disk full, closed pipe...). */
gboolean flowsout_close(FlowsOut *fo, GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Closes (ignoring errors) if flowsout_close() was not called. NULL-safe. */
void flowsout_free(FlowsOut *fo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowsOut, flowsout_free)
