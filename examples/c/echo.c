/*
 * echo.c: the simple kqueue echo server.
 *
 *   kqueue()          makes an event queue;
 *   EV_SET()          fills in a struct kevent: what to watch and how;
 *   kevent(changes)   registers it (a changelist, no eventlist);
 *   kevent(events)    waits and fills an eventlist (no changelist).
 *
 * The listening socket is registered for EVFILT_READ: it is "readable" when a
 * connection is waiting to be accepted.  Each accepted client is registered
 * for EVFILT_READ too, and whatever it sends is written straight back.  A
 * client that leaves is dropped just by close(): closing a descriptor removes
 * its kevents, so no EV_DELETE is needed.
 *
 * Usage: echo [--host HOST] [--port PORT]   (defaults 127.0.0.1 8080;
 * --port 0 picks a free port).  Prints "listening on HOST:PORT" on stdout
 * when ready; everything else goes to stderr.  Exit status: 2 for bad
 * arguments, 1 when the address cannot be listened on.
 *
 * Portable: on macOS and the BSDs it uses the kernel's kqueue; on Linux,
 * build it with examples/c/cc-kq.sh (see examples/c/README.md).
 *
 * The ANCHOR / ANCHOR_END comments mark the pieces the book shows
 * (book/src/appendix-b-c-beside-rust.md).
 */
#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netdb.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEVENTS	64		/* events taken per kevent() call */
#define BUFSIZE	16384		/* bytes read per readable event */

static const char *prog = "echo";

static void
usage(FILE *f)
{
	fprintf(f, "usage: %s [--host HOST] [--port PORT]\n", prog);
}

/* A port is a decimal number from 0 to 65535 (0: let the system pick). */
static int
valid_port(const char *s)
{
	char *end;
	long n;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	n = strtol(s, &end, 10);
	return errno == 0 && *end == '\0' && n >= 0 && n <= 65535;
}

static void
parse_args(int argc, char **argv, const char **host, const char **port)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
			*host = argv[++i];
		} else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			*port = argv[++i];
			if (!valid_port(*port)) {
				fprintf(stderr, "%s: bad port '%s': expected "
				    "a number from 0 to 65535\n", prog, *port);
				exit(2);
			}
		} else {
			fprintf(stderr, "%s: unexpected argument '%s'\n",
			    prog, argv[i]);
			usage(stderr);
			exit(2);
		}
	}
}

/* ANCHOR: mksock */
/*
 * Make a non-blocking socket listening on host:port, or exit(1) with one
 * line saying why.  Non-blocking because a client may give up between the
 * event and our accept(): accept() must then fail, not wait.
 */
static int
mksock(const char *host, const char *port)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, err, saved = 0, on = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((err = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "%s: cannot listen on %s:%s: %s\n",
		    prog, host, port, gai_strerror(err));
		exit(1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype,
		    ai->ai_protocol)) == -1) {
			saved = errno;
			continue;
		}
		/* Restarting must not fail while old connections linger. */
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0 &&
		    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		fprintf(stderr, "%s: cannot listen on %s:%s: %s\n",
		    prog, host, port, strerror(saved));
		exit(1);
	}
	return fd;
}
/* ANCHOR_END: mksock */

/* "HOST:PORT" of a socket address, numeric, IPv6 hosts in brackets. */
static void
format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(out, size, "?");
	else if (strchr(host, ':') != NULL)
		snprintf(out, size, "[%s]:%s", host, serv);
	else
		snprintf(out, size, "%s:%s", host, serv);
}

/* Write all of buf, waiting as needed (the socket is blocking). */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ANCHOR: accept_client */
static void
accept_client(int kq, int listener)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	struct kevent change;
	char name[NI_MAXHOST + NI_MAXSERV + 4];
	int fd;

	if ((fd = accept(listener, (struct sockaddr *)&addr, &len)) == -1) {
		/* Gone before we got to it, or a signal: nothing to do. */
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ECONNABORTED && errno != EINTR)
			fprintf(stderr, "%s: accept: %s\n", prog,
			    strerror(errno));
		return;
	}
	/*
	 * On the BSDs and macOS an accepted socket inherits O_NONBLOCK from
	 * the listener (on Linux it does not): clear it, so the blocking
	 * write of the echo waits instead of failing with EAGAIN.
	 */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	EV_SET(&change, fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	if (kevent(kq, &change, 1, NULL, 0, NULL) == -1) {
		fprintf(stderr, "%s: kevent(EV_ADD %d): %s\n", prog, fd,
		    strerror(errno));
		close(fd);
		return;
	}
	format_addr((struct sockaddr *)&addr, len, name, sizeof(name));
	fprintf(stderr, "%s: client %d connected from %s\n", prog, fd, name);
}
/* ANCHOR_END: accept_client */

/* ANCHOR: echo_client */
/*
 * The client is readable: echo what it sent.  EV_EOF may be set while data
 * is still buffered, so we do not drop the client on EV_EOF: we keep
 * reading (the event stays active) until read() says 0, end of file.
 */
static void
echo_client(int fd)
{
	char buf[BUFSIZE];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n > 0 && write_all(fd, buf, (size_t)n) == 0)
		return;
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == 0)
		fprintf(stderr, "%s: client %d disconnected\n", prog, fd);
	else
		fprintf(stderr, "%s: client %d dropped: %s\n", prog, fd,
		    strerror(errno));
	/* Closing the descriptor also removes its kevent. */
	close(fd);
}
/* ANCHOR_END: echo_client */

/* ANCHOR: main */
int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *port = "8080";
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	struct kevent change, events[NEVENTS];
	char name[NI_MAXHOST + NI_MAXSERV + 4];
	int kq, listener, i, n;

	parse_args(argc, argv, &host, &port);
	/* A client that vanishes mid-write must not kill the server. */
	signal(SIGPIPE, SIG_IGN);

	listener = mksock(host, port);
	if ((kq = kqueue()) == -1) {
		fprintf(stderr, "%s: kqueue: %s\n", prog, strerror(errno));
		return 1;
	}
	EV_SET(&change, listener, EVFILT_READ, EV_ADD, 0, 0, NULL);
	if (kevent(kq, &change, 1, NULL, 0, NULL) == -1) {
		fprintf(stderr, "%s: kevent: %s\n", prog, strerror(errno));
		return 1;
	}

	if (getsockname(listener, (struct sockaddr *)&addr, &len) == -1) {
		fprintf(stderr, "%s: getsockname: %s\n", prog, strerror(errno));
		return 1;
	}
	format_addr((struct sockaddr *)&addr, len, name, sizeof(name));
	printf("listening on %s\n", name);
	fflush(stdout);

	for (;;) {
		n = kevent(kq, NULL, 0, events, NEVENTS, NULL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: kevent: %s\n", prog,
			    strerror(errno));
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (events[i].ident == (uintptr_t)listener)
				accept_client(kq, listener);
			else
				echo_client((int)events[i].ident);
		}
	}
}
/* ANCHOR_END: main */
