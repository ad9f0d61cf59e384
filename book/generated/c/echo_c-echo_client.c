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
