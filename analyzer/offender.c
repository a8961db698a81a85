/* The alert lifecycle state machine for one (host, reason): raise on crossing, escalate when
 * the level has grown by a factor (rate limited), clear after a hold time spent below a
 * lower level. Pure: the analyzer feeds levels and emits the returned transitions. */
#include "offender.h"

void
offender_init(Offender *o)
{
	o->state = OFFENDER_IDLE;
	o->raised_ms = 0;
	o->last_event_ms = 0;
	o->below = FALSE;
	o->below_since_ms = 0;
	o->reported_level = 0;
	o->n_updates = 0;
}

OffenderStep
offender_step(Offender *o, const OffenderPolicy *p, gint64 now_ms, gboolean crossed, double level)
{
	if (o->state == OFFENDER_IDLE) {
		if (!crossed)
			return OFFENDER_STEP_NONE;
		o->state = OFFENDER_ACTIVE;
		o->raised_ms = o->last_event_ms = now_ms;
		o->below = FALSE;
		o->reported_level = level;
		o->n_updates = 0;
		return OFFENDER_STEP_RAISED;
	}
	if (now_ms < o->last_event_ms)
		o->last_event_ms = now_ms;
	if (o->below && o->below_since_ms > now_ms)
		o->below_since_ms = now_ms;

	if (level >= p->clear_level) {
		o->below = FALSE;
	} else {
		if (!o->below) {
			o->below = TRUE;
			o->below_since_ms = now_ms;
		}
		if (now_ms - o->below_since_ms >= p->hold_ms) {
			o->state = OFFENDER_IDLE;
			o->last_event_ms = now_ms;
			return OFFENDER_STEP_CLEARED;
		}
		return OFFENDER_STEP_NONE;
	}
	if (crossed && level >= o->reported_level * p->escalate_factor &&
	    now_ms - o->last_event_ms >= p->update_interval_ms) {
		o->last_event_ms = now_ms;
		o->reported_level = level;
		o->n_updates++;
		return OFFENDER_STEP_UPDATED;
	}
	return OFFENDER_STEP_NONE;
}
