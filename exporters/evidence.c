/* Evidence files: the flows behind an alert as an IPFIX file (RFC 5655: a stream of IPFIX
 * messages in a file) through libfixbuf's exporter, one file per raised or updated alert,
 * named after the event, written aside and linked into place so readers never see half a
 * file, and the directory pruned by age and total size after each write. */
#include "evidence.h"

#include <errno.h>
#include <fcntl.h>
#include <fixbuf/public.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* clang-format off */
G_DEFINE_QUARK(evidence-error-quark, evidence_error)
/* clang-format on */

/* Template selection bits (fbInfoElementSpec_t flags): the flow's address family and the
 * exporter's, so each record carries only the address IEs of its family. */
enum { EV_F4 = 1, EV_F6 = 2, EV_E4 = 4, EV_E6 = 8, EV_ALL = 15 };
#define EV_TID_INTERNAL 256
#define EV_TID(f6, e6) ((guint16)(256 + ((f6) ? 2 : 0) + ((e6) ? 1 : 0)))

/* The record as libfixbuf reads it (internal template): spec order = struct order. */
typedef struct {
	guint64 start_ms;     /* flowStartMilliseconds (152), 0 = not exported */
	guint64 end_ms;	      /* flowEndMilliseconds (153) */
	guint64 recv_ms;      /* collectionTimeMilliseconds (258): when spamflowd received it */
	guint64 packets;      /* packetDeltaCount (2), as exported (not scaled by sampling) */
	guint64 bytes;	      /* octetDeltaCount (1) */
	guint64 rev_packets;  /* reversePacketDeltaCount (RFC 5103, PEN 29305) */
	guint64 rev_bytes;    /* reverseOctetDeltaCount */
	guint8 src6[16];      /* sourceIPv6Address (27) */
	guint8 dst6[16];      /* destinationIPv6Address (28) */
	guint8 nat_src6[16];  /* postNATSourceIPv6Address (281) */
	guint8 nat_dst6[16];  /* postNATDestinationIPv6Address (282) */
	guint8 exporter6[16]; /* exporterIPv6Address (131) */
	guint32 src4;	      /* sourceIPv4Address (8) */
	guint32 dst4;	      /* destinationIPv4Address (12) */
	guint32 nat_src4;     /* postNATSourceIPv4Address (225) */
	guint32 nat_dst4;     /* postNATDestinationIPv4Address (226) */
	guint32 exporter4;    /* exporterIPv4Address (130) */
	guint32 domain;	      /* observationDomainId (149) of the original export */
	guint32 sampling;     /* samplingInterval (34): 1 = unsampled */
	guint16 sport;	      /* sourceTransportPort (7) */
	guint16 dport;	      /* destinationTransportPort (11) */
	guint16 nat_sport;    /* postNAPTSourceTransportPort (227) */
	guint16 nat_dport;    /* postNAPTDestinationTransportPort (228) */
	guint16 tcp_flags;    /* tcpControlBits (6) */
	guint8 proto;	      /* protocolIdentifier (4) */
	guint8 fw_event;      /* firewallEvent (233), 0 = none */
} EvRec;
G_STATIC_ASSERT(sizeof(EvRec) == 176);

static fbInfoElementSpec_t ev_spec[] = {
    {"flowStartMilliseconds", 8, 0},
    {"flowEndMilliseconds", 8, 0},
    {"collectionTimeMilliseconds", 8, 0},
    {"packetDeltaCount", 8, 0},
    {"octetDeltaCount", 8, 0},
    {"reversePacketDeltaCount", 8, 0},
    {"reverseOctetDeltaCount", 8, 0},
    {"sourceIPv6Address", 16, EV_F6},
    {"destinationIPv6Address", 16, EV_F6},
    {"postNATSourceIPv6Address", 16, EV_F6},
    {"postNATDestinationIPv6Address", 16, EV_F6},
    {"exporterIPv6Address", 16, EV_E6},
    {"sourceIPv4Address", 4, EV_F4},
    {"destinationIPv4Address", 4, EV_F4},
    {"postNATSourceIPv4Address", 4, EV_F4},
    {"postNATDestinationIPv4Address", 4, EV_F4},
    {"exporterIPv4Address", 4, EV_E4},
    {"observationDomainId", 4, 0},
    {"samplingInterval", 4, 0},
    {"sourceTransportPort", 2, 0},
    {"destinationTransportPort", 2, 0},
    {"postNAPTSourceTransportPort", 2, 0},
    {"postNAPTDestinationTransportPort", 2, 0},
    {"tcpControlBits", 2, 0},
    {"protocolIdentifier", 1, 0},
    {"firewallEvent", 1, 0},
    FB_IESPEC_NULL,
};

