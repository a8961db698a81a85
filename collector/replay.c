/* Offline replay of captured export traffic: libpcap reads the pcap/pcapng records, and a
 * pure parser (every byte through a Cursor) peels link layer (Ethernet with VLAN tags, Linux
 * SLL/SLL2, raw IP, BSD loopback), IPv4/IPv6 and UDP to yield datagrams to any port. Packets
 * that are not whole UDP datagrams are counted by reason and skipped. */
#include "replay.h"

#include "cursor.h"
#include "flow.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100 /* IEEE 802.1Q */
#define ETHERTYPE_QINQ 0x88a8 /* IEEE 802.1ad */
#define ETHERTYPE_QINQ_OLD 0x9100
#define MAX_VLAN_TAGS 8
#define MAX_IPV6_EXT 16
#define LINKTYPE_RAW 101 /* the file-format value; libpcap maps it to DLT_RAW */

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60

/* clang-format off */
G_DEFINE_QUARK(replay-error-quark, replay_error)
/* clang-format on */

struct Replay {
	pcap_t *pcap;
	char *path;
	int linktype;
	gboolean done;
	ReplayStats stats;
};

const char *
replay_result_name(ReplayResult r)
{
	switch (r) {
	case REPLAY_OK:
		return "ok";
	case REPLAY_NOT_IP:
		return "not_ip";
	case REPLAY_NOT_UDP:
		return "non_udp";
	case REPLAY_FRAGMENT:
		return "fragment";
	case REPLAY_TRUNCATED:
		return "truncated";
	case REPLAY_BAD_HEADER:
		return "bad_header";
	case REPLAY_BAD_LINKTYPE:
		return "bad_linktype";
	case REPLAY_RESULT_N:
		break;
	}
	return "unknown";
}

/* c holds the IP payload. by_capture: its end is where the capture stopped (IP length 0 as
 * with segmentation offload), not where the IP header says the packet ends. */
static ReplayResult
parse_udp(Cursor *c, gboolean by_capture, ReplayDatagram *out)
{
	guint16 sport, dport, ulen, csum;

	if (!cursor_u16(c, &sport) || !cursor_u16(c, &dport) || !cursor_u16(c, &ulen) ||
	    !cursor_u16(c, &csum))
		return by_capture ? REPLAY_TRUNCATED : REPLAY_BAD_HEADER;
	/* RFC 768: the length includes the 8-byte header (0 is an IPv6 jumbogram: refused). */
	if (ulen < 8)
		return REPLAY_BAD_HEADER;
	if ((gsize)ulen - 8 > cursor_left(c))
		return by_capture ? REPLAY_TRUNCATED : REPLAY_BAD_HEADER;
	out->port = sport;
	out->dst_port = dport;
	out->payload = cursor_ptr(c);
	out->len = (gsize)ulen - 8;
	return REPLAY_OK;
}

static ReplayResult
parse_ipv4(Cursor *c, ReplayDatagram *out)
{
	guint8 vihl, tos, ttl, proto;
	guint16 total, id, frag, csum;
	guint8 src[4], dst[4];

	if (!cursor_u8(c, &vihl) || !cursor_u8(c, &tos) || !cursor_u16(c, &total) ||
	    !cursor_u16(c, &id) || !cursor_u16(c, &frag) || !cursor_u8(c, &ttl) ||
	    !cursor_u8(c, &proto) || !cursor_u16(c, &csum) || !cursor_bytes(c, src, 4) ||
	    !cursor_bytes(c, dst, 4))
		return REPLAY_TRUNCATED;
	gsize ihl = (gsize)(vihl & 0x0f) * 4;
	/* RFC 791: IHL counts 32-bit words, at least 5; total length includes the header. */
	if ((vihl >> 4) != 4 || ihl < 20 || (total != 0 && total < ihl))
		return REPLAY_BAD_HEADER;
	/* MF set or a fragment offset: a piece of a datagram we do not reassemble. */
	if ((frag & 0x3fff) != 0)
		return REPLAY_FRAGMENT;
	if (proto != IPPROTO_UDP_)
		return REPLAY_NOT_UDP;
	if (!cursor_skip(c, ihl - 20))
		return REPLAY_TRUNCATED;

	gsize avail = cursor_left(c);
	gsize plen = avail;
	gboolean by_capture = TRUE;
	/* Total length 0: captured on the sender before segmentation offload filled it in. */
	if (total != 0) {
		plen = (gsize)total - ihl;
		by_capture = FALSE;
		if (plen > avail)
			return REPLAY_TRUNCATED;
	}
	Cursor pl;
	if (!cursor_sub(c, plen, &pl))
		return REPLAY_TRUNCATED;
	flow_addr_set_v4(out->addr, src);
	flow_addr_set_v4(out->dst_addr, dst);
	return parse_udp(&pl, by_capture, out);
}

