/* fuzz/ramdisk: unpacking what a principal loaded as a ramdisk
 * (ramdisk_unpack, src/image/ramdisk.c), which khd does as root before a
 * node boots.  The input is the loaded bytes (cpio, gzip'd cpio, either in
 * a uImage).  Each run unpacks into a fresh directory "root" of a private
 * sandbox (under /dev/shm when it can) beside a directory "out" and a file
 * "victim" that no archive may touch; seeds aim symlinks and hard links at
 * them.  Checks: an accepted archive leaves exactly its tree, a refused one
 * leaves nothing and says why; "out" and "victim" never change; the tree
 * is removed whole. */
#include "fuzz.h"
#include "image/ramdisk.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64], root[96], out[96], victim[96];

static void
cleanup(void)
{
	if (base[0])
		ramdisk_remove(AT_FDCWD, base);
}

static void
setup(void)
{
	const char *dirs[] = {"/dev/shm", "/tmp"};
	for (size_t i = 0; i < 2 && !base[0]; i++) {
		snprintf(base, sizeof(base), "%s/khfuzz-ramdisk-XXXXXX", dirs[i]);
		if (mkdtemp(base) == NULL)
			base[0] = '\0';
	}
	if (!base[0])
		abort();
	snprintf(root, sizeof(root), "%s/root", base);
	snprintf(out, sizeof(out), "%s/out", base);
	snprintf(victim, sizeof(victim), "%s/victim", base);
	int fd = open(victim, O_CREAT | O_WRONLY | O_EXCL, 0644);
	if (mkdir(out, 0755) == -1 || fd == -1 || write(fd, "secret\n", 7) != 7)
		abort();
	close(fd);
	atexit(cleanup);
}

/* base holds out, victim and, when want_root, root; nothing else. */
static void
check_sandbox(int want_root)
{
	DIR *d = opendir(base);
	struct dirent *de;
	int n = 0, has_root = 0;
	char buf[16];
	struct stat st;

	FUZZ_CHECK(d != NULL);
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		has_root |= !strcmp(de->d_name, "root");
	}
	closedir(d);
	FUZZ_CHECK(has_root == want_root && n == 2 + want_root);
	d = opendir(out);
	FUZZ_CHECK(d != NULL);
	while ((de = readdir(d)) != NULL)
		FUZZ_CHECK(!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."));
	closedir(d);
	int fd = open(victim, O_RDONLY | O_NOFOLLOW);
	FUZZ_CHECK(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 7 && st.st_nlink == 1);
	FUZZ_CHECK(read(fd, buf, sizeof(buf)) == 7 && memcmp(buf, "secret\n", 7) == 0);
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	enum img_kind kind;
	size_t off, len;

	if (!base[0])
		setup();
	if (image_classify(data, size, &kind, &off, &len, err, sizeof(err)) < 0 ||
	    kind != IMG_RAMDISK)
		return 0;
	err[0] = '\0';
	if (ramdisk_unpack_limit(data, size, root, 4u << 20, err, sizeof(err)) == 0) {
		check_sandbox(1);
		FUZZ_CHECK(ramdisk_remove(AT_FDCWD, root) == 0);
	} else {
		FUZZ_CHECK(strncmp(err, "ramdisk: ", 9) == 0);
	}
	check_sandbox(0);
	return 0;
}
