/* Writes decoded flow records as CSV lines for --flows, golden tests and incident work. */
#include "flowcsv.h"

#include <inttypes.h>

void
flowcsv_write(FILE *fp, const Flow *f, const char *exporter_addr)
{
	char s[46], d[46];

	fprintf(fp, "%" G_GINT64_FORMAT ",%s,%u,%s,%s,%s,%u,%u,%u,", f->recv_ms, exporter_addr,
		f->domain, flow_version_name(f->version), flow_addr_str(f->src, s, sizeof s),
		flow_addr_str(f->dst, d, sizeof d), f->sport, f->dport, f->proto);
	if (f->has & FLOW_HAS_TCP_FLAGS)
		fprintf(fp, "%u", f->tcp_flags);
	fputc(',', fp);
	if (f->has & FLOW_HAS_PACKETS)
		fprintf(fp, "%" G_GUINT64_FORMAT, f->packets);
	fputc(',', fp);
	if (f->has & FLOW_HAS_BYTES)
		fprintf(fp, "%" G_GUINT64_FORMAT, f->bytes);
	fputc(',', fp);
	if (f->has & FLOW_HAS_TIMES)
		fprintf(fp, "%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT, f->start_ms, f->end_ms);
	else
		fputc(',', fp);
	fprintf(fp, ",%u,", f->sampling);
	if (f->has & FLOW_HAS_FW_EVENT)
		fputs(fw_event_name(f->fw_event), fp);
	fputc(',', fp);
	if (f->has & FLOW_HAS_DIRECTION)
		fputs(f->direction == 0 ? "in" : "out", fp);
	fputc(',', fp);
	if (f->has & FLOW_HAS_NAT)
		fprintf(fp, "%s,%s,%u,%u", flow_addr_str(f->nat_src, s, sizeof s),
			flow_addr_str(f->nat_dst, d, sizeof d), f->nat_sport, f->nat_dport);
	else
		fputs(",,,", fp);
	fputc(',', fp);
	if (f->has & FLOW_HAS_REVERSE)
		fprintf(fp, "%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT, f->rev_packets,
			f->rev_bytes);
	else
		fputc(',', fp);
	fputc('\n', fp);
}
