/*
 * threads.c: one kqueue, several threads.
 *
 * kevent() may be called on the same queue from any number of threads at
 * once.  This program checks the four things a multi-threaded event loop
 * relies on, and prints "ok: ..." or "FAIL: ..." for each:
 *
 *   1. a thread blocked in kevent() wakes when another thread triggers an
 *      EVFILT_USER event (the usual way to wake an event loop);
 *   2. two threads blocked in kevent() on one queue, two events: each
 *      thread gets one, and no event is delivered twice;
 *   3. a kevent registered by one thread (a timer) wakes a thread that was
 *      already blocked in kevent() before it existed;
 *   4. a socket registered for EVFILT_READ wakes a blocked thread when the
 *      peer writes, and data says how many bytes are waiting.
 *
 * Every wait has a 5 s timeout, so a broken kqueue fails instead of hanging.
 * Exit status: 0 when every check passed, 1 otherwise.  Portable to macOS
 * and the BSDs; on Linux build it with examples/c/cc-kq.sh.
 */
#include <sys/types.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS	5000		/* the longest any check waits */

static const char *prog = "threads";
static int failures;

static void
fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	fflush(stdout);
	if (!ok)
		failures++;
	return ok;
}

/* One thread's wait: kevent() for at most one event, WAIT_MS at most. */
struct waiter {
	pthread_t	thread;
	int		kq;
	int		n;		/* what kevent() returned */
	int		error;		/* errno when n == -1 */
	struct kevent	ev;		/* the event, when n == 1 */
};

/* On failure, say what a waiter got instead. */
static void
report(const char *who, const struct waiter *w)
{
	fprintf(stderr, "%s:   %s: kevent() returned %d", prog, who, w->n);
	if (w->n == 1)
		fprintf(stderr, ", event ident %lu filter %d flags 0x%x "
		    "fflags 0x%x data %lld", (unsigned long)w->ev.ident,
		    (int)w->ev.filter, (unsigned)w->ev.flags,
		    (unsigned)w->ev.fflags, (long long)w->ev.data);
	fprintf(stderr, "\n");
}

static void *
wait_one(void *arg)
{
	struct waiter *w = arg;
	struct timespec timeout;

	timeout.tv_sec = WAIT_MS / 1000;
	timeout.tv_nsec = 0;
	memset(&w->ev, 0, sizeof(w->ev));
	w->n = kevent(w->kq, NULL, 0, &w->ev, 1, &timeout);
	w->error = w->n == -1 ? errno : 0;
	return NULL;
}

static void
start_waiter(struct waiter *w, int kq)
{
	w->kq = kq;
	if ((errno = pthread_create(&w->thread, NULL, wait_one, w)) != 0)
		fail("pthread_create");
}

static void
join_waiter(struct waiter *w)
{
	if ((errno = pthread_join(w->thread, NULL)) != 0)
		fail("pthread_join");
	if (w->n == -1)
		fprintf(stderr, "%s: kevent in a thread: %s\n", prog,
		    strerror(w->error));
}

static void
apply(int kq, struct kevent *changes, int n)
{
	if (kevent(kq, changes, n, NULL, 0, NULL) == -1)
		fail("kevent(changelist)");
}

static void
user_wakes_blocked_thread(void)
{
	struct kevent change;
	struct waiter w;
	static int marker;
	int kq;

	if ((kq = kqueue()) == -1)
		fail("kqueue");
	EV_SET(&change, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, &marker);
	apply(kq, &change, 1);

	start_waiter(&w, kq);
	sleep_ms(100);		/* let it block in kevent() */
	/* Every change replaces udata, a trigger too: pass it again. */
	EV_SET(&change, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, &marker);
	apply(kq, &change, 1);
	join_waiter(&w);

	if (!check(w.n == 1 && w.ev.ident == 1 &&
	    w.ev.filter == EVFILT_USER && w.ev.udata == &marker,
	    "a thread blocked in kevent() wakes when another thread "
	    "triggers EVFILT_USER"))
		report("expected EVFILT_USER ident 1 with udata", &w);
	close(kq);
}

static void
two_threads_share_events(void)
{
	struct kevent changes[2], extra;
	struct timespec zero = { 0, 0 };
	struct waiter w[2];
	int kq, i, left;

	if ((kq = kqueue()) == -1)
		fail("kqueue");
	for (i = 0; i < 2; i++)
		EV_SET(&changes[i], 10 + i, EVFILT_USER, EV_ADD | EV_CLEAR,
		    0, 0, NULL);
	apply(kq, changes, 2);

	start_waiter(&w[0], kq);
	start_waiter(&w[1], kq);
	sleep_ms(100);		/* let both block in kevent() */
	for (i = 0; i < 2; i++)
		EV_SET(&changes[i], 10 + i, EVFILT_USER, 0, NOTE_TRIGGER,
		    0, NULL);
	apply(kq, changes, 2);
	join_waiter(&w[0]);
	join_waiter(&w[1]);
	/* EV_CLEAR: once taken, an event is gone; nothing may be left. */
	left = kevent(kq, NULL, 0, &extra, 1, &zero);

	if (!check(w[0].n == 1 && w[1].n == 1 &&
	    w[0].ev.filter == EVFILT_USER && w[1].ev.filter == EVFILT_USER &&
	    w[0].ev.ident + w[1].ev.ident == 10 + 11 &&
	    w[0].ev.ident != w[1].ev.ident && left == 0,
	    "two threads blocked in kevent() on one queue each get one of "
	    "two events, none twice")) {
		report("first thread (expected ident 10 or 11)", &w[0]);
		report("second thread (expected the other one)", &w[1]);
		fprintf(stderr, "%s:   events left afterwards: %d "
		    "(expected 0)\n", prog, left);
	}
	close(kq);
}

static void
timer_added_while_thread_waits(void)
{
	struct kevent change;
	struct waiter w;
	int kq;

	if ((kq = kqueue()) == -1)
		fail("kqueue");
	start_waiter(&w, kq);	/* blocks on an empty queue */
	sleep_ms(100);
	EV_SET(&change, 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 50, NULL);
	apply(kq, &change, 1);
	join_waiter(&w);

	if (!check(w.n == 1 && w.ev.ident == 7 &&
	    w.ev.filter == EVFILT_TIMER,
	    "a timer added by one thread wakes a thread already blocked "
	    "in kevent()"))
		report("expected EVFILT_TIMER ident 7", &w);
	close(kq);
}

static void
socket_wakes_blocked_thread(void)
{
	struct kevent change;
	struct waiter w;
	int kq, sv[2];

	if ((kq = kqueue()) == -1)
		fail("kqueue");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		fail("socketpair");
	EV_SET(&change, sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
	apply(kq, &change, 1);

	start_waiter(&w, kq);
	sleep_ms(100);
	if (write(sv[1], "hello", 5) != 5)
		fail("write");
	join_waiter(&w);

	if (!check(w.n == 1 && w.ev.ident == (uintptr_t)sv[0] &&
	    w.ev.filter == EVFILT_READ && w.ev.data == 5,
	    "a socket registered for EVFILT_READ wakes a blocked thread, "
	    "data = 5 bytes"))
		report("expected EVFILT_READ on the socket, data 5", &w);
	close(sv[0]);
	close(sv[1]);
	close(kq);
}

int
main(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: %s\n", prog);
		return 2;
	}
	user_wakes_blocked_thread();
	two_threads_share_events();
	timer_added_while_thread_waits();
	socket_wakes_blocked_thread();
	return failures == 0 ? 0 : 1;
}
