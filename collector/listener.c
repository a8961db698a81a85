/* UDP receive plumbing for the collector: one socket per listen address, recvmmsg batches
 * into buffers allocated once, the kernel drop counter from SO_RXQ_OVFL, and a GSource per
 * socket so receiving shares the glib main loop with everything else. Decoding is not done
 * here: every datagram goes to collector_input(). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

/* One recvmmsg call reads up to LISTENER_BATCH datagrams; one wakeup runs at most
 * LISTENER_MAX_BATCHES calls, so a flood cannot starve the rest of the main loop (the
 * source is level-triggered and fires again on the next iteration). */
#define LISTENER_BATCH 64
#define LISTENER_MAX_BATCHES 8
#define LISTENER_BUFSZ 65535
/* Room for the SO_RXQ_OVFL cmsg (a u32) and anything else the kernel may add. */
#define LISTENER_CMSGSZ 64

typedef struct {
	Listener *owner;
	int fd;
	guint16 port;
	gsize rcvbuf;
	guint32 last_drops; /* last SO_RXQ_OVFL value: cumulative per socket */
	char *name;	    /* "addr:port" as bound */
	GSource *source;
	gpointer fd_tag; /* the fd in source: polled, or not while coalescing */
	gint64 last_read_us; /* main-loop time of the last read that got datagrams */
} ListenSock;

struct Listener {
	GPtrArray *socks; /* ListenSock* */
	Collector *collector;
	FlowBatch *out;
	ListenerStats stats;
	gint64 last_err_log_us;
	/* Receive buffers, allocated once and shared by the sockets (one thread). */
	guint8 *bufs;
	struct mmsghdr msgs[LISTENER_BATCH];
	struct iovec iov[LISTENER_BATCH];
	struct sockaddr_storage names[LISTENER_BATCH];
	union {
		struct cmsghdr align;
		char buf[LISTENER_CMSGSZ];
	} cmsg[LISTENER_BATCH];
};

static const char *const default_addrs[] = {LISTENER_DEFAULT_ADDRS, NULL};

/* clang-format off */
G_DEFINE_QUARK(listener-error-quark, listener_error)
/* clang-format on */

gboolean
listener_parse_address(const char *text, struct sockaddr_storage *ss, socklen_t *sslen,
		       GError **error)
{
	g_autofree char *host = NULL;
	const char *port_text;
	guint64 port;
	struct addrinfo hints = {0}, *res = NULL;
	int rc;

	if (text == NULL || *text == '\0') {
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
			    "listen address '': empty");
		return FALSE;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':') {
			g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
				    "listen address '%s': expected '[IPv6]:port'", text);
			return FALSE;
		}
		host = g_strndup(text + 1, (gsize)(close - text - 1));
		port_text = close + 2;
		hints.ai_family = AF_INET6;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL && strspn(text, "0123456789") == strlen(text)) {
			/* what nfcapd's -p takes: say what we take instead */
			g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
				    "listen address '%s': a port alone; give the address too, "
				    "0.0.0.0:%s for IPv4 and [::]:%s for IPv6 (one -l each)",
				    text, text, text);
			return FALSE;
		}
		if (colon == NULL) {
			g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
				    "listen address '%s': missing ':port'", text);
			return FALSE;
		}
		if (memchr(text, ':', (gsize)(colon - text)) != NULL) {
			g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
				    "listen address '%s': put an IPv6 address in brackets, "
				    "'[addr]:port'",
				    text);
			return FALSE;
		}
		host = g_strndup(text, (gsize)(colon - text));
		port_text = colon + 1;
		hints.ai_family = AF_INET;
	}
	if (!g_ascii_string_to_unsigned(port_text, 10, 0, 65535, &port, NULL)) {
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
			    "listen address '%s': port '%s' is not a number in 0..65535", text,
			    port_text);
		return FALSE;
	}
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	rc = getaddrinfo(host, port_text, &hints, &res);
	if (rc != 0 || res == NULL || res->ai_addrlen > sizeof *ss) {
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_ADDRESS,
			    "listen address '%s': '%s' is not a numeric %s address", text, host,
			    hints.ai_family == AF_INET ? "IPv4" : "IPv6");
		if (res != NULL)
			freeaddrinfo(res);
		return FALSE;
	}
	memset(ss, 0, sizeof *ss);
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return TRUE;
}

