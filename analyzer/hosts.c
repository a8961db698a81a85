/* The host table: hosts in a slab named by 32-bit indices, found through an open-addressing
 * table, kept in a recency list whose tail goes first when max_hosts or mem_cap is reached,
 * and dropped when idle for longer than the long window. Also what a host holds besides its
 * first window (HostExt) and the memory estimate of it all. */
#include "analyzer_private.h"

/* ---- the table (table_home(), table_find() and lru_unlink() are inline in
 * analyzer_private.h: every flow asks) ---- */

static void
table_put(Analyzer *a, guint32 i)
{
	guint32 mask = a->table_cap - 1;
	guint32 p = table_home(a, host_at(a, i)->addr);
	while (a->table[p] != 0)
		p = (p + 1) & mask;
	a->table[p] = i + 1;
}

static void
table_resize(Analyzer *a, guint32 cap)
{
	guint32 *old = a->table, old_cap = a->table_cap;
	a->table = g_new0(guint32, cap);
	a->table_cap = cap;
	for (guint32 p = 0; p < old_cap; p++) {
		if (old[p] != 0)
			table_put(a, old[p] - 1);
	}
	g_free(old);
}

void
table_insert(Analyzer *a, guint32 i)
{
	if (a->n_hosts + 1 > a->table_cap - a->table_cap / 4)
		table_resize(a, a->table_cap == 0 ? 16 : a->table_cap * 2);
	table_put(a, i);
	a->n_hosts++;
}

/* Remove the entry at slot p, shifting back the entries after it that would no longer be
 * found (no tombstones). The table halves when it falls under 1/8 full. */
static void
table_remove(Analyzer *a, guint32 p)
{
	guint32 mask = a->table_cap - 1;
	guint32 hole = p;
	for (guint32 q = (p + 1) & mask; a->table[q] != 0; q = (q + 1) & mask) {
		guint32 home = table_home(a, host_at(a, a->table[q] - 1)->addr);
		/* q's entry may move to the hole when its home is not in (hole, q] */
		if (((q - home) & mask) >= ((q - hole) & mask)) {
			a->table[hole] = a->table[q];
			hole = q;
		}
	}
	a->table[hole] = 0;
	a->n_hosts--;
	if (a->table_cap > 16 && a->n_hosts < a->table_cap / 8)
		table_resize(a, a->table_cap / 2);
}

/* A zeroed slot from the free list or a new chunk; HOST_NONE when the index space is used
 * up (never in practice: max_hosts and mem_cap hold far below it). */
guint32
slab_alloc(Analyzer *a)
{
	guint32 i;

	if (a->free_head != HOST_NONE) {
		i = a->free_head;
		a->free_head = host_at(a, i)->next;
	} else {
		/* Slots past `bump` were never used: a new chunk is not walked (or touched) to
		 * build a free list, so an analyzer with few hosts costs few pages. */
		if (a->bump == a->n_chunks << HOST_CHUNK_BITS) {
			if (a->n_chunks >= (HOST_NONE >> HOST_CHUNK_BITS))
				return HOST_NONE;
			a->chunks = g_renew(Host *, a->chunks, a->n_chunks + 1);
			a->chunks[a->n_chunks] = g_new(Host, HOST_CHUNK);
			a->n_chunks++;
			a->n_free += HOST_CHUNK;
		}
		i = a->bump++;
	}
	a->n_free--;
	Host *h = host_at(a, i);
	memset(h, 0, sizeof *h);
	h->prev = h->next = HOST_NONE;
	h->win1_kind = HOST_NO_WIN;
	return i;
}

static void
slab_release(Analyzer *a, guint32 i)
{
	host_at(a, i)->prev = HOST_FREE;
	host_at(a, i)->next = a->free_head;
	a->free_head = i;
	a->n_free++;
}

