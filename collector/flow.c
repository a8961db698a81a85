/* Helpers around the normalized flow record: address text, event names, batches. */
#include "flow.h"

#include <arpa/inet.h>

const char *
flow_addr_str(const guint8 a[16], char *buf, gsize len)
{
	if (flow_addr_is_v4(a))
		return inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
	return inet_ntop(AF_INET6, a, buf, (socklen_t)len);
}

const char *
fw_event_name(guint8 ev)
{
	switch (ev) {
	case FW_EVENT_NONE:
		return "none";
	case FW_EVENT_CREATED:
		return "created";
	case FW_EVENT_DELETED:
		return "deleted";
	case FW_EVENT_DENIED:
		return "denied";
	case FW_EVENT_ALERT:
		return "alert";
	case FW_EVENT_UPDATE:
		return "update";
	default:
		return "unknown";
	}
}

const char *
flow_version_name(guint8 version)
{
	switch (version) {
	case 5:
		return "5";
	case 9:
		return "9";
	case 10:
		return "10";
	case FLOW_VERSION_SFLOW5:
		return "sflow5";
	default:
		return "0"; /* a row that never decoded a header */
	}
}

FlowBatch *
flow_batch_new(guint cap, FlowBatchFlush flush, gpointer user_data)
{
	FlowBatch *b = g_new0(FlowBatch, 1);
	b->cap = MAX(cap, 1);
	b->v = g_new0(Flow, b->cap);
	b->flush = flush;
	b->user_data = user_data;
	return b;
}

void
flow_batch_free(FlowBatch *b)
{
	if (b == NULL)
		return;
	g_free(b->v);
	g_free(b);
}

void
flow_batch_flush(FlowBatch *b)
{
	if (b->n > 0 && b->flush != NULL)
		b->flush(b->v, b->n, b->user_data);
	memset(b->v, 0, b->n * sizeof *b->v); /* the slots handed out are zero again */
	b->n = 0;
}
