/* The --flows CSV: every decoded record, one line each, documented columns (README).
 * Columns never reorder; new ones go at the end. An empty cell means "not in the record". */
#pragma once

#include "flow.h"

#include <stdio.h>

#define FLOWCSV_HEADER                                                                             \
	"recv_ms,exporter,domain,version,src,dst,sport,dport,proto,tcp_flags,packets,bytes,"    \
	"start_ms,end_ms,sampling,fw_event,direction,nat_src,nat_dst,nat_sport,nat_dport,"      \
	"rev_packets,rev_bytes"

/* exporter_addr: the exporter's address as text (the caller maps f->exporter to it). */
void flowcsv_write(FILE *fp, const Flow *f, const char *exporter_addr);