static char *
sockaddr_text(const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		return g_strdup_printf("%s:%u", host, ntohs(sin->sin_port));
	}
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	getnameinfo((const struct sockaddr *)ss, sizeof *sin6, host, sizeof host, NULL, 0,
		    NI_NUMERICHOST);
	return g_strdup_printf("[%s]:%u", host, ntohs(sin6->sin6_port));
}

static void
listen_sock_free(gpointer p)
{
	ListenSock *s = p;

	if (s->source != NULL) {
		g_source_destroy(s->source);
		g_source_unref(s->source);
	}
	if (s->fd >= 0)
		close(s->fd);
	g_free(s->name);
	g_free(s);
}

/* Ask for a receive buffer of `want` bytes. SO_RCVBUFFORCE (CAP_NET_ADMIN) ignores
 * net.core.rmem_max; plain SO_RCVBUF is clamped to it. Linux reports back twice the
 * usable size (the other half is bookkeeping overhead). */
static gsize
set_rcvbuf(int fd, const char *name, gsize want)
{
	int v = (int)MIN(want, (gsize)INT_MAX / 2);
	int got = 0;
	socklen_t glen = sizeof got;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) != 0)
		g_warning("listen %s: setsockopt SO_RCVBUF %d: %s", name, v, g_strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &glen) != 0 || got < 0)
		return 0;
	gsize have = (gsize)got / 2;
	if (have < (gsize)v)
		g_warning("listen %s: receive buffer is %" G_GSIZE_FORMAT " bytes, not the %d "
			  "asked: the kernel clamped it to net.core.rmem_max (raise it with "
			  "'sysctl -w net.core.rmem_max=%d', or run with CAP_NET_ADMIN)",
			  name, have, v, v);
	return have;
}

static gboolean
open_sock(Listener *l, const char *text, gsize rcvbuf, GError **error)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int one = 1;
	int saved;

	if (!listener_parse_address(text, &ss, &sslen, error))
		return FALSE;

	ListenSock *s = g_new0(ListenSock, 1);
	s->owner = l;
	s->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	g_ptr_array_add(l->socks, s);
	if (s->fd < 0) {
		saved = errno;
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_SOCKET,
			    "listen address '%s': socket: %s", text, g_strerror(saved));
		return FALSE;
	}
	/* Both "0.0.0.0:p" and "[::]:p" are bound in the default setup: the v6 socket must
	 * not claim IPv4 too. */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
		saved = errno;
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_SOCKET,
			    "listen address '%s': IPV6_V6ONLY: %s", text, g_strerror(saved));
		return FALSE;
	}
	if (setsockopt(s->fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0)
		g_warning("listen %s: SO_RXQ_OVFL: %s (kernel drops will not be counted)", text,
			  g_strerror(errno));
	if (bind(s->fd, (const struct sockaddr *)&ss, sslen) != 0) {
		saved = errno;
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_SOCKET,
			    "listen address '%s': bind: %s", text, g_strerror(saved));
		return FALSE;
	}
	sslen = sizeof ss;
	if (getsockname(s->fd, (struct sockaddr *)&ss, &sslen) != 0) {
		saved = errno;
		g_set_error(error, LISTENER_ERROR, LISTENER_ERROR_SOCKET,
			    "listen address '%s': getsockname: %s", text, g_strerror(saved));
		return FALSE;
	}
	s->port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
					  : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	s->name = sockaddr_text(&ss);
	s->rcvbuf = set_rcvbuf(s->fd, s->name, rcvbuf);
	return TRUE;
}

