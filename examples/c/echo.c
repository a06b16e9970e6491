/* A minimal Tether client in C: connect, send text and binary, print the
 * echoes, close. Usage: echo ws://127.0.0.1:PORT/ */
#include <stdio.h>
#include <string.h>
#include "tether.h"

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  ws_client *c = NULL;
  if (ws_connect(argv[1], "{\"ping_interval_ms\": 15000}", &c) != WS_OK) {
    fprintf(stderr, "connect: %s\n", ws_last_error());
    return 1;
  }
  const uint8_t bytes[] = {1, 2, 3};
  ws_send(c, WS_TEXT, (const uint8_t *)"hi", 2);   /* queued until open */
  ws_send(c, WS_BINARY, bytes, sizeof bytes);

  int echoes = 0;
  ws_event ev;
  for (int polls = 0; polls < 1000; polls++) {
    ws_status st = ws_poll_event(c, 5000, &ev);
    if (st == WS_TIMEOUT) break;
    if (st != WS_OK) { fprintf(stderr, "poll: %s\n", ws_last_error()); break; }
    switch (ev.kind) {
      case WS_EVENT_TEXT:   printf("text: %.*s\n", (int)ev.len, (const char *)ev.data); break;
      case WS_EVENT_BINARY: printf("binary: %zu bytes\n", ev.len); break;
      case WS_EVENT_CLOSED: printf("closed: %u\n", (unsigned)ev.close_code); break;
      case WS_EVENT_ERROR:  printf("error %d: %.*s\n", (int)ev.error, (int)ev.len, (const char *)ev.data); break;
      default: break;
    }
    if ((ev.kind == WS_EVENT_TEXT || ev.kind == WS_EVENT_BINARY) && ++echoes == 2)
      ws_close(c, 1000, "bye");
    if (ev.kind == WS_EVENT_TERMINATED) break;
  }
  ws_free(c);
  return echoes == 2 ? 0 : 1;
}
