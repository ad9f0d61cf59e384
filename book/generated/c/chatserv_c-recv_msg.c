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