Listener *
listener_new(const char *const *addrs, gsize rcvbuf_bytes, GError **error)
{
	g_autoptr(Listener) l = g_new0(Listener, 1);

	l->socks = g_ptr_array_new_with_free_func(listen_sock_free);
	if (addrs == NULL || addrs[0] == NULL)
		addrs = default_addrs;
	if (rcvbuf_bytes == 0)
		rcvbuf_bytes = LISTENER_DEFAULT_RCVBUF;
	for (guint i = 0; addrs[i] != NULL; i++)
		if (!open_sock(l, addrs[i], rcvbuf_bytes, error))
			return NULL;

	l->bufs = g_malloc((gsize)LISTENER_BATCH * LISTENER_BUFSZ);
	for (guint i = 0; i < LISTENER_BATCH; i++) {
		l->iov[i].iov_base = l->bufs + (gsize)i * LISTENER_BUFSZ;
		l->iov[i].iov_len = LISTENER_BUFSZ;
		l->msgs[i].msg_hdr.msg_iov = &l->iov[i];
		l->msgs[i].msg_hdr.msg_iovlen = 1;
		l->msgs[i].msg_hdr.msg_name = &l->names[i];
		l->msgs[i].msg_hdr.msg_control = l->cmsg[i].buf;
	}
	return g_steal_pointer(&l);
}

void
listener_free(Listener *l)
{
	if (l == NULL)
		return;
	g_ptr_array_unref(l->socks);
	g_free(l->bufs);
	g_free(l);
}

static ListenSock *
sock_at(const Listener *l, guint i)
{
	return i < l->socks->len ? g_ptr_array_index(l->socks, i) : NULL;
}

guint
listener_n_sockets(const Listener *l)
{
	return l->socks->len;
}

guint16
listener_local_port(const Listener *l, guint i)
{
	ListenSock *s = sock_at(l, i);
	return s != NULL ? s->port : 0;
}

const char *
listener_address(const Listener *l, guint i)
{
	ListenSock *s = sock_at(l, i);
	return s != NULL ? s->name : NULL;
}

gsize
listener_rcvbuf(const Listener *l, guint i)
{
	ListenSock *s = sock_at(l, i);
	return s != NULL ? s->rcvbuf : 0;
}

/* SO_RXQ_OVFL only reports drops on the next datagram the kernel manages to queue, so
 * drops at the end of a burst would go unseen until traffic resumes. SO_MEMINFO reads the
 * same cumulative counter (sk_drops) directly: read it whenever the counters are asked
 * for. Either path adds the growth since the last value it or the other one saw. */
static void
refresh_drops(ListenSock *s)
{
	guint32 mem[SK_MEMINFO_VARS];
	socklen_t len = sizeof mem;

	if (getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 ||
	    len < (socklen_t)((SK_MEMINFO_DROPS + 1) * sizeof(guint32)))
		return;
	guint32 v = mem[SK_MEMINFO_DROPS];
	/* the cmsg path may have seen a newer value already: never go backwards */
	if ((gint32)(v - s->last_drops) > 0) {
		s->owner->stats.kernel_drops += (guint32)(v - s->last_drops);
		s->last_drops = v;
	}
}

const ListenerStats *
listener_stats(const Listener *l)
{
	for (guint i = 0; i < l->socks->len; i++)
		refresh_drops(g_ptr_array_index(l->socks, i));
	return &l->stats;
}

/* Source address -> the collector's 16-byte form (IPv4-mapped for IPv4) and port. */
static gboolean
peer_addr(const struct sockaddr_storage *ss, socklen_t len, guint8 addr[16], guint16 *port)
{
	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		flow_addr_set_v4(addr, (const guint8 *)&sin->sin_addr);
		*port = ntohs(sin->sin_port);
		return TRUE;
	}
	if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		memcpy(addr, &sin6->sin6_addr, 16);
		*port = ntohs(sin6->sin6_port);
		return TRUE;
	}
	return FALSE;
}

/* SO_RXQ_OVFL carries the socket's cumulative drop count (a u32 that may wrap); the
 * kernel only attaches it once it is non-zero. Add the growth since the last value. */
