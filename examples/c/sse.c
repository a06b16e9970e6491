/* A minimal Server-Sent Events client in C: print three events, then stop.
 * Reconnects (with Last-Event-ID) on its own if the stream drops.
 * Usage: sse http://127.0.0.1:PORT/events */
#include <stdio.h>
#include "tether.h"

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  sse_client *c = NULL;
  if (sse_connect(argv[1], "{\"read_timeout_ms\": 30000}", &c) != WS_OK) {
    fprintf(stderr, "connect: %s\n", ws_last_error());
    return 1;
  }
  int received = 0;
  sse_event ev;
  for (int polls = 0; polls < 1000; polls++) {
    ws_status st = sse_poll_event(c, 5000, &ev);
    if (st == WS_TIMEOUT) break;
    if (st != WS_OK) { fprintf(stderr, "poll: %s\n", ws_last_error()); break; }
    switch (ev.kind) {
      case SSE_EVENT_MESSAGE:
        printf("%s [id %s]: %.*s\n", ev.type, ev.id ? ev.id : "none", (int)ev.len,
               (const char *)ev.data);
        if (++received == 3) sse_close(c);
        break;
      case SSE_EVENT_RECONNECTING:
        printf("reconnecting in %llu ms\n", (unsigned long long)ev.delay_ms);
        break;
      case SSE_EVENT_ERROR: printf("error %d: %s\n", (int)ev.error, (const char *)ev.data); break;
      default: break;
    }
    if (ev.kind == SSE_EVENT_TERMINATED) break;
  }
  sse_free(c);
  return received == 3 ? 0 : 1;
}
