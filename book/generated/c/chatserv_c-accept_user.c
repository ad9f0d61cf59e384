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