struct Evidence {
	char *dir;
	gint64 max_age_s;
	guint64 max_bytes;
	fbInfoModel_t *model;
	EvidenceStats st;
};

Evidence *
evidence_new(const char *dir, gint64 max_age_s, guint64 max_bytes, GError **error)
{
	if (dir == NULL || dir[0] == '\0') {
		g_set_error_literal(error, EVIDENCE_ERROR, EVIDENCE_ERROR_DIR,
				    "evidence directory: empty path");
		return NULL;
	}
	if (g_mkdir_with_parents(dir, 0750) != 0) {
		int err = errno;
		g_set_error(error, EVIDENCE_ERROR, EVIDENCE_ERROR_DIR,
			    "evidence directory '%s': %s", dir, g_strerror(err));
		return NULL;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		int err = errno;
		g_set_error(error, EVIDENCE_ERROR, EVIDENCE_ERROR_DIR,
			    "evidence directory '%s': %s", dir, g_strerror(err));
		return NULL;
	}
	Evidence *e = g_new0(Evidence, 1);
	e->dir = g_strdup(dir);
	e->max_age_s = max_age_s;
	e->max_bytes = max_bytes;
	e->model = fbInfoModelAlloc();
	evidence_prune(e, g_get_real_time() / G_USEC_PER_SEC, NULL);
	return e;
}

void
evidence_free(Evidence *e)
{
	if (e == NULL)
		return;
	if (e->model != NULL)
		fbInfoModelFree(e->model);
	g_free(e->dir);
	g_free(e);
}

const char *
evidence_dir(const Evidence *e)
{
	return e->dir;
}

static guint32
v4(const guint8 a[16])
{
	return (guint32)a[12] << 24 | (guint32)a[13] << 16 | (guint32)a[14] << 8 | a[15];
}

static void
fill_rec(EvRec *r, const Flow *f, const guint8 exporter[16])
{
	memset(r, 0, sizeof *r);
	r->start_ms = (guint64)MAX(f->start_ms, 0);
	r->end_ms = (guint64)MAX(f->end_ms, 0);
	r->recv_ms = (guint64)MAX(f->recv_ms, 0);
	r->packets = f->packets;
	r->bytes = f->bytes;
	r->rev_packets = f->rev_packets;
	r->rev_bytes = f->rev_bytes;
	if (flow_addr_is_v4(f->src) && flow_addr_is_v4(f->dst)) {
		r->src4 = v4(f->src);
		r->dst4 = v4(f->dst);
		if (f->has & FLOW_HAS_NAT) {
			r->nat_src4 = v4(f->nat_src);
			r->nat_dst4 = v4(f->nat_dst);
		}
	} else {
		memcpy(r->src6, f->src, 16);
		memcpy(r->dst6, f->dst, 16);
		if (f->has & FLOW_HAS_NAT) {
			memcpy(r->nat_src6, f->nat_src, 16);
			memcpy(r->nat_dst6, f->nat_dst, 16);
		}
	}
	if (flow_addr_is_v4(exporter))
		r->exporter4 = v4(exporter);
	else
		memcpy(r->exporter6, exporter, 16);
	r->domain = f->domain;
	r->sampling = MAX(f->sampling, 1u);
	r->sport = f->sport;
	r->dport = f->dport;
	if (f->has & FLOW_HAS_NAT) {
		r->nat_sport = f->nat_sport;
		r->nat_dport = f->nat_dport;
	}
	r->tcp_flags = (f->has & FLOW_HAS_TCP_FLAGS) ? f->tcp_flags : 0;
	r->proto = f->proto;
	r->fw_event = (f->has & FLOW_HAS_FW_EVENT) ? f->fw_event : 0;
}

/* One internal template (every IE) and four external ones (flow family x exporter family).
 * The session takes the templates. */
static fbSession_t *
make_session(Evidence *e, GError **error)
{
	fbSession_t *s = fbSessionAlloc(e->model);
	fbTemplate_t *t = fbTemplateAlloc(e->model);
	if (!fbTemplateAppendSpecArray(t, ev_spec, EV_ALL, error) ||
	    !fbSessionAddTemplate(s, TRUE, EV_TID_INTERNAL, t, error)) {
		fbTemplateFreeUnused(t);
		fbSessionFree(s);
		return NULL;
	}
	for (guint f6 = 0; f6 < 2; f6++) {
		for (guint e6 = 0; e6 < 2; e6++) {
			t = fbTemplateAlloc(e->model);
			guint32 flags = (f6 ? EV_F6 : EV_F4) | (e6 ? EV_E6 : EV_E4);
			if (!fbTemplateAppendSpecArray(t, ev_spec, flags, error) ||
			    !fbSessionAddTemplate(s, FALSE, EV_TID(f6, e6), t, error)) {
				fbTemplateFreeUnused(t);
				fbSessionFree(s);
				return NULL;
			}
		}
	}
	return s;
}

