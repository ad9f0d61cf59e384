/*
 * <sys/event.h> for Linux: the kqueue(2) API of the kq crate.
 *
 * On Linux there is no kernel kqueue; libkq.a / libkq.so (built by the kq-c
 * crate from the kq crate's translation, see examples/c/README.md) translate kqueue() and kevent() onto
 * epoll, timerfd, signalfd, eventfd, inotify and pidfds.  This header declares them with the
 * FreeBSD numbering (EVFILT_USER is -11, NOTE_MSECONDS exists) and the
 * 32-byte struct kevent of macOS and libkqueue (FreeBSD 12's ext[4] is left
 * out: nothing here uses it).
 *
 * Every constant of FreeBSD 14's <sys/event.h> is defined, with FreeBSD's
 * value, so programs written for FreeBSD compile.  What Linux cannot do is
 * refused at run time, never ignored: the change fails (an EV_ERROR entry,
 * or -1 with errno) with EINVAL for a filter kq does not have (EVFILT_AIO,
 * EVFILT_PROCDESC, EVFILT_FS, EVFILT_LIO, EVFILT_SENDFILE, EVFILT_EMPTY)
 * and ENOTSUP for the notes it cannot report (NOTE_FORK, NOTE_EXEC,
 * NOTE_TRACK).  The kq crate's documentation
 * ("Where Linux differs") says why for each.  Every value here equals the
 * Rust constant of the same name in kq/src/linux/abi.rs;
 * kq-c/tests/c_abi.rs compiles this header and checks that, and the
 * struct's size and field offsets.
 *
 * On macOS and the BSDs do not use this file: the system <sys/event.h> and
 * the kernel are the real thing.
 *
 * The ANCHOR / ANCHOR_END comments mark the pieces the book shows
 * (book/src/c-originals-on-linux.md).
 */
#ifndef _KQ_SYS_EVENT_H_
#define _KQ_SYS_EVENT_H_

#include <stdint.h>	/* uintptr_t, intptr_t */
#include <time.h>	/* struct timespec */

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Declared here as well so that the prototype below names the same struct
 * even when a strict C99 compile leaves it out of <time.h>.
 */
struct timespec;

/* ANCHOR: struct_kevent */
struct kevent {
	uintptr_t	ident;	/* what to watch: fd, timer id, signal, user id */
	short		filter;	/* EVFILT_* */
	unsigned short	flags;	/* EV_* actions in, EV_* state out */
	unsigned int	fflags;	/* filter-specific flags (NOTE_*) */
	intptr_t	data;	/* filter-specific data */
	void		*udata;	/* opaque, returned unchanged with each event */
};
/* ANCHOR_END: struct_kevent */

/* ANCHOR: ev_set */
/*
 * Fill in all six fields.  A statement, as on the BSDs; each argument is
 * evaluated exactly once (so EV_SET(p++, ...) works), through a temporary
 * pointer with a name no caller uses.
 */
#define EV_SET(kevp_, a, b, c, d, e, f) do {		\
	struct kevent *kq_ev_set_p_ = (kevp_);		\
	kq_ev_set_p_->ident = (a);			\
	kq_ev_set_p_->filter = (b);			\
	kq_ev_set_p_->flags = (c);			\
	kq_ev_set_p_->fflags = (d);			\
	kq_ev_set_p_->data = (e);			\
	kq_ev_set_p_->udata = (f);			\
} while (0)
/* ANCHOR_END: ev_set */

/* Filters (struct kevent.filter). */
#define EVFILT_READ		(-1)	/* readable, or a listener has connections */
#define EVFILT_WRITE		(-2)	/* writable */
#define EVFILT_AIO		(-3)	/* not on Linux: EINVAL */
#define EVFILT_VNODE		(-4)	/* a file or directory changed */
#define EVFILT_PROC		(-5)	/* a process exited */
#define EVFILT_SIGNAL		(-6)	/* signal delivered (counts, never handles) */
#define EVFILT_TIMER		(-7)	/* timer expired */
#define EVFILT_PROCDESC		(-8)	/* not on Linux: EINVAL */
#define EVFILT_FS		(-9)	/* not on Linux: EINVAL */
#define EVFILT_LIO		(-10)	/* not on Linux: EINVAL */
#define EVFILT_USER		(-11)	/* triggered by a kevent() call */
#define EVFILT_SENDFILE		(-12)	/* not on Linux: EINVAL */
#define EVFILT_EMPTY		(-13)	/* not on Linux: EINVAL */
#define EVFILT_SYSCOUNT		13	/* how many filter numbers FreeBSD has */