static void
note_drops(ListenSock *s, struct msghdr *mh)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SO_RXQ_OVFL ||
		    cm->cmsg_len < CMSG_LEN(sizeof(guint32)))
			continue;
		guint32 v;
		memcpy(&v, CMSG_DATA(cm), sizeof v);
		if ((gint32)(v - s->last_drops) > 0) {
			s->owner->stats.kernel_drops += (guint32)(v - s->last_drops);
			s->last_drops = v;
		}
	}
}

static void
log_recv_error(Listener *l, ListenSock *s, int err)
{
	gint64 now = g_get_monotonic_time();

	/* Rate-limited: one line a minute at most. */
	if (l->last_err_log_us != 0 && now - l->last_err_log_us < 60 * G_USEC_PER_SEC)
		return;
	l->last_err_log_us = now;
	g_warning("listen %s: recvmmsg: %s (%" G_GUINT64_FORMAT " errors so far)", s->name,
		  g_strerror(err), l->stats.recv_errors);
}

/* Drain up to LISTENER_MAX_BATCHES batches from one socket. Returns the datagrams read;
 * *busy says the last batch was full (more are waiting). */
static guint
receive(ListenSock *s, gboolean *busy)
{
	Listener *l = s->owner;
	guint total = 0;

	*busy = FALSE;
	for (guint b = 0; b < LISTENER_MAX_BATCHES; b++) {
		for (guint i = 0; i < LISTENER_BATCH; i++) {
			l->msgs[i].msg_hdr.msg_namelen = sizeof l->names[i];
			l->msgs[i].msg_hdr.msg_controllen = sizeof l->cmsg[i].buf;
			l->msgs[i].msg_hdr.msg_flags = 0;
			l->msgs[i].msg_len = 0;
		}
		int n = recvmmsg(s->fd, l->msgs, LISTENER_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				l->stats.recv_errors++;
				log_recv_error(l, s, errno);
			}
			return total;
		}
		if (n == 0)
			return total;
		total += (guint)n;
		l->stats.batches++;
		gint64 now_ms = g_get_real_time() / 1000;
		for (int i = 0; i < n; i++) {
			struct msghdr *mh = &l->msgs[i].msg_hdr;
			guint8 addr[16];
			guint16 port;

			note_drops(s, mh);
			if (mh->msg_flags & MSG_TRUNC) {
				l->stats.truncated++;
				continue;
			}
			if (!peer_addr(&l->names[i], mh->msg_namelen, addr, &port)) {
				l->stats.recv_errors++;
				continue;
			}
			l->stats.datagrams++;
			l->stats.bytes += l->msgs[i].msg_len;
			if (l->collector != NULL)
				collector_input(l->collector, addr, port, l->iov[i].iov_base,
						l->msgs[i].msg_len, now_ms);
		}
		if (l->out != NULL)
			flow_batch_flush(l->out);
		if (n < LISTENER_BATCH)
			return total; /* the queue is empty: saves one EAGAIN call */
	}
	*busy = TRUE;
	return total;
}

/* Wakeups cost more than decoding at moderate rates (bench/README.md: ~20 us each on a VM,
 * one per datagram when they trickle in). So after a partial batch the fd is not polled;
 * the socket is read again a little later, when a batch has gathered in the kernel's
 * buffer. An empty read goes back to polling (no wakeups when idle); a full batch keeps
 * reading at once.
 *
 * The delay adapts to the arrival rate seen on the last read: long enough for about
 * LISTENER_COALESCE_TARGET datagrams, between LISTENER_COALESCE_MIN_US and _MAX_US (or
 * _BULK_US when the last wakeup read at least a full recvmmsg batch: a steady flow, not a
 * trickle or the tail of a burst), and never longer than it takes to fill a quarter of the
 * socket's receive buffer (counting LISTENER_TRUESIZE bytes of kernel memory per datagram),
 * so a small buffer (an unprivileged daemon without SO_RCVBUFFORCE) is read often enough
 * not to overflow. The price is alert latency: at most _BULK_US more under a steady flow
 * of about 6,400 datagrams a second or more (170k records/s of v9), _MAX_US below it,
 * against the 15-60 s an exporter holds a flow before it exports it. A target of 1,024
 * datagrams (two wakeups' reads back to back) and 40 ms under a steady flow, instead of
 * 256 and 10 ms, cut the daemon's CPU by 21 % at 1 M records/s and 29 % at 200k under the
 * bot-heavy mix (bench/README.md, "Issue 14, round 5"): 200-400 us of CPU saved per wakeup
 * saved on this VM. A trickle keeps the 10 ms: waiting longer there saves little CPU and a
 * burst's crossing datagram would wait for it. */
