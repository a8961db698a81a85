/* Window: distinct destinations of one tracked host for one kind of traffic, over sliding
 * windows made of time slices (e.g. 10 and 60 one-minute slices). Truly sliding: a count
 * always covers the last N slices ending at "now", never fixed blocks. */
#pragma once

#include <glib.h>

#define WINDOW_SPANS 2 /* span 0 = short window, span 1 = long window */
enum { WINDOW_SHORT = 0, WINDOW_LONG = 1 };
#define WINDOW_MAX_SLICES 1440 /* longest window, in slices */
#define WINDOW_TOP_MAX 10

/* Estimated mode: HyperLogLog with 2^10 one-byte registers per slice, merged (max) over a
 * window's slices. Standard error 1.04/sqrt(1024) = 3.25%; an estimate is within 10%
 * (about 3 standard errors) of the true count with probability > 99.7%, which is the bound
 * the unit test holds over many seeds. */
#define WINDOW_HLL_P 10
#define WINDOW_HLL_M (1u << WINDOW_HLL_P)
#define WINDOW_HLL_REL_ERROR 0.0325
#define WINDOW_HLL_BOUND 0.10

/* Geometry shared by all windows of one kind; passed in, not stored per window, so a host
 * costs no bytes for it and a reconfiguration applies to kept state at once. */
typedef struct {
	gint64 slice_ms;               /* width of a slice (>= 1000) */
	guint span[WINDOW_SPANS];      /* window lengths in slices, 1 <= span[0] <= span[1] */
	guint exact_cap;               /* distinct destinations held exactly before estimating */
} WindowGeom;

typedef struct {
	guint32 distinct;   /* distinct destinations sighted in the window */
	gboolean estimated; /* TRUE: distinct is a HyperLogLog estimate (see bound above) */
	guint32 flows;      /* records added (attempts plus records that are not attempts) */
	guint32 attempts;   /* initiator-direction connection attempts */
	guint32 failed;     /* attempts judged failed */
	guint32 packets;    /* sampled packets of the attempts: filled by the analyzer for a
			       sampled host (the sampling estimate), 0 otherwise */
} WindowSpanCounts;

typedef struct {
	WindowSpanCounts span[WINDOW_SPANS];
	gint64 first_ms; /* first record since the window was last empty */
	gint64 last_ms;  /* newest record */
} WindowCounts;

typedef struct {
	guint8 addr[16];
	guint32 count; /* attempts to addr while it stayed in the long window (an upper bound in
			  estimated mode: space-saving sketch, over-count at most `error`) */
	guint32 error;
} WindowTop;

/* window_add() result bits, for the caller's counters. */
enum {
	WINDOW_ADD_NEW_DEST = 1u << 0, /* first sighting of dst in the long window */
	WINDOW_ADD_LATE = 1u << 1,     /* time older than the newest slice: counted in the newest */
	WINDOW_ADD_RESET = 1u << 2,    /* time jumped back more than the long window: state dropped */
	WINDOW_ADD_ESTIMATING = 1u << 3, /* this add switched the window to estimated mode */
};

/* The window's records (window.c). Window is declared here, not opaque, only so that the
 * analyzer can hold a host's first window inside the host's slot (no allocation and no
 * pointer for the window most hosts have); its fields are window.c's alone. */
typedef struct {
	guint32 slice; /* absolute slice number: t_ms / slice_ms */
	guint32 ndist; /* destinations whose last sighting is in this slice (exact mode) */
	guint32 flows;
	guint32 attempts;
	guint32 failed;
} WindowSlice;
typedef struct WindowEst WindowEst;

/* The slice records, ascending by slice, newest last. Most windows never hold more than one
 * slice (a host seen within one slice width): that one is kept inline, and an array is
 * allocated from the second on (saves a 20-byte array and its allocator header per window).
 * Packed to 4-byte alignment so the union costs 20 bytes, not 24. */
typedef union __attribute__((packed, aligned(4))) {
	WindowSlice one;   /* slice_cap <= 1 */
	WindowSlice *many; /* slice_cap >= 2 */
} WindowSliceStore;

typedef struct Window Window;
struct Window {
	gint64 first_ms;
	gint64 last_ms;
	void *map;           /* exact mode: the destinations (window.c, "exact map") */
	WindowEst *est;      /* non-NULL in estimated mode */
	WindowSliceStore sl; /* see slices() in window.c */
	guint32 cur;         /* newest slice */
	guint32 live;        /* destinations in the map that are still in the long window */
	guint32 map_cap, map_used;
	guint16 nslices;
	guint16 slice_cap : 15; /* <= WINDOW_MAX_SLICES + 1 */
	guint16 dest6 : 1;      /* the map's entries have the 16-byte form (an IPv6 one came) */
};

Window *window_new(void);
void window_free(Window *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Window, window_free)
/* A window held inside another structure: window_init() makes it empty, window_clear()
 * frees what it holds (not w). */
void window_init(Window *w);
void window_clear(Window *w);

/* Record one flow at time t_ms towards dst. `attempt`: an initiator-direction connection
 * attempt (only attempts count as destinations); `failed`: the attempt failed.
 *
 * Time: slices are t_ms / slice_ms. A newer slice expires what left the long window (gaps of
 * any length are fine: a jump of an hour simply expires everything). A time older than the
 * newest slice (a clock stepped back, late datagrams) is counted in the newest slice, so
 * counts never go negative and nothing expires early; if it is older by a whole long
 * window or more, the clock is taken to have been reset and the window starts afresh. */
guint window_add(Window *w, const WindowGeom *g, gint64 t_ms, const guint8 dst[16],
		 gboolean attempt, gboolean failed);
