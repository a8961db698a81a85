/* bare_recv: the floor for the collector benchmarks (issue 6). Binds one UDP socket like
 * spamflowd does (SO_RCVBUFFORCE, SO_RXQ_OVFL), then only recvmmsg()s and counts datagrams
 * and bytes: no decoding. On SIGTERM/SIGINT it prints its counts, with the kernel's drop
 * counter, as one JSON line on stdout. */
#include <glib.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUFSZ 65535

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : "127.0.0.1:2055";
	gsize rcvbuf = argc > 2 ? g_ascii_strtoull(argv[2], NULL, 10) : (gsize)32 << 20;
	const char *colon = strrchr(addr, ':');
	guint64 port;
	struct sockaddr_in sin = {0};

	if (argc > 3 || colon == NULL ||
	    !g_ascii_string_to_unsigned(colon + 1, 10, 0, 65535, &port, NULL)) {
		g_printerr("usage: bare_recv [A.B.C.D:PORT [RCVBUF_BYTES]]\n");
		return 2;
	}
	g_autofree char *host = g_strndup(addr, (gsize)(colon - addr));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((guint16)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		g_printerr("bare_recv: '%s' is not an IPv4 address\n", host);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int one = 1, v = (int)MIN(rcvbuf, (gsize)INT_MAX / 2), got = 0;
	socklen_t gl = sizeof got;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		g_printerr("bare_recv: bind %s: %s\n", addr, g_strerror(errno));
		return 1;
	}
	/* as listener.c: FORCE ignores net.core.rmem_max when we have CAP_NET_ADMIN */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	(void)getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
	if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0)
		g_printerr("bare_recv: SO_RXQ_OVFL: %s\n", g_strerror(errno));

	/* no SA_RESTART: the signal interrupts a blocking recvmmsg */
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	guint8 *bufs = g_malloc((gsize)BATCH * BUFSZ);
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	union {
		struct cmsghdr align;
		char buf[64];
	} cmsg[BATCH];
	for (guint i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs + (gsize)i * BUFSZ;
		iov[i].iov_len = BUFSZ;
	}
	struct sockaddr_in me;
	socklen_t mel = sizeof me;
	getsockname(fd, (struct sockaddr *)&me, &mel);
	g_printerr("bare_recv: listening on %s:%u, receive buffer %d bytes\n", host,
		   ntohs(me.sin_port), got / 2);

	guint64 dgrams = 0, bytes = 0, batches = 0, errors = 0;
	guint32 drops = 0;
	while (!stop) {
		for (guint i = 0; i < BATCH; i++) {
			memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = cmsg[i].buf;
			msgs[i].msg_hdr.msg_controllen = sizeof cmsg[i].buf;
		}
		int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno != EINTR)
				errors++;
			continue;
		}
		batches++;
		for (int i = 0; i < n; i++) {
			struct msghdr *mh = &msgs[i].msg_hdr;
			dgrams++;
			bytes += msgs[i].msg_len;
			/* SO_RXQ_OVFL: the socket's cumulative drop count, once non-zero */
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL;
			     cm = CMSG_NXTHDR(mh, cm))
				if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL)
					memcpy(&drops, CMSG_DATA(cm), sizeof drops);
		}
	}
	printf("{\"datagrams\": %" G_GUINT64_FORMAT ", \"bytes\": %" G_GUINT64_FORMAT
	       ", \"batches\": %" G_GUINT64_FORMAT ", \"recv_errors\": %" G_GUINT64_FORMAT
	       ", \"kernel_drops\": %u, \"rcvbuf\": %d}\n",
	       dgrams, bytes, batches, errors, drops, got / 2);
	fflush(stdout);
	g_free(bufs);
	close(fd);
	return 0;
}