/* Give back the slab's memory after many hosts went (a flood expired): when more than half
 * of it and two chunks' worth is free, move the hosts of the last chunks into free slots of
 * the first ones (their recency links and table entries follow) and free the emptied
 * chunks. Moves invalidate Host pointers: only from analyzer_tick(), which holds none. The
 * recency order and the table's contents are unchanged. O(slab), after at least as many
 * drops. */
static void
slab_compact(Analyzer *a)
{
	guint64 slots = (guint64)a->n_chunks * HOST_CHUNK;
	if (a->n_free <= slots / 2 || a->n_free < 2 * HOST_CHUNK)
		return;
	/* the never-used slots are free slots too */
	for (guint32 i = a->bump; i < slots; i++)
		host_at(a, i)->prev = HOST_FREE;
	guint32 keep = (a->n_hosts + HOST_CHUNK - 1) / HOST_CHUNK;
	guint32 limit = keep * HOST_CHUNK, j = 0;
	for (guint32 i = a->lru_head; i != HOST_NONE;) {
		guint32 next = host_at(a, i)->next;
		if (i >= limit) {
			while (host_at(a, j)->prev != HOST_FREE)
				j++; /* there are limit - n_hosts free slots under limit */
			Host *h = host_at(a, j);
			*h = *host_at(a, i);
			if (h->prev != HOST_NONE)
				host_at(a, h->prev)->next = j;
			else
				a->lru_head = j;
			if (h->next != HOST_NONE)
				host_at(a, h->next)->prev = j;
			else
				a->lru_tail = j;
			a->table[table_find(a, h->addr)] = j + 1;
			host_at(a, i)->prev = HOST_FREE;
		}
		i = next;
	}
	for (guint32 c = keep; c < a->n_chunks; c++)
		g_free(a->chunks[c]);
	a->n_chunks = keep;
	a->chunks = g_renew(Host *, a->chunks, keep);
	a->free_head = HOST_NONE;
	a->n_free = 0;
	a->bump = limit;
	for (guint32 i = limit; i-- > 0;) {
		if (host_at(a, i)->prev == HOST_FREE) {
			host_at(a, i)->next = a->free_head;
			a->free_head = i;
			a->n_free++;
		}
	}
}

HostExt *
host_ext(Host *h)
{
	if (h->ext == NULL)
		h->ext = g_new0(HostExt, 1);
	return h->ext;
}

/* Free an ext that holds nothing (so a host costs the same as one that never had it). */
void
host_ext_trim(Host *h)
{
	HostExt *e = h->ext;
	if (e == NULL || e->base != NULL || e->geo != NULL || e->signs != NULL || e->samp != NULL)
		return;
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (e->win[k] != NULL)
			return;
	}
	g_clear_pointer(&h->ext, g_free);
}

/* Whether a window of h other than kind `except` (HEUR_WIN_COUNT: none excepted) is in
 * estimated mode. a->n_hosts_est counts the hosts for which this holds with no exception;
 * it changes only where a window's mode can: window_add() in process_one(), host_drop(),
 * analyzer_reconfigure() and a state load. */
gboolean
host_estimating_except(const Host *h, guint except)
{
	for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
		if (k != except && host_win(h, k) != NULL && window_estimating(host_win(h, k)))
			return TRUE;
	}
	return FALSE;
}

gboolean
host_estimating(const Host *h)
{
	return host_estimating_except(h, HEUR_WIN_COUNT);
}

gsize
host_mem(const Host *h)
{
	gsize n = HOST_COST + ext_mem(h) + baseline_mem(host_base(h)) + geo_mem(host_geo(h)) +
		  (host_signs(h) != NULL ? SIGNS_COST : 0) +
		  (host_sampled(h) != NULL ? SAMPLED_COST(host_sampled(h)->span) : 0);
	for (guint k = 0; k < HEUR_WIN_COUNT; k++)
		n += host_win_mem(h, host_win(h, k));
	return n;
}

