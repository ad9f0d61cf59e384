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
