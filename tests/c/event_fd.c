/*
 * ws_event_fd in a poll(2) run loop instead of a blocked ws_poll_event:
 * the descriptor is readable whenever events are pending, draining with
 * ws_poll_event(c, 0, ...) until WS_TIMEOUT clears it, no wakeup is lost
 * under a stream of echoes, and ws_free closes it.
 *
 * usage: event_fd ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>

#include "check.h"

#define MESSAGES 1000

/* Whether `fd` is readable within `timeout_ms`. */
static int readable(int fd, int timeout_ms) {
  struct pollfd p;
  int r;
  int tries;
  for (tries = 0; tries < 100; tries++) {
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    r = poll(&p, 1, timeout_ms);
    if (r >= 0 || errno != EINTR) break;
  }
  CHECK(r >= 0, "poll(2) failed: %s", strerror(errno));
  CHECK(!(p.revents & (POLLNVAL | POLLERR)), "poll(2) on the event fd: revents 0x%x",
        (unsigned)p.revents);
  return r == 1 && (p.revents & POLLIN);
}

static int fd_is_open(int fd) {
  errno = 0;
  return !(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
}

struct seen {
  int open;
  int messages;
  int closed;
  int terminated;
};

/* Drains with timeout 0 until WS_TIMEOUT (or TERMINATED); returns how many. */
static int drain(ws_client *c, struct seen *s) {
  int n;
  for (n = 0; n < 100000; n++) {
    ws_event ev;
    ws_status st = ws_poll_event(c, 0, &ev);
    if (st == WS_TIMEOUT) return n;
    CHECK(st == WS_OK, "ws_poll_event(c, 0, &ev) returned %s", status_name(st));
    if (ev.kind != WS_EVENT_TEXT) print_event(&ev);
    switch (ev.kind) {
    case WS_EVENT_OPEN: s->open = 1; break;
    case WS_EVENT_TEXT: {
      char want[32];
      int len = snprintf(want, sizeof want, "fd %d", s->messages);
      CHECK(ev.len == (size_t)len && memcmp(ev.data, want, (size_t)len) == 0,
            "echo #%d is \"%.*s\", expected \"%s\"", s->messages, (int)ev.len,
            (const char *)ev.data, want);
      s->messages++;
      break;
    }
    case WS_EVENT_CLOSED: s->closed = 1; break;
    case WS_EVENT_TERMINATED: s->terminated = 1; return n + 1;
    case WS_EVENT_STATE: break;
    default:
      fail_at(__FILE__, __LINE__, "drain", "unexpected %s", event_name(ev.kind));
    }
  }
  fail_at(__FILE__, __LINE__, "drain", "ws_poll_event never returned WS_TIMEOUT");
}

/*
 * Runs the loop until `done(s)`: wait on the fd, then drain. If the fd
 * stays unreadable for 3 s while an event is in fact pending, a wakeup
 * was lost.
 */
static void run_until(int line, ws_client *c, int fd, struct seen *s,
                      int (*done)(const struct seen *)) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int rounds;
  for (rounds = 0; rounds < 100000 && !done(s); rounds++) {
    if (now_ms() > deadline) fail_at(__FILE__, line, "run_until", "not done before the deadline");
    if (!readable(fd, 3000)) {
      ws_event ev;
      ws_status st = ws_poll_event(c, 0, &ev);
      if (st == WS_OK) {
        print_event(&ev);
        fail_at(__FILE__, line, "event fd",
                "not readable for 3 s although an event was pending (a lost wakeup)");
      }
      continue;
    }
    /* Readable. (A wakeup with nothing left to poll is allowed: the
     * header does not promise there are none.) */
    drain(c, s);
  }
  if (!done(s)) fail_at(__FILE__, line, "run_until", "not done within the round limit");
}

static int opened(const struct seen *s) { return s->open; }
static int all_echoed(const struct seen *s) { return s->messages == MESSAGES; }
static int terminated(const struct seen *s) { return s->terminated; }

int main(int argc, char **argv) {
  ws_client *c = NULL;
  struct seen s;
  int fd;
  int i;

  test_begin(55);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path\n", argv[0]);
    return 2;
  }
  memset(&s, 0, sizeof s);

  STAGE("ws_event_fd of NULL");
  CHECK(ws_event_fd(NULL) == -1, "ws_event_fd(NULL) is not -1");
  CHECK(ws_last_error() != NULL, "ws_event_fd(NULL) set no ws_last_error()");

  STAGE("connect and wait for WS_EVENT_OPEN on the fd");
  CHECK_STATUS(ws_connect(argv[1], NULL, &c), WS_OK);
  fd = ws_event_fd(c);
  CHECK(fd >= 0, "ws_event_fd returned %d", fd);
  run_until(__LINE__, c, fd, &s, opened);

  STAGE("drained: the fd is no longer readable");
  CHECK_STATUS(ws_poll_event(c, 0, &(ws_event){0}), WS_TIMEOUT);
  CHECK(!readable(fd, 0), "the event fd is readable after draining to WS_TIMEOUT (idle)");
  CHECK(!readable(fd, 200), "the event fd became readable on an idle connection");

  STAGE("1000 echoes through the run loop");
  for (i = 0; i < MESSAGES; i++) {
    char buf[32];
    int len = snprintf(buf, sizeof buf, "fd %d", i);
    CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)buf, (size_t)len), WS_OK);
    /* Interleave the run loop with the sends now and then. */
    if (i % 100 == 99 && readable(fd, 0)) drain(c, &s);
  }
  run_until(__LINE__, c, fd, &s, all_echoed);

  STAGE("close and drain to WS_EVENT_TERMINATED through the fd");
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  run_until(__LINE__, c, fd, &s, terminated);
  CHECK(s.closed, "no WS_EVENT_CLOSED before WS_EVENT_TERMINATED");

  STAGE("ws_free closes the fd");
  ws_free(c);
  CHECK(!fd_is_open(fd), "fd %d is still open right after ws_free returned", fd);
  printf("event_fd: all checks passed\n");
  return 0;
}