static ReplayResult
parse_ipv6(Cursor *c, ReplayDatagram *out)
{
	guint32 vtf;
	guint16 plen;
	guint8 nxt, hlim;
	guint8 src[16], dst[16];

	if (!cursor_u32(c, &vtf) || !cursor_u16(c, &plen) || !cursor_u8(c, &nxt) ||
	    !cursor_u8(c, &hlim) || !cursor_bytes(c, src, 16) || !cursor_bytes(c, dst, 16))
		return REPLAY_TRUNCATED;
	if ((vtf >> 28) != 6)
		return REPLAY_BAD_HEADER;

	gsize avail = cursor_left(c);
	gsize len = avail;
	gboolean by_capture = TRUE; /* payload length 0: jumbogram or offload, trust capture */
	gboolean cut = FALSE;	    /* the capture ends before the payload does */
	if (plen != 0) {
		by_capture = FALSE;
		len = plen;
		if (len > avail) {
			len = avail;
			cut = TRUE;
		}
	}
	Cursor pl;
	if (!cursor_sub(c, len, &pl))
		return REPLAY_TRUNCATED;
	ReplayResult short_hdr = (by_capture || cut) ? REPLAY_TRUNCATED : REPLAY_BAD_HEADER;

	/* RFC 8200 4: walk the extension headers we can skip to find the upper layer. */
	for (guint n = 0;; n++) {
		guint8 next, hlen;
		guint16 fo;
		guint32 ident;

		if (n == MAX_IPV6_EXT)
			return REPLAY_BAD_HEADER;
		if (nxt == IPPROTO_HOPOPTS_ || nxt == IPPROTO_ROUTING_ || nxt == IPPROTO_DSTOPTS_) {
			/* RFC 8200 4.3-4.6: length in 8-octet units, not counting the first 8. */
			if (!cursor_u8(&pl, &next) || !cursor_u8(&pl, &hlen) ||
			    !cursor_skip(&pl, ((gsize)hlen + 1) * 8 - 2))
				return short_hdr;
		} else if (nxt == IPPROTO_AH_) {
			/* RFC 4302 2.2: length in 4-octet units, minus 2. */
			if (!cursor_u8(&pl, &next) || !cursor_u8(&pl, &hlen) ||
			    !cursor_skip(&pl, ((gsize)hlen + 2) * 4 - 2))
				return short_hdr;
		} else if (nxt == IPPROTO_FRAGMENT_) {
			if (!cursor_u8(&pl, &next) || !cursor_u8(&pl, &hlen) ||
			    !cursor_u16(&pl, &fo) || !cursor_u32(&pl, &ident))
				return short_hdr;
			/* RFC 6946: offset 0 and M clear is an atomic fragment, a whole packet. */
			if ((fo & 0xfff9) != 0)
				return REPLAY_FRAGMENT;
		} else {
			break;
		}
		nxt = next;
	}
	if (nxt != IPPROTO_UDP_)
		return REPLAY_NOT_UDP;
	if (cut)
		return REPLAY_TRUNCATED;
	memcpy(out->addr, src, 16);
	memcpy(out->dst_addr, dst, 16);
	return parse_udp(&pl, by_capture, out);
}

/* Raw IP: the version nibble says which. */
static ReplayResult
parse_ip(Cursor *c, ReplayDatagram *out)
{
	if (cursor_left(c) == 0)
		return REPLAY_TRUNCATED;
	switch (cursor_ptr(c)[0] >> 4) {
	case 4:
		return parse_ipv4(c, out);
	case 6:
		return parse_ipv6(c, out);
	default:
		return REPLAY_NOT_IP;
	}
}

