/* fuzz/config: khd.conf (src/khd/config.c), read when khd starts.  The
 * input is the file.  Checks: an accepted file gives types within the
 * limits config.h and docs promise (unique valid names, ct or vm, the
 * ranges of each setting) and a policy chain (src/policy parses its lines);
 * a refused one names its line and leaves nothing to free. */
#include "fuzz.h"
#include "common/util.h"
#include "khd/config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config c;
	char err[256] = "", *text = fuzz_str(data, size);

	if (config_parse(text, &c, err, sizeof(err)) == 0) {
		FUZZ_CHECK(c.ntypes >= 0 && c.ntypes <= KH_MAX_TYPES);
		FUZZ_CHECK(strlen(c.host) < sizeof(c.host));
		for (int i = 0; i < c.ntypes; i++) {
			const struct node_type *t = &c.types[i];
			FUZZ_CHECK(valid_name(t->name));
			FUZZ_CHECK(strcmp(t->backend, "ct") == 0 || strcmp(t->backend, "vm") == 0);
			FUZZ_CHECK(t->cpu_milli > 0 && t->cpu_milli <= 256 * 1000 + 999);
			FUZZ_CHECK(t->mem >= (16ULL << 20) && t->mem <= (1ULL << 40));
			FUZZ_CHECK(t->pids >= 8 && t->pids <= (1 << 22));
			FUZZ_CHECK(t->max_ifs >= 1 && t->max_ifs <= KH_MAX_IFS);
			FUZZ_CHECK(t->count >= 0 && t->count <= KH_MAX_NODES);
			for (int j = 0; j < i; j++)
				FUZZ_CHECK(strcmp(c.types[j].name, t->name) != 0);
		}
		FUZZ_CHECK(c.policy != NULL);
		config_free(&c);
	} else {
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0);
		FUZZ_CHECK(c.policy == NULL);
	}
	free(text);
	return 0;
}
