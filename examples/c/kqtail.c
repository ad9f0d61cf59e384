/*
 * kqtail.c: "tail -f" with kqueue, in one event loop.
 *
 * Three kevents on one queue, registered with a single changelist:
 *
 *   FILE  EVFILT_READ.  On a regular file the read filter is true while
 *         the descriptor's offset is before the end of the file, and data
 *         says how many bytes are left: when another program appends, the
 *         loop wakes up and copies exactly those bytes to stdout.  At the
 *         end of the file it is quiet (no busy loop, no sleep(1) polling).
 *   FILE  EVFILT_VNODE, EV_CLEAR, NOTE_RENAME | NOTE_DELETE.  The knote is
 *         on the open file, not on its name, so kqtail goes on following
 *         the file after a rename or an unlink (like tail -f, not tail -F)
 *         and says so on stderr.
 *   PID   EVFILT_PROC, NOTE_EXIT (only with --pid).  When that process
 *         exits, kqtail copies what is left and stops, like GNU tail's
 *         --pid: the event's data is the process's wait status.
 *
 * Usage: kqtail [--pid PID] FILE
 *
 * It starts at the end of FILE (what is there already is not printed),
 * prints "kqtail: following FILE" on stderr once it is watching, and exits
 * with status 0 when PID exits, 1 on a system error (FILE cannot be
 * opened, PID does not exist), 2 for bad arguments.
 *
 * Portable to macOS and the BSDs; on Linux build it with
 * examples/c/cc-kq.sh (see examples/c/README.md).
 */
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "kqtail";

static void
fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
	exit(1);
}

static void
usage(const char *why)
{
	fprintf(stderr, "%s: %s\nusage: %s [--pid PID] FILE\n", prog, why, prog);
	exit(2);
}

/* Copies `left` bytes (or up to the end, if fewer) from fd to stdout. */
static void
copy(int fd, long long left)
{
	char buf[4096];
	ssize_t n;

	while (left > 0) {
		n = read(fd, buf, left < (long long)sizeof(buf) ?
		    (size_t)left : sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			fail("read");
		if (n == 0)
			break;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			fail("write to stdout");
		left -= n;
	}
	fflush(stdout);
}

/* Copies whatever is left in the file, for the last time. */
static void
drain(int fd)
{
	copy(fd, LLONG_MAX);
}

/* What a wait status says, in words. */
static void
describe(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "ended (wait status %#x)", status);
}

int
main(int argc, char **argv)
{
	struct kevent changes[3], events[8];
	const char *path = NULL;
	long pid = 0;
	char *end;
	int kq, fd, i, n, nchanges;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pid") == 0) {
			if (++i == argc)
				usage("--pid needs a process id");
			errno = 0;
			pid = strtol(argv[i], &end, 10);
			if (errno != 0 || *end != '\0' || pid <= 0 ||
			    pid > INT_MAX)
				usage("--pid needs a process id");
		} else if (argv[i][0] == '-' && argv[i][1] != '\0')
			usage("unknown option");
		else if (path != NULL)
			usage("one FILE only");
		else
			path = argv[i];
	}
	if (path == NULL)
		usage("FILE is missing");

	if ((fd = open(path, O_RDONLY)) == -1)
		fail(path);
	if (lseek(fd, 0, SEEK_END) == -1)
		fail("lseek");
	if ((kq = kqueue()) == -1)
		fail("kqueue");

	nchanges = 0;
	EV_SET(&changes[nchanges++], fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
	EV_SET(&changes[nchanges++], fd, EVFILT_VNODE, EV_ADD | EV_CLEAR,
	    NOTE_RENAME | NOTE_DELETE, 0, NULL);
	if (pid != 0)
		EV_SET(&changes[nchanges++], (uintptr_t)pid, EVFILT_PROC,
		    EV_ADD, NOTE_EXIT, 0, NULL);
	if (kevent(kq, changes, nchanges, NULL, 0, NULL) == -1) {
		if (errno == ESRCH) {
			fprintf(stderr, "%s: no process %ld\n", prog, pid);
			exit(1);
		}
		fail("kevent(changes)");
	}
	fprintf(stderr, "%s: following %s\n", prog, path);

	for (;;) {
		n = kevent(kq, NULL, 0, events, 8, NULL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			fail("kevent(events)");
		for (i = 0; i < n; i++) {
			struct kevent *ev = &events[i];
			char how[64];

			switch (ev->filter) {
			case EVFILT_READ:
				/* data: the bytes between our offset and the end. */
				copy(fd, (long long)ev->data);
				break;
			case EVFILT_VNODE:
				if (ev->fflags & NOTE_RENAME)
					fprintf(stderr, "%s: %s: renamed\n", prog,
					    path);
				if (ev->fflags & NOTE_DELETE)
					fprintf(stderr, "%s: %s: deleted\n", prog,
					    path);
				break;
			case EVFILT_PROC:
				/* data: the wait status; the knote is gone now. */
				drain(fd);
				describe((int)ev->data, how, sizeof(how));
				fprintf(stderr, "%s: process %ld %s\n", prog, pid,
				    how);
				close(kq);
				close(fd);
				return 0;
			}
		}
	}
}
