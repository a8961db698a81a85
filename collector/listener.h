/* The UDP listener: binds the export sockets (IPv4 and IPv6), receives datagrams in
 * recvmmsg batches from the glib main loop and feeds them to collector_input(). Reads the
 * kernel's per-socket drop counter (SO_RXQ_OVFL) so lost datagrams are visible. */
#pragma once

#include "collector.h"

#include <glib.h>
#include <sys/socket.h>

/* Used when listener_new() gets no address list. */
/* 2055: the usual NetFlow/IPFIX port; 6343: sFlow's IANA port. Any port takes every
 * format. */
#define LISTENER_DEFAULT_ADDRS "0.0.0.0:2055", "[::]:2055", "0.0.0.0:6343", "[::]:6343"
#define LISTENER_DEFAULT_RCVBUF ((gsize)32 * 1024 * 1024)

typedef struct {
	guint64 datagrams;    /* handed to the collector */
	guint64 bytes;	      /* their payload bytes */
	guint64 recv_errors;  /* recvmmsg() failures other than "nothing to read" */
	guint64 kernel_drops; /* SO_RXQ_OVFL: dropped by the kernel, socket buffer full (sum) */
	guint64 truncated;    /* MSG_TRUNC: larger than the receive buffer, skipped */
	guint64 batches;      /* recvmmsg() calls that returned datagrams */
} ListenerStats;

typedef struct Listener Listener;

#define LISTENER_ERROR (listener_error_quark())
GQuark listener_error_quark(void);
typedef enum {
	LISTENER_ERROR_ADDRESS, /* the address text does not parse */
	LISTENER_ERROR_SOCKET,	/* socket(), setsockopt() or bind() failed */
} ListenerError;

/* Parse "a.b.c.d:port" or "[v6addr]:port" (numeric only; port 0..65535, 0 = ephemeral). */
gboolean listener_parse_address(const char *text, struct sockaddr_storage *ss, socklen_t *sslen,
				GError **error) G_GNUC_WARN_UNUSED_RESULT;

/* Bind one non-blocking UDP socket per address (addrs NULL-terminated; NULL means
 * LISTENER_DEFAULT_ADDRS). rcvbuf_bytes 0 means LISTENER_DEFAULT_RCVBUF. */
Listener *listener_new(const char *const *addrs, gsize rcvbuf_bytes,
		       GError **error) G_GNUC_WARN_UNUSED_RESULT;
void listener_free(Listener *l);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Listener, listener_free)

guint listener_n_sockets(const Listener *l);
/* The bound port of socket i (the real one when 0 was asked for); 0 when i is out of range. */
guint16 listener_local_port(const Listener *l, guint i);
/* "addr:port" of socket i as bound, for logs; NULL when i is out of range. */
const char *listener_address(const Listener *l, guint i);
/* Receive buffer of socket i as the kernel reports it (getsockopt SO_RCVBUF, halved). */
gsize listener_rcvbuf(const Listener *l, guint i);
/* After a wakeup that read `got` datagrams (a partial batch), elapsed_us after the one
 * before, on a socket of rcvbuf bytes: microseconds until the socket is read again (not
 * polled meanwhile; listener.c, "Wakeups cost more than decoding"). Exposed for the unit
 * test. */
gint64 listener_coalesce_delay_us(guint got, gint64 elapsed_us, gsize rcvbuf);

/* Start receiving from ctx (NULL = the global default context): every datagram goes to
 * collector_input(c, ...), and out (the collector's output batch) is flushed after each
 * receive batch. Calling it again moves the sources. */
void listener_attach(Listener *l, Collector *c, FlowBatch *out, GMainContext *ctx);
/* Stop receiving (the sockets stay bound). */
void listener_detach(Listener *l);

const ListenerStats *listener_stats(const Listener *l);
