/* The sink fan-out and the parts every sink shares (counters, rate-limited error logs). */
#include "sink.h"

#include <stdarg.h>

struct SinkSet {
	GPtrArray *sinks;
};

void
sink_init(Sink *s, const SinkOps *ops, const char *name)
{
	s->ops = ops;
	s->name = g_strdup(name);
}

void
sink_log_error(Sink *s, const char *fmt, ...)
{
	gint64 now = g_get_monotonic_time();
	va_list ap;

	if (s->last_error_log_us != 0 && now - s->last_error_log_us < 60 * G_USEC_PER_SEC)
		return;
	s->last_error_log_us = now;
	va_start(ap, fmt);
	g_autofree char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_warning("%s sink '%s': %s (errors so far: %" G_GUINT64_FORMAT
		  ", dropped: %" G_GUINT64_FORMAT ")",
		  s->ops->kind, s->name, msg, s->st.errors, s->st.dropped);
}

void
sink_free(Sink *s)
{
	if (s == NULL)
		return;
	char *name = s->name;
	s->ops->free(s);
	g_free(name);
}

SinkSet *
sink_set_new(void)
{
	SinkSet *set = g_new0(SinkSet, 1);
	set->sinks = g_ptr_array_new_with_free_func((GDestroyNotify)sink_free);
	return set;
}

void
sink_set_free(SinkSet *set)
{
	if (set == NULL)
		return;
	g_ptr_array_unref(set->sinks);
	g_free(set);
}

void
sink_set_add(SinkSet *set, Sink *s)
{
	g_ptr_array_add(set->sinks, s);
}

guint
sink_set_len(const SinkSet *set)
{
	return set->sinks->len;
}

const Sink *
sink_set_get(const SinkSet *set, guint i)
{
	return i < set->sinks->len ? g_ptr_array_index(set->sinks, i) : NULL;
}

void
sink_set_write(SinkSet *set, const AlertEvent *ev, const SinkCtx *ctx)
{
	for (guint i = 0; i < set->sinks->len; i++) {
		Sink *s = g_ptr_array_index(set->sinks, i);
		s->ops->write(s, ev, ctx);
	}
}

gboolean
sink_set_flush(SinkSet *set, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	gboolean ok = TRUE;

	for (guint i = 0; i < set->sinks->len; i++) {
		Sink *s = g_ptr_array_index(set->sinks, i);
		gint64 left = MAX(deadline - g_get_monotonic_time(), 0);

		if (s->ops->flush == NULL)
			continue;
		guint unsent = s->ops->flush(s, (guint)(left / 1000));
		if (unsent > 0) {
			g_warning("%s '%s': %u events not delivered before exit (the queue "
				  "could not be emptied in time; see its counters)",
				  s->ops->kind, s->name, unsent);
			ok = FALSE;
		}
	}
	return ok;
}

void
sink_set_forget(SinkSet *set, const guint8 host[16])
{
	for (guint i = 0; i < set->sinks->len; i++) {
		Sink *s = g_ptr_array_index(set->sinks, i);
		if (s->ops->forget != NULL)
			s->ops->forget(s, host);
	}
}

void
sink_set_reopen(SinkSet *set)
{
	for (guint i = 0; i < set->sinks->len; i++) {
		Sink *s = g_ptr_array_index(set->sinks, i);
		g_autoptr(GError) err = NULL;
		if (s->ops->reopen == NULL)
			continue;
		if (s->ops->reopen(s, &err))
			s->st.reopens++;
		else
			g_warning("%s sink '%s': reopen failed, still writing the old file: %s",
				  s->ops->kind, s->name, err->message);
	}
}
