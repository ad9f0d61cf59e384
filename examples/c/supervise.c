/*
 * supervise.c: a process supervisor, the way a BSD one watches its
 * children: one EVFILT_PROC kevent per child, one event loop.
 *
 * It starts N copies of a command (slots 0 to N-1; each child finds its
 * slot number in the environment variable SUPERVISE_SLOT), and each time
 * one exits it reports how (the event's data is the wait status), reaps it
 * and starts it again, until that slot has been restarted R times.
 *
 *   PID  EVFILT_PROC, NOTE_EXIT | NOTE_FORK, udata = the child's slot.
 *        NOTE_EXIT fires when the child exits, data = its wait status (as
 *        waitpid() would give it: WIFEXITED, WEXITSTATUS...).  The kevent
 *        does not reap the child: waitpid() still must, or it stays a
 *        zombie.  NOTE_FORK fires when the child forks.  EV_ONESHOT is not
 *        needed: the knote goes away by itself once the process is gone.
 *
 * Not every kqueue can watch forks: on Linux (the kq library) a change
 * asking for NOTE_FORK fails with ENOTSUP, never silently.  EV_RECEIPT
 * makes the change report its result in an EV_ERROR entry, so the
 * supervisor sees the refusal, says so once on stderr, and asks for
 * NOTE_EXIT alone from then on.
 *
 * Output (stdout), one line per event, for example with -n 2 -r 1:
 *
 *   slot 0: pid 4242 exited with status 0
 *   slot 0: restarted as pid 4244
 *   slot 1: pid 4243 killed by signal 9
 *   slot 1: restarted as pid 4245
 *   slot 0: pid 4244 exited with status 0
 *   slot 0: gave up after 1 restart(s)
 *   ...
 *   all 2 slot(s) done after 4 run(s)
 *
 * Usage: supervise [-n N] [-r R] COMMAND [ARG...]   (N: 1 to 64, default
 * 1; R: 0 or more, default 3).  Exit status 0 once every slot gave up, 1 on
 * a system error, 2 for bad arguments.  A command that cannot be run
 * exits with status 127, like the shell's.
 *
 * Portable to macOS and the BSDs; on Linux build it with
 * examples/c/cc-kq.sh (see examples/c/README.md).
 */
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXSLOTS	64

static const char *prog = "supervise";

struct slot {
	int	index;
	pid_t	pid;		/* the running child */
	int	restarts;	/* how many times it was started again */
};

static struct slot slots[MAXSLOTS];
static int nslots = 1, maxrestarts = 3;
static char **command;

/* NOTE_FORK until the kqueue refuses it. */
static unsigned int watch_notes = NOTE_EXIT | NOTE_FORK;

static void
fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static void
usage(const char *why)
{
	fprintf(stderr, "%s: %s\nusage: %s [-n N] [-r R] COMMAND [ARG...]\n",
	    prog, why, prog);
	exit(2);
}

/* Parses a number from lo to hi, or exits with the usage message. */
static int
number(const char *s, int lo, int hi, const char *what)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < lo || n > hi)
		usage(what);
	return (int)n;
}

/* Starts the slot's command in a new child. */
static void
start(struct slot *s)
{
	char number[16];
	pid_t pid;

	fflush(stdout);		/* the child must not print our buffer again */
	pid = fork();
	if (pid == -1)
		fail("fork");
	if (pid == 0) {
		snprintf(number, sizeof(number), "%d", s->index);
		if (setenv("SUPERVISE_SLOT", number, 1) == -1)
			_exit(127);
		execvp(command[0], command);
		fprintf(stderr, "%s: %s: %s\n", prog, command[0],
		    strerror(errno));
		_exit(127);
	}
	s->pid = pid;
}

/*
 * Watches the slot's child.  EV_RECEIPT: the change's result comes back in
 * an EV_ERROR entry (data 0 for success), even when it succeeds, so a
 * refusal of NOTE_FORK is seen here and not as -1 from a later kevent().
 */
static void
watch(int kq, struct slot *s)
{
	struct kevent change, result;
	unsigned int notes = watch_notes;

#ifdef NOTE_EXITSTATUS
	notes |= NOTE_EXITSTATUS;	/* macOS gives data only with it */
#endif
	EV_SET(&change, s->pid, EVFILT_PROC, EV_ADD | EV_RECEIPT, notes, 0, s);
	if (kevent(kq, &change, 1, &result, 1, NULL) == -1)
		fail("kevent (EV_ADD of EVFILT_PROC)");
	if (result.data == ENOTSUP && (watch_notes & NOTE_FORK)) {
		fprintf(stderr, "%s: NOTE_FORK: %s; watching NOTE_EXIT only\n",
		    prog, strerror(ENOTSUP));
		watch_notes = NOTE_EXIT;
		watch(kq, s);
		return;
	}
	if (result.data != 0) {
		errno = (int)result.data;
		fail("EVFILT_PROC");
	}
}

/* Says how the child ended, from its wait status. */
static void
report(const struct slot *s, int status)
{
	if (WIFEXITED(status))
		printf("slot %d: pid %d exited with status %d\n", s->index,
		    (int)s->pid, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		printf("slot %d: pid %d killed by signal %d\n", s->index,
		    (int)s->pid, WTERMSIG(status));
	else
		printf("slot %d: pid %d ended with wait status %#x\n",
		    s->index, (int)s->pid, status);
}

int
main(int argc, char **argv)
{
	struct kevent events[MAXSLOTS];
	int kq, i, n, running, runs;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (i + 1 >= argc)
			usage("an option without its value");
		if (strcmp(argv[i], "-n") == 0)
			nslots = number(argv[++i], 1, MAXSLOTS,
			    "-n takes a number from 1 to 64");
		else if (strcmp(argv[i], "-r") == 0)
			maxrestarts = number(argv[++i], 0, 1000000,
			    "-r takes a number, 0 or more");
		else
			usage("unknown option");
	}
	if (i >= argc)
		usage("no command to supervise");
	command = argv + i;

	if ((kq = kqueue()) == -1)
		fail("kqueue");
	for (i = 0; i < nslots; i++) {
		slots[i].index = i;
		start(&slots[i]);
		/*
		 * Watched after fork(): a child that already exited is a
		 * zombie until we reap it, and its NOTE_EXIT is reported
		 * at once.
		 */
		watch(kq, &slots[i]);
	}
	running = nslots;
	runs = nslots;

	while (running > 0) {
		n = kevent(kq, NULL, 0, events, MAXSLOTS, NULL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			fail("kevent");
		for (i = 0; i < n; i++) {
			struct slot *s = events[i].udata;

			if (events[i].flags & EV_ERROR) {
				errno = (int)events[i].data;
				fail("EVFILT_PROC event");
			}
			if (events[i].fflags & NOTE_FORK)
				printf("slot %d: pid %d forked\n", s->index,
				    (int)s->pid);
			if (!(events[i].fflags & NOTE_EXIT))
				continue;
			report(s, (int)events[i].data);
			/* The kevent told us; waitpid() reaps. */
			if (waitpid(s->pid, NULL, 0) == -1)
				fail("waitpid");
			if (s->restarts == maxrestarts) {
				printf("slot %d: gave up after %d restart(s)\n",
				    s->index, s->restarts);
				running--;
				continue;
			}
			s->restarts++;
			runs++;
			start(s);
			printf("slot %d: restarted as pid %d\n", s->index,
			    (int)s->pid);
			watch(kq, s);
		}
		fflush(stdout);
	}
	printf("all %d slot(s) done after %d run(s)\n", nslots, runs);
	return 0;
}
