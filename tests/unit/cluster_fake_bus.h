/* An in-memory implementation of cluster/bus.h for unit tests (cluster_fake_bus.c): every
 * Bus of the process shares one fake server. */
#pragma once

#include "bus.h"

/* Forget every bucket, stream, snapshot and server (no Bus or subscription may be open). */
void cluster_fake_bus_reset(void);
/* Cut bus off (TRUE: every call fails with BUS_ERROR_IO, deliveries stop) or reconnect it. */
void cluster_fake_bus_set_down(Bus *bus, gboolean down);
