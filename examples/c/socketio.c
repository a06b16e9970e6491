/* A minimal Socket.IO client in C: join "/", emit an event and one that
 * wants an acknowledgement, print what comes back, close.
 * Usage: socketio http://127.0.0.1:PORT */
#include <stdio.h>
#include <string.h>
#include "tether.h"

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  sio_client *io = NULL;
  const char *options = "{\"allow_insecure\": true, \"auth\": {\"user\": \"ann\"}}";
  if (sio_connect(argv[1], options, &io) != WS_OK) {
    fprintf(stderr, "connect: %s\n", ws_last_error());
    return 1;
  }
  uint64_t ack_id = 0;
  sio_emit(io, "/", "echo", "[\"hi\", 1]", NULL);     /* waits until "/" is joined */
  sio_emit(io, "/", "ack-me", "[{\"ok\": true}]", &ack_id);

  int answers = 0;
  sio_event ev;
  for (int polls = 0; polls < 1000; polls++) {
    ws_status st = sio_poll_event(io, 5000, &ev);
    if (st == WS_TIMEOUT) break;
    if (st != WS_OK) { fprintf(stderr, "poll: %s\n", ws_last_error()); break; }
    switch (ev.kind) {
      case SIO_EVENT_CONNECT: printf("joined %s\n", ev.nsp); break;
      case SIO_EVENT_EVENT:   printf("event %s: %s\n", ev.name, (const char *)ev.data); answers++; break;
      case SIO_EVENT_ACK:
        if (ev.ack_id == ack_id && ev.error == 0) { printf("ack: %s\n", (const char *)ev.data); answers++; }
        break;
      case SIO_EVENT_ERROR:   printf("error %d: %s\n", (int)ev.error, (const char *)ev.data); break;
      default: break;
    }
    if (answers == 2) { sio_close(io); answers++; }
    if (ev.kind == SIO_EVENT_TERMINATED) break;
  }
  sio_free(io);
  return answers == 3 ? 0 : 1;
}
