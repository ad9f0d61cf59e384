/*
 * chatserv.c: a chat room on one kqueue (the "EVFILT_READ example").
 *
 * mksock() binds and listens; the listener is registered with
 * EV_SET(listener, EVFILT_READ, EV_ADD).  Up to NUSERS users sit in the
 * users[] array (descriptor and address).  A new connection takes a free
 * slot and is registered for EVFILT_READ; when every slot is taken the
 * client is told the server is full and closed.  Whatever a user sends is
 * relayed to every other user, never back to the sender.  A user who leaves
 * is removed with EV_DELETE, then closed.  Clients are plain netcat:
 *
 *   nc 127.0.0.1 8080
 *
 * Usage: chatserv [--host HOST] [--port PORT]   (defaults 127.0.0.1 8080;
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

#define NUSERS	10		/* the size of the room */
#define NEVENTS	32		/* events taken per kevent() call */
#define BUFSIZE	16384		/* bytes read per readable event */

static const char *prog = "chatserv";

static const char full_msg[] = "server is full, try again later\n";

/* ANCHOR: users */
/* One slot per user; uc_fd is -1 when the slot is free. */
static struct uc {
	int	uc_fd;
	char	uc_addr[NI_MAXHOST + NI_MAXSERV + 4];	/* "host:port" */
} users[NUSERS];
/* ANCHOR_END: users */

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

/* Write all of buf, waiting as needed (user sockets are blocking). */
static int
send_msg(int fd, const char *buf, size_t len)
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

/* ANCHOR: conn_index */
/* The slot of the user on descriptor fd, or -1. */
static int
conn_index(int fd)
{
	int i;

	for (i = 0; i < NUSERS; i++)
		if (users[i].uc_fd == fd)
			return i;
	return -1;
}
/* ANCHOR_END: conn_index */

/* ANCHOR: conn_add */
/* Put fd in a free slot; returns the slot, or -1 when the room is full. */
static int
conn_add(int fd, const char *addr)
{
	int i;

	if ((i = conn_index(-1)) == -1)
		return -1;
	users[i].uc_fd = fd;
	snprintf(users[i].uc_addr, sizeof(users[i].uc_addr), "%s", addr);
	return i;
}
/* ANCHOR_END: conn_add */

/* ANCHOR: conn_delete */
/*
 * Remove a user: EV_DELETE first, then close.  (close() alone would also
 * remove the kevent; deleting it explicitly is what the text teaches, and
 * keeps working if the descriptor is ever shared.)
 */
static void
conn_delete(int kq, int slot)
{
	struct kevent change;
	int fd = users[slot].uc_fd;

	EV_SET(&change, fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
	if (kevent(kq, &change, 1, NULL, 0, NULL) == -1)
		fprintf(stderr, "%s: kevent(EV_DELETE %d): %s\n", prog, fd,
		    strerror(errno));
	close(fd);
	users[slot].uc_fd = -1;
}
/* ANCHOR_END: conn_delete */

/* ANCHOR: accept_user */
static void
accept_user(int kq, int listener)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	struct kevent change;
	char name[NI_MAXHOST + NI_MAXSERV + 4];
	int fd, slot;

	if ((fd = accept(listener, (struct sockaddr *)&addr, &len)) == -1) {
		/* Gone before we got to it, or a signal: nothing to do. */
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ECONNABORTED && errno != EINTR)
			fprintf(stderr, "%s: accept: %s\n", prog,
			    strerror(errno));
		return;
	}
	/* The BSDs pass the listener's O_NONBLOCK on (Linux does not). */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	format_addr((struct sockaddr *)&addr, len, name, sizeof(name));
	if ((slot = conn_add(fd, name)) == -1) {
		/* Never registered, so close() is all there is to undo. */
		(void)send_msg(fd, full_msg, sizeof(full_msg) - 1);
		close(fd);
		fprintf(stderr, "%s: refused %s: the room is full (%d users)\n",
		    prog, name, NUSERS);
		return;
	}
	EV_SET(&change, fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	if (kevent(kq, &change, 1, NULL, 0, NULL) == -1) {
		fprintf(stderr, "%s: kevent(EV_ADD %d): %s\n", prog, fd,
		    strerror(errno));
		close(fd);
		users[slot].uc_fd = -1;
		return;
	}
	fprintf(stderr, "%s: user #%d joined from %s\n", prog, slot, name);
}
/* ANCHOR_END: accept_user */

/* ANCHOR: recv_msg */
/*
 * A user is readable: relay what arrived to everyone else, or remove the
 * user at end of file.  EV_EOF may come while data is still buffered, so
 * we go by read() returning 0, not by the EV_EOF flag: nothing sent just
 * before leaving is lost.
 */
static void
recv_msg(int kq, int slot)
{
	char buf[BUFSIZE];
	ssize_t n;
	int i;

	n = read(users[slot].uc_fd, buf, sizeof(buf));
	if (n > 0) {
		for (i = 0; i < NUSERS; i++) {
			if (i == slot || users[i].uc_fd == -1)
				continue;
			/*
			 * A failed write means that user is gone: their own
			 * EVFILT_READ event reports it and removes them.
			 */
			(void)send_msg(users[i].uc_fd, buf, (size_t)n);
		}
		return;
	}
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == 0)
		fprintf(stderr, "%s: user #%d (%s) left\n", prog, slot,
		    users[slot].uc_addr);
	else
		fprintf(stderr, "%s: user #%d (%s) dropped: %s\n", prog, slot,
		    users[slot].uc_addr, strerror(errno));
	conn_delete(kq, slot);
}
/* ANCHOR_END: recv_msg */

/* ANCHOR: main */
int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *port = "8080";
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	struct kevent change, events[NEVENTS];
	char name[NI_MAXHOST + NI_MAXSERV + 4];
	int kq, listener, i, n, slot;

	parse_args(argc, argv, &host, &port);
	/* A user who vanishes mid-relay must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < NUSERS; i++)
		users[i].uc_fd = -1;

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
				accept_user(kq, listener);
			else if ((slot = conn_index((int)events[i].ident)) != -1)
				recv_msg(kq, slot);
		}
	}
}
/* ANCHOR_END: main */