/* The same, and *held_delta: how much window_mem() moved by. Computed only when the add
 * could move it (a new slice, a grown map, the switch to estimating), so that the caller's
 * memory estimate costs no window_mem() before and after every flow. */
guint window_add_held(Window *w, const WindowGeom *g, gint64 t_ms, const guint8 dst[16],
		      gboolean attempt, gboolean failed, gssize *held_delta);
/* A reverse-direction record from dst showed the session was accepted. */
void window_answer(Window *w, const WindowGeom *g, const guint8 dst[16]);
/* dst is in the long window and has answered (exact mode; FALSE when estimating). */
gboolean window_dest_answered(Window *w, const WindowGeom *g, const guint8 dst[16]);

/* Counts of the windows ending at now_ms (or at the newest slice if that is later). */
void window_counts(Window *w, const WindowGeom *g, gint64 now_ms, WindowCounts *out);
/* Up to max (<= WINDOW_TOP_MAX) top destinations of the long window, most attempts first. */
guint window_top(const Window *w, const WindowGeom *g, gint64 now_ms, WindowTop *out, guint max);
/* Call fn for each distinct destination of the long window ending at now_ms (exact mode
 * only: nothing when estimating); returns how many. For the analyzer's geo hook. */
typedef void (*WindowDestFunc)(const guint8 dst[16], gpointer user_data);
guint window_foreach_dest(const Window *w, const WindowGeom *g, gint64 now_ms, WindowDestFunc fn,
			  gpointer user_data);
/* Distinct destinations of the long window that answered (exact mode; 0 when estimating). */
guint32 window_answered(const Window *w, const WindowGeom *g, gint64 now_ms);
/* Drop slices and destinations that left the long window; TRUE when nothing is left. */
gboolean window_expire(Window *w, const WindowGeom *g, gint64 now_ms);
/* A new geometry: kept slices stay when slice_ms is unchanged, else the window restarts. */
void window_regeom(Window *w, const WindowGeom *old_g, const WindowGeom *g);
/* inline: the analyzer asks it on every flow */
static inline gboolean
window_estimating(const Window *w)
{
	return w->est != NULL;
}
gint64 window_last_ms(const Window *w);
/* The window's newest slice (a slice number: the window's geometry's) */
static inline guint32
window_cur(const Window *w)
{
	return w->cur;
}
/* What the analyzer's quick judge reads of window_counts() at the newest slice: each span's
 * distinct destinations and the long window's attempts and failed. */
typedef struct {
	guint32 distinct[WINDOW_SPANS];
	guint32 long_attempts, long_failed;
} WindowTally;
/* Those counts ending at the newest slice (= window_counts() at a time in it or before it:
 * right after an add, at the add's time), when the window keeps them: one slice, or the
 * running sums up to date (window_counts() at that slice makes them so); estimated, the
 * estimates as window_counts() gives them. FALSE otherwise: ask window_counts(). */
gboolean window_newest_tally(Window *w, const WindowGeom *g, WindowTally *t);
/* The same in two steps: the long window's attempts and failed, and the distinct counts of an
 * exact window (cheap: what the window keeps); then, when window_newest_attempts() said
 * TRUE, the distinct counts as window_newest_tally() gives them (an estimated window's
 * estimates, the costly part). */
gboolean window_newest_attempts(const Window *w, WindowTally *t);
/* TRUE: every count it gave can only grow with later adds in the same newest slice (an exact
 * window's counts; an estimate read the raw HyperLogLog way, past linear counting). FALSE:
 * one may be lower after a later add (linear counting gives way to the raw estimate). */
gboolean window_newest_distinct(Window *w, const WindowGeom *g, WindowTally *t);
/* Bytes held by the window: its structure (+ WINDOW_ALLOC_OVERHEAD) and its arrays, each
 * counted as glibc's malloc takes it (n bytes: n + 8 rounded up to 16, at least 32).
 * Slices from the second on: 20 x slice capacity + 40 (sums per span); destinations: 12 x
 * table size (IPv4 entries), 24 x table size once an IPv6 one came (window.c, "exact map");
 * estimated mode: the WindowEst (2,680 bytes: top-k sketch, caches, merged registers per
 * span) and 1,024 register bytes per slice of capacity. */
#define WINDOW_ALLOC_OVERHEAD 16
gsize window_mem(const Window *w);
/* The same without the structure itself: what a window held inside another one costs. */
gsize window_mem_held(const Window *w);

/* Saved state (see window.c, "saved state", for the format): the window's logical content
 * (slices with their counts; exact mode: each destination with its last slice, attempt count
 * and answered bit; estimated mode: each slice's HyperLogLog registers and the top-k sketch)
 * and capacity hints, so a restored window behaves and costs like the saved one. Appended to
 * out; no struct images, so the layout here may change without changing the format. */
void window_state_save(const Window *w, GByteArray *out);
/* Restore into a fresh window (window_new()) from exactly len bytes that window_state_save()
 * wrote under geometry saved_g (its exact_cap is not used), then move it to the current
 * geometry g as window_regeom() does (a changed slice width empties it). The bytes are
 * untrusted: every count, index and value is checked and nothing is allocated beyond what
 * they hold; FALSE with an error naming the field when they are not something
 * window_state_save() writes. */
#define WINDOW_ERROR window_error_quark()
GQuark window_error_quark(void);
typedef enum { WINDOW_ERROR_INVALID } WindowError;
G_GNUC_WARN_UNUSED_RESULT gboolean window_state_load(Window *w, const WindowGeom *saved_g,
						     const WindowGeom *g, const guint8 *data,
						     gsize len, GError **error);
