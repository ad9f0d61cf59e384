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
