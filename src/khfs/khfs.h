/* khfs: the facility as files (docs/khfs.md), served through FUSE's
 * low-level API by one thread whose loop also holds its khd connections. */
#ifndef KH_KHFS_H
#define KH_KHFS_H

/* khfs [-c CRED USER | --operator] [--socket PATH] MOUNTPOINT: serve until
 * unmounted (fusermount3 -u) or SIGTERM/SIGINT.  Returns the exit status. */
int khfs_main(int argc, char *argv[]);

#endif