/* Write the records into fp; FALSE with error on any libfixbuf failure. */
static gboolean
write_ipfix(Evidence *e, FILE *fp, const AlertEvent *ev, const Flow *flows, guint n,
	    EvidenceExporterAddr exporter_addr, gpointer user_data, GError **error)
{
	fbSession_t *s = make_session(e, error);
	if (s == NULL)
		return FALSE;
	fbExporter_t *x = fbExporterAllocFP(fp);
	fBuf_t *b = fBufAllocForExport(s, x); /* owns s and x from here */
	gboolean ok = TRUE;

	/* export time: the event's, so a replay writes the same file every time */
	fBufSetExportTime(b, (guint32)(MAX(ev->time_ms, 0) / 1000));
	ok = fbSessionExportTemplates(s, error) &&
	     fBufSetInternalTemplate(b, EV_TID_INTERNAL, error);
	for (guint i = 0; ok && i < n; i++) {
		const Flow *f = &flows[i];
		guint8 exp[16] = {0};
		EvRec r;
		if (exporter_addr == NULL || !exporter_addr(f->exporter, exp, user_data)) {
			memset(exp, 0, 16);
			exp[10] = exp[11] = 0xff; /* unknown: 0.0.0.0 */
		}
		fill_rec(&r, f, exp);
		gboolean f6 = !(flow_addr_is_v4(f->src) && flow_addr_is_v4(f->dst));
		ok = fBufSetExportTemplate(b, EV_TID(f6, !flow_addr_is_v4(exp)), error) &&
		     fBufAppend(b, (guint8 *)&r, sizeof r, error);
	}
	if (ok)
		ok = fBufEmit(b, error);
	fBufFree(b);
	return ok;
}

static void
file_name(const AlertEvent *ev, char *buf, gsize len)
{
	char host[64], when[32];
	time_t t = (time_t)(ev->time_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y%m%dT%H%M%S", &tm);
	flow_addr_str(ev->host, host, sizeof host);
	for (char *p = host; *p != '\0'; p++) {
		if (*p == ':')
			*p = '_';
	}
	g_snprintf(buf, len, "%s.%03dZ-%s-%s", when, (int)(((ev->time_ms % 1000) + 1000) % 1000),
		   alert_reason_name(ev->reason), host);
}

gboolean
evidence_write(Evidence *e, const AlertEvent *ev, const Flow *flows, guint n,
	       EvidenceExporterAddr exporter_addr, gpointer user_data, char *path_out,
	       gsize path_len, GError **error)
{
	g_autofree char *tmp = g_build_filename(e->dir, ".evidence-XXXXXX", NULL);
	g_autoptr(GError) err = NULL;
	char base[160];
	int fd = g_mkstemp_full(tmp, O_WRONLY, 0640);

	if (path_out != NULL && path_len > 0)
		path_out[0] = '\0';
	if (fd < 0) {
		int en = errno;
		e->st.write_errors++;
		g_set_error(error, EVIDENCE_ERROR, EVIDENCE_ERROR_WRITE,
			    "evidence directory '%s': %s", e->dir, g_strerror(en));
		return FALSE;
	}
	FILE *fp = fdopen(fd, "wb");
	if (fp == NULL) {
		int en = errno;
		close(fd);
		unlink(tmp);
		e->st.write_errors++;
		g_set_error(error, EVIDENCE_ERROR, EVIDENCE_ERROR_WRITE, "%s: %s", tmp,
			    g_strerror(en));
		return FALSE;
	}
	gboolean ok = write_ipfix(e, fp, ev, flows, n, exporter_addr, user_data, &err);
	int en = 0;
	if (fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0)
		en = errno ? errno : EIO;
	if (fclose(fp) != 0 && en == 0)
		en = errno;
	if (!ok || en != 0) {
		unlink(tmp);
		e->st.write_errors++;
		file_name(ev, base, sizeof base);
		g_set_error(error, EVIDENCE_ERROR, EVIDENCE_ERROR_WRITE, "evidence file %s/%s: %s",
			    e->dir, base, err != NULL ? err->message : g_strerror(en));
		return FALSE;
	}

	/* link() refuses to replace: a name already taken gets a suffix */
	file_name(ev, base, sizeof base);
	g_autofree char *final = NULL;
	for (guint i = 1; i <= 100; i++) {
		g_autofree char *name = i == 1 ? g_strdup_printf("%s.ipfix", base)
					       : g_strdup_printf("%s-%u.ipfix", base, i);
		g_free(final);
		final = g_build_filename(e->dir, name, NULL);
		if (link(tmp, final) == 0) {
			en = 0;
			break;
		}
		en = errno;
		if (en != EEXIST)
			break;
	}
	if (en == EPERM || en == ENOTSUP) {
		/* a file system without hard links: rename (may replace a same-name file) */
		en = rename(tmp, final) == 0 ? 0 : errno;
	}
	unlink(tmp);
	if (en != 0) {
		e->st.write_errors++;
		g_set_error(error, EVIDENCE_ERROR, EVIDENCE_ERROR_WRITE, "evidence file %s: %s",
			    final, g_strerror(en));
		return FALSE;
	}
	e->st.files_written++;
	e->st.flows_written += n;
	if (path_out != NULL && path_len > 0)
		g_strlcpy(path_out, final, path_len);
	evidence_prune(e, g_get_real_time() / G_USEC_PER_SEC, final);
	return TRUE;
}

/* "20260115T100225.001Z-...ipfix": only what evidence_write() names is ever removed. */
static gboolean
name_is_ours(const char *n)
{
	static const char shape[] = "########T######.###Z-";
	if (strlen(n) <= sizeof shape - 1 + strlen(".ipfix") || !g_str_has_suffix(n, ".ipfix"))
		return FALSE;
	for (guint i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == '#' ? !g_ascii_isdigit(n[i]) : n[i] != shape[i])
			return FALSE;
	}
	return TRUE;
}

