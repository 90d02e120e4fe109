/* conhold-*: the console holder (src/conhold) as khd uses it: it is started
 * on first need, keeps a console master while nobody is connected, drains
 * and counts what the node prints meanwhile, gives the very console back
 * to the next connection, forgets a dropped one, and exits once it holds
 * nothing and its client is gone.  The holder is this test program itself,
 * turned into one before main (as khd is). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "conhold/conhold.h"

static char dir[64];

static void
msleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Does anything listen at the holder's socket? */
static int
holder_listens(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), ok;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/conhold.sock", dir);
	ok = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return ok;
}

/* A pty as a node's console: master (for khd) and slave (the node's). */
static void
pty(int *master, int *slave)
{
	char name[64];
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	assert_true(*master >= 0);
	assert_int_equal(grantpt(*master), 0);
	assert_int_equal(unlockpt(*master), 0);
	assert_int_equal(ptsname_r(*master, name, sizeof(name)), 0);
	*slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	assert_true(*slave >= 0);
	struct termios t;
	tcgetattr(*slave, &t);
	cfmakeraw(&t);
	tcsetattr(*slave, TCSANOW, &t);
}

/* conhold-1.1: the first open starts a holder, which holds nothing; it
 * exits when its client goes. */
static void
conhold_1_1(void **state)
{
	struct conhold_held *held;
	int n;
	char err[256];
	struct conhold *ch = conhold_open(dir, &held, &n, err, sizeof(err));
	if (ch == NULL)
		fail_msg("%s", err);
	assert_int_equal(n, 0);
	free(held);
	assert_true(holder_listens());
	conhold_close(ch);
	for (int i = 0; i < 100 && holder_listens(); i++)
		msleep(20);
	assert_false(holder_listens());
}

/* conhold-1.2: a console held past its client: output meanwhile is drained
 * and counted, the next client gets the same console back (input goes
 * through it to the node's end); a dropped console is forgotten. */
static void
conhold_1_2(void **state)
{
	struct conhold_held *held;
	int n, master, slave;
	char err[256], buf[64];
	struct conhold *ch = conhold_open(dir, &held, &n, err, sizeof(err));
	assert_non_null(ch);
	free(held);
	pty(&master, &slave);
	assert_int_equal(conhold_hold(ch, 7, master), 0);
	conhold_close(ch);
	close(master); /* only the holder has it now */
	msleep(100);
	assert_int_equal(write(slave, "0123456789", 10), 10); /* printed while nobody is there */
	msleep(200);
	assert_int_equal(write(slave, "abcde", 5), 5);
	msleep(200);
	ch = conhold_open(dir, &held, &n, err, sizeof(err));
	assert_non_null(ch);
	assert_int_equal(n, 1);
	assert_int_equal(held[0].rank, 7);
	assert_int_equal(held[0].lost, 15);
	/* the same console: what the node prints now reaches us */
	assert_int_equal(write(slave, "hello", 5), 5);
	struct pollfd p = {held[0].fd, POLLIN, 0};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(held[0].fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	/* and what we type reaches the node */
	assert_int_equal(write(held[0].fd, "in", 2), 2);
	p = (struct pollfd){slave, POLLIN, 0};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(slave, buf, sizeof(buf)), 2);
	close(held[0].fd);
	free(held);
	/* counted once: a second handover reports nothing new */
	conhold_close(ch);
	msleep(50);
	ch = conhold_open(dir, &held, &n, err, sizeof(err));
	assert_non_null(ch);
	assert_int_equal(n, 1);
	assert_int_equal(held[0].lost, 0);
	close(held[0].fd);
	free(held);
	conhold_drop(ch, 7);
	conhold_close(ch);
	for (int i = 0; i < 100 && holder_listens(); i++)
		msleep(20);
	assert_false(holder_listens()); /* it held nothing more: gone */
	close(slave);
}

/* conhold-2.1: a directory whose socket path is too long is one clear
 * error, and nothing is started. */
static void
conhold_2_1(void **state)
{
	char longdir[200], err[256];
	struct conhold_held *held;
	int n;
	memset(longdir, 'x', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	assert_null(conhold_open(longdir, &held, &n, err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(conhold_1_1),
					   cmocka_unit_test(conhold_1_2),
					   cmocka_unit_test(conhold_2_1)};
	snprintf(dir, sizeof(dir), "/tmp/kh-conhold-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char path[128];
	snprintf(path, sizeof(path), "%s/conhold.sock", dir);
	unlink(path);
	rmdir(dir);
	return rc;
}