/* Free what a host holds (not its slot). */
void
host_clear(Host *h)
{
	if (h->win1_kind != HOST_NO_WIN)
		window_clear(&h->win1);
	h->win1_kind = HOST_NO_WIN;
	if (h->ext != NULL) {
		for (guint k = 0; k < HEUR_WIN_COUNT; k++)
			window_free(h->ext->win[k]);
		g_free(h->ext->base);
		geo_free(h->ext->geo);
		g_free(h->ext->signs);
		g_free(h->ext->samp);
		g_free(h->ext);
	}
	h->ext = NULL;
}

/* Remove host i; its offenders stay and clear by themselves (their counts read zero). */
void
host_drop(Analyzer *a, guint32 i)
{
	Host *h = host_at(a, i);
	a->mem -= MIN(a->mem, host_mem(h));
	if (host_estimating(h))
		a->n_hosts_est--;
	lru_unlink(a, i);
	table_remove(a, table_find(a, h->addr));
	host_clear(h);
	slab_release(a, i);
}

/* hosts_enforce_caps() found a cap exceeded. Each eviction is counted by the cap that was
 * exceeded (max_hosts when both were) and told by hosts_notice(). */
void
hosts_evict(Analyzer *a, guint32 keep)
{
	while (hosts_over_caps(a) && a->lru_tail != HOST_NONE && a->lru_tail != keep) {
		if (a->n_hosts > a->cfg.max_hosts)
			a->evict_by_hosts++;
		else
			a->evict_by_mem++;
		if (a->evict_by_hosts + a->evict_by_mem == 1)
			a->evict_first_ms = a->now_ms;
		a->evict_last_ms = a->now_ms;
		host_drop(a, a->lru_tail);
		a->st.hosts_evicted++;
	}
	hosts_notice(a, FALSE);
}

/* Tell the evictions counted since the last notice, if there are any and the last notice
 * is at least ANALYZER_NOTICE_INTERVAL_MS old on the analyzer's clock (a clock stepping back
 * restarts the interval: a notice can come late, never early), or whatever its age with
 * `now`. From hosts_evict(), analyzer_tick() and analyzer_flush_notices(). */
void
hosts_notice(Analyzer *a, gboolean now)
{
	if (a->evict_by_hosts + a->evict_by_mem == 0 || a->loading)
		return;
	if (!now && a->evict_notice_ms != G_MININT64) {
		if (a->now_ms < a->evict_notice_ms)
			a->evict_notice_ms = a->now_ms;
		if (a->now_ms - a->evict_notice_ms < ANALYZER_NOTICE_INTERVAL_MS)
			return;
	}
	AnalyzerNoticeInfo info = {
	    .evicted = a->evict_by_hosts + a->evict_by_mem,
	    .by_max_hosts = a->evict_by_hosts,
	    .by_mem_cap = a->evict_by_mem,
	    .first_ms = a->evict_first_ms,
	    .last_ms = a->evict_last_ms,
	    .evicted_total = a->st.hosts_evicted,
	    .max_hosts = a->cfg.max_hosts,
	    .mem_cap = a->cfg.mem_cap,
	    .hosts = a->n_hosts,
	    .mem_bytes = a->mem,
	};
	a->evict_by_hosts = a->evict_by_mem = 0;
	a->evict_notice_ms = a->now_ms;
	if (a->notice_fn != NULL)
		a->notice_fn(ANALYZER_NOTICE_EVICTED, &info, a->notice_data);
}

/* A host being loaded is built outside the slab (host_adopt() moves it in); freed with
 * what it holds. */
void
host_free(Host *h)
{
	host_clear(h);
	g_free(h);
}

/* Move a host built outside the slab (by analyzer_state_load()) into a slot at the head of
 * the recency list, counting it in the memory estimate; h is freed either way. FALSE when
 * the slab's index space is used up. The caps are the caller's to enforce. */
