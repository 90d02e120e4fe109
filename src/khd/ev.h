/* ev: khd's event loop (epoll), after Redis's ae: file events and timers,
 * nothing else.  Callbacks run one at a time; nothing here blocks. */
#ifndef KH_EV_H
#define KH_EV_H

#include <stdint.h>

#define EV_READ	 1
#define EV_WRITE 2

struct ev;
typedef void ev_fd_fn(struct ev *ev, int fd, int events, void *arg);
typedef void ev_timer_fn(struct ev *ev, void *arg);

struct ev *ev_new(void);
void ev_free(struct ev *ev);
/* Watch fd for events (EV_READ|EV_WRITE); again to change the mask. */
int ev_watch(struct ev *ev, int fd, int events, ev_fd_fn *fn, void *arg);
void ev_unwatch(struct ev *ev, int fd);
/* Call fn once after ms milliseconds.  Returns an id for ev_cancel. */
uint64_t ev_after(struct ev *ev, uint64_t ms, ev_timer_fn *fn, void *arg);
void ev_cancel(struct ev *ev, uint64_t id);
void ev_run(struct ev *ev);
void ev_stop(struct ev *ev);

#endif
