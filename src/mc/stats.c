/* stats: the stats command and its subcommands (settings, items, slabs,
 * sizes, reset, detail) with memcached's field names, so that tools that
 * read them (memcached-tool, monitoring) find what they expect.  Counters of
 * worker threads are summed as they are read; "stats reset" keeps a
 * baseline instead of writing to other threads' counters. */
#include "mc/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void stat_line(struct mc_conn *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
stat_line(struct mc_conn *c, const char *name, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "STAT %s ", name);

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\r';
	buf[n++] = '\n';
	mc_out(c, buf, (size_t)n);
}

#define U(c, name, v) stat_line(c, name, "%llu", (unsigned long long)(v))

/* The workers' counters added up; less the baseline of the last reset
 * unless raw. */
static void
sum_threads(struct mc_ctx *ctx, struct mc_tstats *sum, int raw)
{
	uint64_t *s = (uint64_t *)sum, *base = (uint64_t *)&ctx->reset;

	memset(sum, 0, sizeof(*sum));
	for (int t = 0; t < ctx->nthreads; t++) {
		uint64_t *v = (uint64_t *)ctx->tstats[t];
		for (size_t i = 0; i < MC_TSTATS_N; i++)
			s[i] += __atomic_load_n(&v[i], __ATOMIC_RELAXED);
	}
	for (size_t i = 0; !raw && i < MC_TSTATS_N; i++)
		s[i] -= __atomic_load_n(&base[i], __ATOMIC_RELAXED);
}

