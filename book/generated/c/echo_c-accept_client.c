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
