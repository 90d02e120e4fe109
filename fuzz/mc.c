/* fuzz/mc: khmcd's text and meta protocols (src/mc/proto_text.c,
 * proto_meta.c), driven by bytes as the server drives them, without a
 * socket, on a fresh 4 MiB cache.  The input's first byte sets how the
 * rest is cut into reads (1-64 bytes each: values and lines split
 * anywhere); the rest is what a client sends.  Output is taken after each
 * read, as a client that reads would.  Checks: the connection asks only
 * for what mc_proto_process documents; its input cursor stays inside its
 * buffer.  (Not that curr_items <= total_items: "stats reset" zeroes the
 * second, as memcached's does.) */
#include "fuzz.h"
#include "mc/conn.h"

#define NOW 1800000000u

static void
drain(struct mc_conn *c)
{
	struct iovec iov[64];
	int n;
	while ((n = mc_conn_iov(c, iov, 64)) > 0) {
		size_t total = 0;
		for (int i = 0; i < n; i++)
			total += iov[i].iov_len;
		mc_conn_sent(c, total);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mc_cache cache;
	static struct mc_ctx ctx;
	static struct mc_tstats st, *stp;
	static struct mc_conn c;
	struct mc_cache_config cfg = {.item_bytes = 4u << 20, .initial_buckets = 16};
	char err[128];

	if (size == 0)
		return 0;
	FUZZ_CHECK(mc_cache_init(&cache, &cfg, err, sizeof(err)) == 0);
	memset(&ctx, 0, sizeof(ctx));
	memset(&st, 0, sizeof(st));
	ctx.cache = &cache;
	mc_settings_default(&ctx.settings);
	ctx.nthreads = 1;
	stp = &st;
	ctx.tstats = &stp;
	ctx.started = NOW;
	FUZZ_CHECK(mc_conn_init(&c, -1, &ctx, &st) == 0);
	c.now = NOW;

	size_t chunk = (size_t)(data[0] % 64) + 1, p = 1;
	int rc = MC_PROC_MORE;
	while (p < size && rc != MC_PROC_CLOSE) {
		size_t n = size - p < chunk ? size - p : chunk;
		if (c.state == MC_CONN_NREAD && c.rstart == c.rend && c.rleft > 0) {
			/* as the server does: straight into the item */
			size_t k = n < c.rleft ? n : c.rleft;
			memcpy(c.ritem, data + p, k);
			c.ritem += k;
			c.rleft -= k;
			n = k;
		} else {
			size_t room;
			char *space = mc_conn_rspace(&c, &room);
			FUZZ_CHECK(space != NULL && room > 0);
			n = n < room ? n : room;
			memcpy(space, data + p, n);
			c.rend += n;
		}
		p += n;
		do {
			rc = mc_proto_process(&c);
			FUZZ_CHECK(rc == MC_PROC_MORE || rc == MC_PROC_FULL || rc == MC_PROC_CLOSE);
			FUZZ_CHECK(c.rstart <= c.rend && c.rend <= c.rsize);
			drain(&c);
		} while (rc == MC_PROC_FULL);
		c.now++;
	}
	mc_conn_release(&c);
	mc_cache_destroy(&cache);
	return 0;
}
