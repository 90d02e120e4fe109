/* counter: a shared counter and a message board in one node's memory,
 * used by its peers with one-sided operations (docs/rdma.md).
 *
 *   counter serve IFACE          expose 4 KiB, print its key, serve until killed
 *   counter use IFACE PEER KEY   write a line, read it back, add 1 a thousand times
 *
 * Build: cc -O2 -o counter counter.c -lkhrdma */
#include <khrdma.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
fail(const char *what)
{
	fprintf(stderr, "counter: %s: %s\n", what, khrdma_last_error());
	exit(1);
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: counter serve IFACE | counter use IFACE PEER KEY\n");
		return 2;
	}
	khrdma_dev *dev = khrdma_open(argv[2], NULL); /* the domain of this interface */
	if (dev == NULL)
		fail("open");
	char *mem = khrdma_alloc(dev, 4096); /* shared memory the device can use */
	if (mem == NULL)
		fail("alloc");

	if (strcmp(argv[1], "serve") == 0) {
		/* Bytes 0-7: the counter; 64 onwards: the board.  Peers may
		 * read, write and use atomics on all of it; this process does
		 * nothing more: the facility serves every operation. */
		struct khrdma_mr *mr =
		    khrdma_reg_mr(dev, mem, 4096,
				  KHRDMA_REMOTE_READ | KHRDMA_REMOTE_WRITE | KHRDMA_REMOTE_ATOMIC);
		if (mr == NULL)
			fail("register");
		printf("key 0x%" PRIx64 "\n", mr->key);
		fflush(stdout);
		for (;;)
			pause();
	}

	if (argc != 5 || strcmp(argv[1], "use") != 0)
		return 2;
	struct khrdma_peer peer;
	if (khrdma_peer(dev, argv[3], &peer) < 0) /* its address in the domain, or its rank */
		fail("peer");
	uint64_t key = strtoull(argv[4], NULL, 0);
	struct khrdma_mr *local = khrdma_reg_mr(dev, mem, 4096, 0); /* local use only */
	if (local == NULL)
		fail("register");

	struct khrdma_info me;
	khrdma_query(dev, &me);
	int n = snprintf(mem, 64, "hello from node %u (%s)", me.rank, me.addr) + 1;
	if (khrdma_write(dev, peer, key, 64, local, 0, (uint32_t)n) < 0)
		fail("write");
	memset(mem, 0, 64);
	if (khrdma_read(dev, peer, key, 64, local, 0, (uint32_t)n) < 0)
		fail("read");
	printf("board: %s\n", mem);

	/* A thousand increments, posted 16 at a time and polled. */
	struct khrdma_wc wc[16];
	int posted = 0, done = 0;
	uint64_t last = 0;
	while (done < 1000) {
		while (posted < 1000 && posted - done < 16) {
			if (khrdma_post_fadd(dev, peer, key, 0, local, 8 * (size_t)(posted % 16), 1,
					     (uint64_t)posted) < 0)
				fail("post");
			posted++;
		}
		int got = khrdma_wait(dev, wc, 16, 1000);
		if (got < 0)
			fail("wait");
		for (int i = 0; i < got; i++) {
			if (wc[i].status != KHRDMA_OK) {
				fprintf(stderr, "counter: fadd: %s\n",
					khrdma_strerror(wc[i].status));
				return 1;
			}
			if (wc[i].result + 1 > last)
				last = wc[i].result + 1;
		}
		done += got;
	}
	printf("counter: %" PRIu64 "\n", last);
	khrdma_close(dev);
	return 0;
}