typedef struct {
	char *path;
	gint64 mtime;
	guint64 size;
} EvFile;

static gint
evfile_cmp(gconstpointer a, gconstpointer b)
{
	const EvFile *x = a, *y = b;
	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->path, y->path);
}

guint
evidence_prune(Evidence *e, gint64 now_s, const char *keep)
{
	g_autoptr(GDir) d = g_dir_open(e->dir, 0, NULL);
	g_autoptr(GArray) files = g_array_new(FALSE, FALSE, sizeof(EvFile));
	const char *name;
	guint removed = 0;
	guint64 total = 0;

	if (d == NULL)
		return 0;
	while ((name = g_dir_read_name(d)) != NULL) {
		gboolean tmp = g_str_has_prefix(name, ".evidence-");
		if (!tmp && !name_is_ours(name))
			continue;
		EvFile f = {g_build_filename(e->dir, name, NULL), 0, 0};
		struct stat st;
		if (lstat(f.path, &st) != 0 || !S_ISREG(st.st_mode)) {
			g_free(f.path);
			continue;
		}
		f.mtime = st.st_mtime;
		f.size = (guint64)st.st_size;
		if (tmp) {
			/* left by a crash mid-write: an hour is far longer than any write */
			if (now_s - f.mtime > 3600 && unlink(f.path) == 0)
				removed++;
			g_free(f.path);
			continue;
		}
		g_array_append_val(files, f);
	}
	g_array_sort(files, evfile_cmp);
	for (guint i = 0; i < files->len; i++)
		total += g_array_index(files, EvFile, i).size;
	guint kept = 0;
	for (guint i = 0; i < files->len; i++) {
		EvFile *f = &g_array_index(files, EvFile, i);
		gboolean is_keep = keep != NULL && strcmp(f->path, keep) == 0;
		gboolean old = e->max_age_s > 0 && now_s - f->mtime > e->max_age_s;
		gboolean big = e->max_bytes > 0 && total > e->max_bytes;
		if (!is_keep && (old || big) && unlink(f->path) == 0) {
			total -= f->size;
			removed++;
			e->st.files_pruned++;
		} else {
			kept++;
		}
		g_free(f->path);
	}
	e->st.bytes = total;
	e->st.files = kept;
	return removed;
}

void
evidence_get_stats(const Evidence *e, EvidenceStats *out)
{
	*out = e->st;
}

void
evidence_stats_json(const Evidence *e, GString *out)
{
	const EvidenceStats *s = &e->st;
	g_string_append_printf(out,
			       "\"evidence_files_written\":%" G_GUINT64_FORMAT
			       ",\"evidence_flows_written\":%" G_GUINT64_FORMAT
			       ",\"evidence_write_errors\":%" G_GUINT64_FORMAT
			       ",\"evidence_files_pruned\":%" G_GUINT64_FORMAT
			       ",\"evidence_files\":%" G_GUINT64_FORMAT
			       ",\"evidence_bytes\":%" G_GUINT64_FORMAT,
			       s->files_written, s->flows_written, s->write_errors, s->files_pruned,
			       s->files, s->bytes);
}