/* An EtherType, after any number (bounded) of 802.1Q / 802.1ad tags. */
static ReplayResult
parse_ethertype(Cursor *c, guint16 type, ReplayDatagram *out)
{
	for (guint n = 0;
	     type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD; n++) {
		if (n == MAX_VLAN_TAGS)
			return REPLAY_BAD_HEADER;
		/* Tag: 2 bytes TCI, then the next EtherType. */
		if (!cursor_skip(c, 2) || !cursor_u16(c, &type))
			return REPLAY_TRUNCATED;
	}
	switch (type) {
	case ETHERTYPE_IPV4:
		return parse_ipv4(c, out);
	case ETHERTYPE_IPV6:
		return parse_ipv6(c, out);
	default:
		return REPLAY_NOT_IP;
	}
}

/* BSD loopback: a 4-byte address family in the capturing host's byte order (DLT_NULL) or
 * network order (DLT_LOOP). AF_INET6 differs between systems. */
static ReplayResult
parse_null(Cursor *c, gboolean network_order, ReplayDatagram *out)
{
	guint32 af;

	if (!cursor_u32(c, &af))
		return REPLAY_TRUNCATED;
	if (!network_order && (af & 0xffff0000u) != 0)
		af = GUINT32_SWAP_LE_BE(af);
	switch (af) {
	case 2: /* AF_INET everywhere */
		return parse_ipv4(c, out);
	case 10: /* Linux */
	case 24: /* NetBSD, OpenBSD, BSD/OS */
	case 28: /* FreeBSD, DragonFly */
	case 30: /* Darwin */
		return parse_ipv6(c, out);
	default:
		return REPLAY_NOT_IP;
	}
}

gboolean
replay_linktype_supported(int linktype)
{
	switch (linktype) {
	case DLT_NULL:
	case DLT_LOOP:
	case DLT_EN10MB:
	case DLT_LINUX_SLL:
	case DLT_LINUX_SLL2:
	case DLT_RAW:
	case LINKTYPE_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		return TRUE;
	default:
		return FALSE;
	}
}

ReplayResult
replay_parse_packet(int linktype, const guint8 *pkt, gsize caplen, ReplayDatagram *out)
{
	Cursor c;
	guint16 type;

	memset(out, 0, sizeof *out);
	cursor_init(&c, pkt, pkt != NULL ? caplen : 0);
	switch (linktype) {
	case DLT_EN10MB:
		/* destination and source MAC, then the EtherType */
		if (!cursor_skip(&c, 12) || !cursor_u16(&c, &type))
			return REPLAY_TRUNCATED;
		if (type < 0x0600)
			return REPLAY_NOT_IP; /* an 802.3 length: LLC frame */
		return parse_ethertype(&c, type, out);
	case DLT_LINUX_SLL:
		/* packet type, ARPHRD type, address length, 8 address bytes, protocol */
		if (!cursor_skip(&c, 14) || !cursor_u16(&c, &type))
			return REPLAY_TRUNCATED;
		return parse_ethertype(&c, type, out);
	case DLT_LINUX_SLL2:
		/* protocol, reserved, ifindex, ARPHRD type, packet type, address length,
		 * 8 address bytes */
		if (!cursor_u16(&c, &type) || !cursor_skip(&c, 18))
			return REPLAY_TRUNCATED;
		return parse_ethertype(&c, type, out);
	case DLT_RAW:
	case LINKTYPE_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		return parse_ip(&c, out);
	case DLT_NULL:
		return parse_null(&c, FALSE, out);
	case DLT_LOOP:
		return parse_null(&c, TRUE, out);
	default:
		return REPLAY_BAD_LINKTYPE;
	}
}

/* A gzip stream read through stdio, so libpcap reads a .pcap.gz as it reads a file. zlib
 * passes data that is not gzip through unchanged, which is how standard input (which
 * cannot be peeked at and rewound) is read either way. */
static ssize_t
gz_read(void *cookie, char *buf, size_t n)
{
	int got = gzread(cookie, buf, (unsigned)MIN(n, (size_t)G_MAXINT));
	if (got < 0) {
		errno = EIO;
		return -1;
	}
	return got;
}

static int
gz_close(void *cookie)
{
	return gzclose(cookie) == Z_OK ? 0 : EOF;
}

/* Takes fd: it is closed whatever happens. */
static FILE *
gz_fopen(int fd)
{
	if (fd < 0)
		return NULL;
	gzFile gz = gzdopen(fd, "rb");
	if (gz == NULL) {
		close(fd);
		return NULL;
	}
	gzbuffer(gz, 256 * 1024);
	const cookie_io_functions_t io = {.read = gz_read, .close = gz_close};
	FILE *fp = fopencookie(gz, "rb", io);
	if (fp == NULL)
		gzclose(gz);
	return fp;
}