/* Actions (struct kevent.flags, on input). */
#define EV_ADD		0x0001		/* add or modify */
#define EV_DELETE	0x0002		/* remove */
#define EV_ENABLE	0x0004		/* let it be returned */
#define EV_DISABLE	0x0008		/* keep it, but do not return it */
#define EV_FORCEONESHOT	0x0100		/* make one-shot and report it once */
#define EV_KEEPUDATA	0x0200		/* a modification keeps the udata */

/* Flags (struct kevent.flags, on input). */
#define EV_ONESHOT	0x0010		/* delete after the first event */
#define EV_CLEAR	0x0020		/* reset state after retrieval: edge */
#define EV_RECEIPT	0x0040		/* report each change as EV_ERROR */
#define EV_DISPATCH	0x0080		/* disable after each event */

/* Returned values (struct kevent.flags, on output). */
#define EV_SYSFLAGS	0xF000		/* reserved by the system */
#define EV_DROP		0x1000		/* reserved by the system */
#define EV_FLAG1	0x2000		/* reserved by the system */
#define EV_FLAG2	0x4000		/* reserved by the system */
#define EV_ERROR	0x4000		/* error, data holds errno */
#define EV_EOF		0x8000		/* EOF; fflags holds the socket error */

/* EVFILT_READ / EVFILT_WRITE: data holds the low-water mark. */
#define NOTE_LOWAT	0x0001
/* EVFILT_READ on a file: also report it at its end (as poll(2) does). */
#define NOTE_FILE_POLL	0x0002

/* EVFILT_VNODE: what to watch for (fflags in), what happened (fflags out). */
#define NOTE_DELETE	0x0001		/* unlinked */
#define NOTE_WRITE	0x0002		/* written */
#define NOTE_EXTEND	0x0004		/* grew */
#define NOTE_ATTRIB	0x0008		/* attributes changed */
#define NOTE_LINK	0x0010		/* link count changed */
#define NOTE_RENAME	0x0020		/* renamed */
#define NOTE_REVOKE	0x0040		/* access revoked (unmounted) */
#define NOTE_OPEN	0x0080		/* opened */
#define NOTE_CLOSE	0x0100		/* closed by a descriptor that could not write */
#define NOTE_CLOSE_WRITE 0x0200		/* closed by a descriptor that could write */
#define NOTE_READ	0x0400		/* read */

/* EVFILT_PROC: the process exited; data holds its wait status. */
#define NOTE_EXIT	0x80000000
#define NOTE_FORK	0x40000000	/* forked: ENOTSUP on Linux */
#define NOTE_EXEC	0x20000000	/* exec'd: ENOTSUP on Linux */
#define NOTE_PCTRLMASK	0xf0000000	/* the event bits */
#define NOTE_PDATAMASK	0x000fffff	/* the pid bits */
#define NOTE_TRACK	0x00000001	/* follow forks: ENOTSUP on Linux */
#define NOTE_TRACKERR	0x00000002	/* output only: could not track */
#define NOTE_CHILD	0x00000004	/* output only: a tracked child */

/* EVFILT_USER: what to do with fflags, and how to fire. */
#define NOTE_FFNOP	0x00000000	/* ignore the input fflags */
#define NOTE_FFAND	0x40000000	/* AND them in */
#define NOTE_FFOR	0x80000000	/* OR them in */
#define NOTE_FFCOPY	0xc0000000	/* copy them */
#define NOTE_FFCTRLMASK	0xc0000000	/* mask for the operations above */
#define NOTE_FFLAGSMASK	0x00ffffff	/* the user-defined flag bits */
#define NOTE_TRIGGER	0x01000000	/* fire the event */

/* EVFILT_TIMER: the unit of data (default: milliseconds). */
#define NOTE_SECONDS	0x0001
#define NOTE_MSECONDS	0x0002
#define NOTE_USECONDS	0x0004
#define NOTE_NSECONDS	0x0008
#define NOTE_ABSTIME	0x0010		/* data is an absolute time */

int	kqueue(void);
/* ANCHOR: kevent_prototype */
int	kevent(int kq, const struct kevent *changelist, int nchanges,
	    struct kevent *eventlist, int nevents,
	    const struct timespec *timeout);
/* ANCHOR_END: kevent_prototype */

#ifdef __cplusplus
}
#endif

#endif /* !_KQ_SYS_EVENT_H_ */
