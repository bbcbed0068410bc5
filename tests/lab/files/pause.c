/* The lab's pod sandbox process: holds the pod's namespaces open and does nothing else.
 * Blocks in pause() forever, reaps the zombies reparented to it (it runs as PID 1 of the
 * pod), exits 0 on SIGINT or SIGTERM. Built with `gcc -static -Os` by tests/lab/lab_images.py. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *text) { (void)!write(2, text, strlen(text)); }

static void stop(int sig) {
	say(sig == SIGTERM ? "pause: SIGTERM, exiting\n" : "pause: SIGINT, exiting\n");
	_exit(0);
}

static void reap(int sig) {
	int saved = errno;
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int handle(int sig, void (*handler)(int), int flags) {
	struct sigaction action;
	memset(&action, 0, sizeof action);
	action.sa_handler = handler;
	action.sa_flags = flags;
	sigemptyset(&action.sa_mask);
	return sigaction(sig, &action, NULL);
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		say("pause (kubelab lab)\n");
		return 0;
	}
	if (handle(SIGINT, stop, 0) || handle(SIGTERM, stop, 0) ||
	    handle(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART)) {
		say("pause: sigaction failed\n");
		return 1;
	}
	if (getpid() != 1)
		say("pause: warning: not running as PID 1\n");
	for (;;)
		pause();
}
