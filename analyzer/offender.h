/* Offender: the alert lifecycle of one (host, reason). A small pure state machine:
 * idle -> raised -> (updated)* -> cleared -> idle; each transition is one alert event. */
#pragma once

#include <glib.h>

#include "alert.h"

typedef struct {
	double escalate_factor;   /* update when the level reaches factor x the last reported */
	gint64 update_interval_ms; /* at most one update per interval */
	double clear_level;       /* "below" means level < clear_level (hysteresis, < 1) */
	gint64 hold_ms;           /* clear after staying below for this long */
} OffenderPolicy;

typedef enum {
	OFFENDER_IDLE = 0,
	OFFENDER_ACTIVE = 1,
} OffenderState;

typedef struct {
	OffenderState state;
	gint64 raised_ms;
	gint64 last_event_ms;
	gboolean below;        /* level < clear_level since below_since_ms */
	gint64 below_since_ms;
	double reported_level; /* level in the last raised/updated event */
	guint32 n_updates;
} Offender;

typedef enum {
	OFFENDER_STEP_NONE = -1,
	OFFENDER_STEP_RAISED = ALERT_RAISED,
	OFFENDER_STEP_UPDATED = ALERT_UPDATED,
	OFFENDER_STEP_CLEARED = ALERT_CLEARED,
} OffenderStep;

void offender_init(Offender *o);
/* Feed the current level (max over windows of metric / threshold) and whether a raise
 * condition holds (level >= 1 plus any heuristic-specific condition). Returns the transition
 * to report, or OFFENDER_STEP_NONE. Clock stepping back: timers restart from the new time
 * (a backward jump can delay an update or a clear, never fire one early). */
OffenderStep offender_step(Offender *o, const OffenderPolicy *p, gint64 now_ms, gboolean crossed,
			   double level);
/* offender_step() at now_ms does not read `crossed`: the offender is active and its last
 * event is younger than the update interval (no update can come; a clear reads the level
 * alone), so the caller need not work it out. */
static inline gboolean
offender_ignores_crossed(const Offender *o, const OffenderPolicy *p, gint64 now_ms)
{
	return o->state == OFFENDER_ACTIVE && now_ms >= o->last_event_ms &&
	       now_ms - o->last_event_ms < p->update_interval_ms;
}