/* The capture as a stdio stream: a file as it is, a gzip-compressed file (by its magic, not
 * its name) or standard input ("-", compressed or not) through zlib. */
static FILE *
capture_fopen(const char *path, GError **error)
{
	FILE *fp;
	guint8 magic[2] = {0, 0};

	if (g_strcmp0(path, "-") == 0) {
		fp = gz_fopen(dup(STDIN_FILENO));
		if (fp == NULL)
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
				    "capture '-': cannot read standard input");
		return fp;
	}
	fp = fopen(path, "rb");
	if (fp == NULL) {
		int saved = errno;
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
			    "capture '%s': %s", path, g_strerror(saved));
		return NULL;
	}
	if (fread(magic, 1, 2, fp) != 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
		rewind(fp);
		return fp;
	}
	/* the fd shares its offset with fp, which has read ahead: start zlib at byte 0 */
	int fd = dup(fileno(fp));
	fclose(fp);
	if (fd >= 0 && lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		fd = -1;
	}
	fp = gz_fopen(fd);
	if (fp == NULL)
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
			    "capture '%s': cannot open it as gzip", path);
	return fp;
}

Replay *
replay_open(const char *path, GError **error)
{
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	FILE *fp;
	pcap_t *p;

	fp = capture_fopen(path, error);
	if (fp == NULL)
		return NULL;
	p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
	if (p == NULL) {
		fclose(fp);
		g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_OPEN, "capture '%s': %s", path,
			    errbuf);
		return NULL;
	}
	int lt = pcap_datalink(p);
	if (!replay_linktype_supported(lt)) {
		const char *name = pcap_datalink_val_to_name(lt);
		g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_LINKTYPE,
			    "capture '%s': unsupported link type %s (%d)", path,
			    name != NULL ? name : "?", lt);
		pcap_close(p);
		return NULL;
	}
	Replay *r = g_new0(Replay, 1);
	r->pcap = p;
	r->path = g_strdup(path);
	r->linktype = lt;
	return r;
}

void
replay_free(Replay *r)
{
	if (r == NULL)
		return;
	pcap_close(r->pcap);
	g_free(r->path);
	g_free(r);
}

gboolean
replay_next(Replay *r, ReplayDatagram *out, GError **error)
{
	while (!r->done) {
		struct pcap_pkthdr *h;
		const u_char *data;
		int rc = pcap_next_ex(r->pcap, &h, &data);

		if (rc == PCAP_ERROR_BREAK) {
			r->done = TRUE; /* end of file */
			break;
		}
		if (rc < 0) {
			r->done = TRUE;
			r->stats.read_errors++;
			g_set_error(error, REPLAY_ERROR, REPLAY_ERROR_READ, "capture '%s': %s",
				    r->path, pcap_geterr(r->pcap));
			break;
		}
		if (rc == 0)
			continue;
		r->stats.packets++;
		switch (replay_parse_packet(r->linktype, data, h->caplen, out)) {
		case REPLAY_OK:
			r->stats.datagrams++;
			out->ts_ms = (gint64)h->ts.tv_sec * 1000 + (gint64)h->ts.tv_usec / 1000;
			return TRUE;
		case REPLAY_NOT_IP:
			r->stats.not_ip++;
			break;
		case REPLAY_NOT_UDP:
			r->stats.non_udp++;
			break;
		case REPLAY_FRAGMENT:
			r->stats.fragments++;
			break;
		case REPLAY_TRUNCATED:
			r->stats.truncated++;
			break;
		case REPLAY_BAD_HEADER:
		case REPLAY_BAD_LINKTYPE:
		case REPLAY_RESULT_N:
			r->stats.bad_headers++;
			break;
		}
	}
	return FALSE;
}

int
replay_linktype(const Replay *r)
{
	return r->linktype;
}

const ReplayStats *
replay_stats(const Replay *r)
{
	return &r->stats;
}

void
replay_stats_add(ReplayStats *sum, const ReplayStats *s)
{
	sum->packets += s->packets;
	sum->datagrams += s->datagrams;
	sum->not_ip += s->not_ip;
	sum->non_udp += s->non_udp;
	sum->fragments += s->fragments;
	sum->truncated += s->truncated;
	sum->bad_headers += s->bad_headers;
	sum->read_errors += s->read_errors;
}
