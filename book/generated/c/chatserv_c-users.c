/* One slot per user; uc_fd is -1 when the slot is free. */
static struct uc {
	int	uc_fd;
	char	uc_addr[NI_MAXHOST + NI_MAXSERV + 4];	/* "host:port" */
} users[NUSERS];
