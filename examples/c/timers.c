/*
 * timers.c: EVFILT_TIMER and EVFILT_USER in one event loop.
 *
 * Three kevents on one queue, registered with a single changelist:
 *
 *   ident 1  EVFILT_TIMER, periodic, every 100 ms (no unit flag: the
 *            default unit, milliseconds, on every system).  Its data says
 *            how many times it expired since it was last reported.
 *   ident 2  EVFILT_TIMER, EV_ONESHOT, after 1 s (NOTE_SECONDS): the
 *            deadline that ends the program.  EV_ONESHOT removes it once
 *            it has fired.
 *   ident 3  EVFILT_USER, EV_CLEAR.  A worker thread finishes a "job" every
 *            200 ms and triggers the event with kevent(): NOTE_TRIGGER fires
 *            it and NOTE_FFCOPY hands over the job number in the low fflags
 *            bits.  The main thread, blocked in kevent(), wakes up.  This is
 *            how another thread wakes an event loop.
 *
 * Output (stdout), one line per event, for example:
 *
 *   tick: 1 expiration(s), 1 in total
 *   job 1 done
 *   ...
 *   deadline: 10 ticks and 3 jobs in 1 s
 *
 * Usage: timers (no arguments).  Portable to macOS and the BSDs; on Linux
 * build it with examples/c/cc-kq.sh (see examples/c/README.md).
 */
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICKER		1	/* idents: any number, per filter */
#define DEADLINE	2
#define WORKER		3

#define NJOBS		3

static const char *prog = "timers";

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

/* The worker: "works" 200 ms per job, then tells the loop which job. */
static void *
worker(void *arg)
{
	int kq = *(int *)arg;
	struct kevent trigger;
	unsigned int job;

	for (job = 1; job <= NJOBS; job++) {
		sleep_ms(200);
		EV_SET(&trigger, WORKER, EVFILT_USER, 0,
		    NOTE_TRIGGER | NOTE_FFCOPY | job, 0, NULL);
		if (kevent(kq, &trigger, 1, NULL, 0, NULL) == -1)
			fail("kevent(NOTE_TRIGGER)");
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct kevent changes[3], events[8];
	pthread_t thread;
	long ticks = 0;
	unsigned int jobs = 0;
	int kq, i, n, running = 1;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: %s\n", prog);
		return 2;
	}

	if ((kq = kqueue()) == -1)
		fail("kqueue");
	EV_SET(&changes[0], TICKER, EVFILT_TIMER, EV_ADD, 0, 100, NULL);
	EV_SET(&changes[1], DEADLINE, EVFILT_TIMER, EV_ADD | EV_ONESHOT,
	    NOTE_SECONDS, 1, NULL);
	EV_SET(&changes[2], WORKER, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
	if (kevent(kq, changes, 3, NULL, 0, NULL) == -1)
		fail("kevent(EV_ADD)");

	/* kevent() may be called from any thread on the same queue. */
	if ((errno = pthread_create(&thread, NULL, worker, &kq)) != 0)
		fail("pthread_create");

	while (running) {
		n = kevent(kq, NULL, 0, events, 8, NULL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fail("kevent");
		}
		for (i = 0; i < n; i++) {
			struct kevent *ev = &events[i];

			if (ev->filter == EVFILT_TIMER && ev->ident == TICKER) {
				ticks += (long)ev->data;
				printf("tick: %lld expiration(s), %ld in total\n",
				    (long long)ev->data, ticks);
			} else if (ev->filter == EVFILT_TIMER &&
			    ev->ident == DEADLINE) {
				running = 0;
			} else if (ev->filter == EVFILT_USER &&
			    ev->ident == WORKER) {
				jobs = ev->fflags & NOTE_FFLAGSMASK;
				printf("job %u done\n", jobs);
			}
		}
		fflush(stdout);
	}
	printf("deadline: %ld ticks and %u jobs in 1 s\n", ticks, jobs);
	fflush(stdout);

	if ((errno = pthread_join(thread, NULL)) != 0)
		fail("pthread_join");
	close(kq);
	return 0;
}
