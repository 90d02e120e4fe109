/* khfs: mount a principal's view of the facility (docs/khfs.md). */
#include "khfs/khfs.h"

int
main(int argc, char **argv)
{
	return khfs_main(argc, argv);
}
