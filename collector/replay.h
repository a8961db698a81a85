/* Offline replay: reads a pcap or pcapng capture of export traffic and yields the UDP
 * datagrams in it, with the capture time, so they can go through collector_input() exactly
 * as live datagrams do. Packet parsing is a pure function a fuzzer can call directly. */
#pragma once

#include <glib.h>

/* What replay_parse_packet() made of one captured packet. Each value is a counter. */
typedef enum {
	REPLAY_OK = 0,
	REPLAY_NOT_IP,	     /* link layer carries something else (ARP, LLDP, ...) */
	REPLAY_NOT_UDP,	     /* IP, but not UDP */
	REPLAY_FRAGMENT,     /* an IPv4 or IPv6 fragment: not reassembled */
	REPLAY_TRUNCATED,    /* captured bytes end before the headers say (snaplen) */
	REPLAY_BAD_HEADER,   /* headers inconsistent with themselves */
	REPLAY_BAD_LINKTYPE, /* a link type this reader does not know */
	REPLAY_RESULT_N
} ReplayResult;

const char *replay_result_name(ReplayResult r);

typedef struct {
	guint8 addr[16]; /* source (the exporter), IPv4-mapped for IPv4 */
	guint16 port;
	guint8 dst_addr[16];
	guint16 dst_port;
	const guint8 *payload; /* points into the packet: valid until the next replay_next() */
	gsize len;
	gint64 ts_ms; /* capture time, Unix ms (set by replay_next(), not by the parser) */
} ReplayDatagram;

typedef struct {
	guint64 packets;   /* read from the file */
	guint64 datagrams; /* UDP datagrams yielded */
	guint64 not_ip;
	guint64 non_udp;
	guint64 fragments;
	guint64 truncated;
	guint64 bad_headers;
	guint64 read_errors; /* the file ended in the middle of a record, or similar */
} ReplayStats;

/* Parse one captured packet of the given link type (a DLT_ value, as pcap_datalink()
 * returns). On REPLAY_OK, out holds the UDP datagram (ts_ms untouched). */
ReplayResult replay_parse_packet(int linktype, const guint8 *pkt, gsize caplen,
				 ReplayDatagram *out);
gboolean replay_linktype_supported(int linktype);

typedef struct Replay Replay;

#define REPLAY_ERROR (replay_error_quark())
GQuark replay_error_quark(void);
typedef enum {
	REPLAY_ERROR_OPEN,     /* not a capture libpcap can read */
	REPLAY_ERROR_LINKTYPE, /* a link type this reader does not know */
	REPLAY_ERROR_READ,     /* a record could not be read (file cut off) */
} ReplayError;

/* Fails on a missing or unreadable file and on an unsupported link type. */
Replay *replay_open(const char *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void replay_free(Replay *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Replay, replay_free)

/* The next UDP datagram. FALSE at the end of the capture; when the end is a read error
 * (e.g. a file cut off mid-record) error is set too, and read_errors counted. */
gboolean replay_next(Replay *r, ReplayDatagram *out, GError **error);

int replay_linktype(const Replay *r);
const ReplayStats *replay_stats(const Replay *r);
void replay_stats_add(ReplayStats *sum, const ReplayStats *s);
