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
