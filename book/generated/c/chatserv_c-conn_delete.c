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