gboolean
host_adopt(Analyzer *a, Host *h)
{
	guint32 slot = slab_alloc(a);
	if (slot == HOST_NONE) {
		host_free(h);
		return FALSE;
	}
	*host_at(a, slot) = *h;
	g_free(h); /* what it held is the slot's now */
	h = host_at(a, slot);
	h->prev = h->next = HOST_NONE;
	table_insert(a, slot);
	lru_push_head(a, slot);
	a->mem += host_mem(h);
	a->n_hosts_est += host_estimating(h);
	return TRUE;
}

/* Drop hosts idle for longer than the long window (the oldest first, a bounded number per
 * call; smtp-novelty counts of a quarter of its threshold keep a host until the novelty
 * window has passed), then give
 * back slab memory if many went. From analyzer_tick(), which holds no Host
 * pointer across it. */
void
hosts_expire(Analyzer *a, gint64 now_ms)
{
	gint64 idle_ms = a->cfg.slice_ms * (a->cfg.span_slices[WINDOW_LONG] + 1);
	guint32 nov_keep = a->cfg.h[REASON_SMTP_NOVELTY].threshold[WINDOW_SHORT] / 4;
	for (guint i = 0; i < 4096 && a->lru_tail != HOST_NONE; i++) {
		guint32 t = a->lru_tail;
		Host *h = host_at(a, t);
		if (now_ms - h->last_ms <= idle_ms)
			break;
		if (h->offenders != 0 || host_base(h) != NULL ||
		    (now_ms - h->last_ms <= a->cfg.novelty_window_ms &&
		     nov_count(a, h, now_ms) >= MAX(1u, nov_keep))) {
			/* keep offenders' evidence, MTA baselines, and novelty counts of a
			 * quarter of the threshold or more while in their window (a slow bot
			 * pausing for an hour): to the front */
			if (a->lru_head == t)
				break;
			lru_unlink(a, t);
			lru_push_head(a, t);
			continue;
		}
		host_drop(a, t);
		a->st.hosts_expired++;
	}
	slab_compact(a);
}

/* After a reconfiguration: windows to the new geometry (old: the previous one), MTA flags
 * to the new mail servers, the memory estimate recounted, the caps enforced. */
void
hosts_reconfigure(Analyzer *a, const WindowGeom *old)
{
	a->mem = 0;
	for (guint32 i = a->lru_head; i != HOST_NONE; i = host_at(a, i)->next) {
		Host *h = host_at(a, i);
		gboolean was_est = host_estimating(h);
		for (guint k = 0; k < HEUR_WIN_COUNT; k++) {
			if (host_win(h, k) != NULL)
				window_regeom(host_win(h, k), old, &a->geom);
		}
		a->n_hosts_est = a->n_hosts_est - was_est + host_estimating(h);
		if (old->slice_ms != a->geom.slice_ms && h->ext != NULL) {
			g_clear_pointer(&h->ext->geo, geo_free); /* slice numbers changed meaning */
			host_ext_trim(h);
		}
		if (h->ext != NULL && h->ext->samp != NULL &&
		    (old->slice_ms != a->geom.slice_ms || old->span[WINDOW_LONG] !=
							       a->geom.span[WINDOW_LONG])) {
			g_clear_pointer(&h->ext->samp, g_free); /* made again at the next record */
			host_ext_trim(h);
		}
		h->is_mta = (guint8)netset_contains(a->mtas, h->addr);
		a->mem += host_mem(h);
	}
	if (a->nov != NULL)
		a->mem += novelty_mem(a->nov);
	hosts_enforce_caps(a, HOST_NONE);
}

void
hosts_init(Analyzer *a)
{
	a->free_head = a->lru_head = a->lru_tail = HOST_NONE;
	a->evict_notice_ms = G_MININT64;
}

/* Every host, the slab and the table. */
void
hosts_free(Analyzer *a)
{
	while (a->lru_head != HOST_NONE)
		host_drop(a, a->lru_head);
	for (guint32 c = 0; c < a->n_chunks; c++)
		g_free(a->chunks[c]);
	g_free(a->chunks);
	g_free(a->table);
}