static uint64_t
ld(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void
stats_general(struct mc_conn *c)
{
	struct mc_ctx *ctx = c->ctx;
	struct mc_cache *cache = ctx->cache;
	struct mc_tstats s;
	struct rusage ru;
	uint64_t buckets = ld(&cache->assoc.nbuckets);
	int hashpower = 0;

	sum_threads(ctx, &s, 0);
	getrusage(RUSAGE_SELF, &ru);
	while ((UINT64_C(1) << hashpower) < buckets * MC_BUCKET_ENTRIES)
		hashpower++;
	U(c, "pid", getpid());
	U(c, "uptime", c->now - ctx->started);
	U(c, "time", c->now);
	stat_line(c, "version", "%s", MC_VERSION);
	U(c, "pointer_size", sizeof(void *) * 8);
	stat_line(c, "rusage_user", "%ld.%06ld", (long)ru.ru_utime.tv_sec,
		  (long)ru.ru_utime.tv_usec);
	stat_line(c, "rusage_system", "%ld.%06ld", (long)ru.ru_stime.tv_sec,
		  (long)ru.ru_stime.tv_usec);
	U(c, "max_connections", ctx->settings.maxconns);
	U(c, "curr_connections", ld(&ctx->curr_conns));
	U(c, "total_connections", ld(&ctx->total_conns));
	U(c, "rejected_connections", ld(&ctx->rejected_conns));
	U(c, "connection_structures", ld(&ctx->curr_conns));
	U(c, "cmd_get", s.cmd_get);
	U(c, "cmd_set", s.cmd_set);
	U(c, "cmd_flush", s.cmd_flush);
	U(c, "cmd_touch", s.cmd_touch);
	U(c, "cmd_meta", s.cmd_meta);
	U(c, "get_hits", s.get_hits);
	U(c, "get_misses", s.get_misses);
	U(c, "get_expired", s.get_expired);
	U(c, "get_flushed", s.get_flushed);
	U(c, "delete_misses", s.delete_misses);
	U(c, "delete_hits", s.delete_hits);
	U(c, "incr_misses", s.incr_misses);
	U(c, "incr_hits", s.incr_hits);
	U(c, "decr_misses", s.decr_misses);
	U(c, "decr_hits", s.decr_hits);
	U(c, "cas_misses", s.cas_misses);
	U(c, "cas_hits", s.cas_hits);
	U(c, "cas_badval", s.cas_badval);
	U(c, "touch_hits", s.touch_hits);
	U(c, "touch_misses", s.touch_misses);
	U(c, "store_too_large", s.store_too_large);
	U(c, "store_no_memory", s.store_no_memory);
	U(c, "auth_cmds", 0);
	U(c, "auth_errors", 0);
	U(c, "bytes_read", s.bytes_read);
	U(c, "bytes_written", s.bytes_written);
	U(c, "limit_maxbytes", ctx->settings.maxbytes);
	U(c, "accepting_conns", 1);
	U(c, "listen_disabled_num", 0);
	U(c, "threads", ctx->nthreads);
	U(c, "conn_yields", s.conn_yields);
	U(c, "hash_power_level", hashpower);
	U(c, "hash_bytes", buckets * MC_BUCKET_BYTES);
	U(c, "hash_is_expanding", 0);
	U(c, "hash_grows", ld(&cache->assoc.grows));
	U(c, "arena_bytes", cache->arena.size);
	U(c, "bytes", ld(&cache->bytes));
	U(c, "curr_items", ld(&cache->curr_items));
	U(c, "total_items", ld(&cache->total_items));
	U(c, "expired_unfetched", ld(&cache->expired_unfetched));
	U(c, "evicted_unfetched", ld(&cache->evicted_unfetched));
	U(c, "evicted_active", ld(&cache->evicted_active));
	U(c, "evictions", ld(&cache->evictions));
	U(c, "reclaimed", ld(&cache->reclaimed));
	U(c, "slabs_moved", ld(&cache->slabs.pages_moved));
}

static void
stats_settings(struct mc_conn *c)
{
	const struct mc_settings *st = &c->ctx->settings;
	uint64_t b = st->buckets ? st->buckets : 4096;
	int hp = 0;

	while ((UINT64_C(1) << hp) < b * MC_BUCKET_ENTRIES)
		hp++;
	U(c, "maxbytes", st->maxbytes);
	U(c, "maxconns", st->maxconns);
	U(c, "tcpport", st->port);
	U(c, "udpport", 0);
	stat_line(c, "inter", "%s", st->listen ? st->listen : "NULL");
	U(c, "verbosity", __atomic_load_n(&c->ctx->verbosity, __ATOMIC_RELAXED));
	U(c, "oldest", 0);
	stat_line(c, "evictions", "on");
	stat_line(c, "domain_socket", "NULL");
	stat_line(c, "growth_factor", "%.2f", st->factor);
	U(c, "chunk_size", 48);
	U(c, "num_threads", st->threads);
	stat_line(c, "cas_enabled", "yes");
	U(c, "tcp_backlog", 1024);
	stat_line(c, "binding_protocol", "ascii");
	U(c, "item_size_max", MC_ITEM_SIZE_MAX);
	U(c, "hashpower_init", hp);
	stat_line(c, "slab_reassign", "no");
	U(c, "slab_chunk_max", MC_CHUNK_MAX);
	stat_line(c, "lru_crawler", "no");
	stat_line(c, "flush_enabled", "yes");
	stat_line(c, "dump_enabled", "no");
	stat_line(c, "hash_algorithm", "khmc64");
	stat_line(c, "lru_segmented", "no");
	stat_line(c, "memory_file", "memfd:khmcd");
}

static void
stats_slabs(struct mc_conn *c, int items)
{
	struct mc_slabs *s = &c->ctx->cache->slabs;
	int active = 0;
	uint64_t malloced = 0;

	for (int i = 1; i <= s->nclasses; i++) {
		struct mc_slabclass *k = &s->cls[i];
		struct mc_slabclass v;
		uint32_t tail_time = 0;
		char name[64];
		pthread_mutex_lock(&k->lock);
		memcpy(&v, k, sizeof(v));
		if (k->tail != 0)
			tail_time = ((struct mc_chunk *)mc_arena_at(s->arena, k->tail))->time;
		pthread_mutex_unlock(&k->lock);
		if (v.pages == 0)
			continue;
		active++;
		malloced += v.pages * s->page_size;
		uint64_t nitems = ld(&c->ctx->cache->cls_items[i]);
#define K(fmtname, val)                                                                            \
	do {                                                                                       \
		snprintf(name, sizeof(name), fmtname, i);                                          \
		U(c, name, val);                                                                   \
	} while (0)
		if (items) {
			if (nitems == 0)
				continue;
			K("items:%d:number", nitems);
			K("items:%d:number_hot", 0);
			K("items:%d:number_warm", 0);
			K("items:%d:number_cold", nitems);
			K("items:%d:age_hot", 0);
			K("items:%d:age_warm", 0);
			K("items:%d:age", tail_time && c->now > tail_time ? c->now - tail_time : 0);
			K("items:%d:mem_requested", v.requested);
			K("items:%d:evicted", v.evictions);
			K("items:%d:evicted_nonzero", 0);
			K("items:%d:outofmemory", v.outofmemory);
			K("items:%d:reclaimed", v.reclaimed);
		} else {
			uint64_t total = v.pages * v.perpage;
			K("%d:chunk_size", v.size);
			K("%d:chunks_per_page", v.perpage);
			K("%d:total_pages", v.pages);
			K("%d:total_chunks", total);
			K("%d:used_chunks", v.used);
			K("%d:free_chunks", v.nfree);
			K("%d:free_chunks_end", (v.carve_end - v.carve) / v.size);
			K("%d:mem_requested", v.requested);
			K("%d:pages_moved_in", v.moved_in);
			K("%d:pages_moved_out", v.moved_out);
		}
#undef K
	}
	if (!items) {
		U(c, "active_slabs", active);
		U(c, "total_malloced", malloced);
	}
}

void
mc_stats_command(struct mc_conn *c, struct mc_token *tok, size_t ntok)
{
	const char *sub = tok[1].value;

	if (ntok == 2) {
		stats_general(c);
	} else if (strcmp(sub, "reset") == 0) {
		struct mc_tstats now;
		uint64_t *v = (uint64_t *)&now, *base = (uint64_t *)&c->ctx->reset;
		sum_threads(c->ctx, &now, 1);
		for (size_t i = 0; i < MC_TSTATS_N; i++)
			__atomic_store_n(&base[i], v[i], __ATOMIC_RELAXED);
		__atomic_store_n(&c->ctx->cache->evictions, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&c->ctx->cache->total_items, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&c->ctx->rejected_conns, 0, __ATOMIC_RELAXED);
		mc_out_str(c, "RESET");
		return;
	} else if (strcmp(sub, "detail") == 0) {
		const char *arg = ntok >= 4 ? tok[2].value : "";
		if (strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)
			mc_out_str(c, "OK");
		else if (strcmp(arg, "dump") == 0)
			mc_out_str(c, "END");
		else
			mc_out_str(c, "CLIENT_ERROR usage: stats detail on|off|dump");
		return;
	} else if (strcmp(sub, "settings") == 0) {
		stats_settings(c);
	} else if (strcmp(sub, "items") == 0) {
		stats_slabs(c, 1);
	} else if (strcmp(sub, "slabs") == 0) {
		stats_slabs(c, 0);
	} else if (strcmp(sub, "sizes") == 0) {
		stat_line(c, "sizes_status", "disabled");
	} else {
		mc_out_str(c, "ERROR");
		return;
	}
	mc_out(c, "END\r\n", 5);
}