#define LISTENER_COALESCE_MIN_US 1000
#define LISTENER_COALESCE_MAX_US 10000
#define LISTENER_COALESCE_BULK_US 40000
#define LISTENER_COALESCE_TARGET (LISTENER_BATCH * LISTENER_MAX_BATCHES * 2)
#define LISTENER_TRUESIZE 4096

gint64
listener_coalesce_delay_us(guint got, gint64 elapsed_us, gsize rcvbuf)
{
	if (got == 0 || elapsed_us <= 0 || elapsed_us > G_USEC_PER_SEC)
		return LISTENER_COALESCE_MIN_US; /* no recent read: no rate to go by */
	/* datagrams per second on the last interval */
	double rate = (double)got * G_USEC_PER_SEC / (double)elapsed_us;
	double want = LISTENER_COALESCE_TARGET / rate * G_USEC_PER_SEC;
	double room = (double)rcvbuf / LISTENER_TRUESIZE / 4 / rate * G_USEC_PER_SEC;
	double delay = CLAMP(want, LISTENER_COALESCE_MIN_US,
			     got >= LISTENER_BATCH ? LISTENER_COALESCE_BULK_US
						   : LISTENER_COALESCE_MAX_US);
	/* the buffer wins over the minimum: below 1 ms of room, poll (delay 0) */
	return (gint64)MIN(delay, room);
}

static gint64
coalesce_delay(ListenSock *s, guint got, gint64 now_us)
{
	gint64 elapsed = now_us - s->last_read_us;
	s->last_read_us = now_us;
	return listener_coalesce_delay_us(got, elapsed, s->rcvbuf);
}

static gboolean
on_readable(gpointer user_data)
{
	ListenSock *s = user_data;
	gboolean busy;
	guint got = receive(s, &busy);

	if (got > 0 && !busy) {
		gint64 now = g_source_get_time(s->source);
		gint64 delay = coalesce_delay(s, got, now);
		if (delay > 0) {
			g_source_modify_unix_fd(s->source, s->fd_tag, 0);
			g_source_set_ready_time(s->source, now + delay);
			return G_SOURCE_CONTINUE;
		}
	}
	g_source_modify_unix_fd(s->source, s->fd_tag, G_IO_IN);
	g_source_set_ready_time(s->source, busy ? 0 : -1);
	return G_SOURCE_CONTINUE;
}

static gboolean
sock_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
	(void)source;
	return callback(user_data);
}

static GSourceFuncs sock_funcs = {.dispatch = sock_dispatch};

void
listener_detach(Listener *l)
{
	for (guint i = 0; i < l->socks->len; i++) {
		ListenSock *s = g_ptr_array_index(l->socks, i);
		if (s->source == NULL)
			continue;
		g_source_destroy(s->source);
		g_clear_pointer(&s->source, g_source_unref);
	}
}

void
listener_attach(Listener *l, Collector *c, FlowBatch *out, GMainContext *ctx)
{
	listener_detach(l);
	l->collector = c;
	l->out = out;
	for (guint i = 0; i < l->socks->len; i++) {
		ListenSock *s = g_ptr_array_index(l->socks, i);
		s->source = g_source_new(&sock_funcs, sizeof(GSource));
		s->fd_tag = g_source_add_unix_fd(s->source, s->fd, G_IO_IN);
		g_source_set_callback(s->source, on_readable, s, NULL);
		g_source_set_name(s->source, "spamflow listener");
		g_source_attach(s->source, ctx);
	}
}
