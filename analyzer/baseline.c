/* MTA baselines for mta-surge: per listed mail server, a ring of its window counts, one
 * sample per short-window period, and their median, against which the surge threshold is
 * set (events.c, thresholds()). */
#include "analyzer_private.h"

#include <stdlib.h>

/* An empty baseline holding surge_history samples. */
Baseline *
baseline_new(const Analyzer *a)
{
	guint cap = MAX(a->cfg.surge_history, 1u);
	Baseline *b = g_malloc0(sizeof(Baseline) + (gsize)cap * WINDOW_SPANS * sizeof(guint32));
	b->cap = cap;
	return b;
}

gsize
baseline_mem(const Baseline *b)
{
	return b ? sizeof *b + (gsize)b->cap * WINDOW_SPANS * sizeof(guint32) +
			   WINDOW_ALLOC_OVERHEAD
		 : 0;
}

static int
cmp_u32(const void *x, const void *y)
{
	guint32 a = *(const guint32 *)x, b = *(const guint32 *)y;
	return a < b ? -1 : a > b;
}

void
baseline_push(Baseline *b, const guint32 v[WINDOW_SPANS])
{
	for (guint k = 0; k < WINDOW_SPANS; k++)
		b->ring[k * b->cap + b->head] = v[k];
	b->head = (b->head + 1) % b->cap;
	b->n = MIN(b->n + 1, b->cap);
}

void
baseline_median(Baseline *b)
{
	guint32 tmp[b->n ? b->n : 1];
	for (guint k = 0; k < WINDOW_SPANS; k++) {
		if (b->n == 0) {
			b->median[k] = 0;
			continue;
		}
		memcpy(tmp, &b->ring[k * b->cap], b->n * sizeof(guint32));
		qsort(tmp, b->n, sizeof(guint32), cmp_u32);
		b->median[k] = b->n % 2 ? tmp[b->n / 2] : (tmp[b->n / 2 - 1] + tmp[b->n / 2]) / 2;
	}
}

/* One sample of the MTA's window counts per short-window period, taken when its flows
 * arrive (before the current flow is added). Periods without flows get the counts seen
 * when the next flow arrives (zero after a long quiet time), so quiet hours are part of the
 * median. */
void
baseline_sample(Analyzer *a, Host *h, Window *w, gint64 now)
{
	guint32 period = a->cfg.span_slices[WINDOW_SHORT];
	guint32 s = (guint32)(MAX(now, 0) / a->cfg.slice_ms);
	if (host_base(h) == NULL) {
		gsize ext0 = ext_mem(h);
		Baseline *nb = baseline_new(a);
		nb->next_slice = s + period;
		host_ext(h)->base = nb;
		a->mem += baseline_mem(nb) + ext_mem(h) - ext0;
		return;
	}
	Baseline *b = host_base(h);
	if (s < b->next_slice) {
		if (b->next_slice - s > 2 * period)
			b->next_slice = s + period; /* clock stepped back */
		return;
	}
	/* the windows ending with the last slice of the period that just ended */
	WindowCounts wc;
	window_counts(w, &a->geom, (gint64)b->next_slice * a->cfg.slice_ms - 1, &wc);
	guint32 v[WINDOW_SPANS];
	for (guint k = 0; k < WINDOW_SPANS; k++)
		v[k] = wc.span[k].distinct;
	for (guint i = 0; s >= b->next_slice && i < b->cap; i++) {
		baseline_push(b, v);
		b->next_slice += period;
	}
	if (s >= b->next_slice)
		b->next_slice = s + period;
	baseline_median(b);
}
