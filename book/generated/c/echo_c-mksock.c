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
