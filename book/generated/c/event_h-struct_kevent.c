struct kevent {
	uintptr_t	ident;	/* what to watch: fd, timer id, signal, user id */
	short		filter;	/* EVFILT_* */
	unsigned short	flags;	/* EV_* actions in, EV_* state out */
	unsigned int	fflags;	/* filter-specific flags (NOTE_*) */
	intptr_t	data;	/* filter-specific data */
	void		*udata;	/* opaque, returned unchanged with each event */
};
