/*
 * A real Tether Socket.IO client (tether.h, sio_*) against the test kit's
 * Socket.IO server (tether_testkit.h, wst_sio_*): polling upgraded to
 * WebSocket, the recorded CONNECT with its auth, a refused namespace, an
 * emit with an ack, server emits (one asking for an ack), a kick, a dropped
 * transport, a restart and a stopped heartbeat, each followed by the
 * client's reconnect, and a network latency. Exits 0 on success.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether.h"
#include "tether_testkit.h"

/* Upper bound on any single wait. */
#define WAIT_MS 20000

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      const char *ws_error = ws_last_error();                                             \
      const char *wst_error = wst_last_error();                                           \
      fprintf(stderr, "%s:%d: FAIL: %s (ws_last_error: %s, wst_last_error: %s)\n",        \
              __FILE__, __LINE__, #cond, ws_error ? ws_error : "-",                       \
              wst_error ? wst_error : "-");                                               \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

/* Polls until an event of `kind` (for namespace `nsp` and, for events, named
 * `name`, if not NULL); `*out` is that event (its pointers valid until the
 * next poll). */
static void poll_until(sio_client *client, sio_event_kind kind, const char *nsp,
                       const char *name, sio_event *out) {
  for (int i = 0; i < 10000; i++) {
    ws_status s = sio_poll_event(client, WAIT_MS, out);
    CHECK(s == WS_OK);
    if (out->kind != kind) {
      continue;
    }
    if (nsp && (!out->nsp || strcmp(out->nsp, nsp) != 0)) {
      continue;
    }
    if (name && (!out->name || strcmp(out->name, name) != 0)) {
      continue;
    }
    return;
  }
  CHECK(!"the event never came");
}

static int data_is(const sio_event *ev, const char *json) {
  return ev->data && ev->len == strlen(json) && memcmp(ev->data, json, ev->len) == 0;
}

static wst_sio_socket *next_socket(wst_sio_server *server) {
  wst_sio_socket *socket = NULL;
  CHECK(wst_sio_server_await_socket(server, WAIT_MS, &socket) == WST_OK);
  CHECK(wst_sio_socket_is_connected(socket) == 1);
  return socket;
}

int main(void) {
  /* Bad input is a status and a message, never a crash. */
  wst_sio_server *server = NULL;
  CHECK(wst_sio_server_start("{\"transports\":[]}", &server) == WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_last_error() != NULL && server == NULL);
  CHECK(wst_sio_server_start(NULL, NULL) == WST_ERR_NULL_ARGUMENT);

  CHECK(wst_sio_server_start("{\"ping_interval_ms\":200,\"ping_timeout_ms\":200}", &server) ==
        WST_OK);
  uint16_t port = 0;
  CHECK(wst_sio_server_port(server, &port) == WST_OK && port != 0);
  CHECK(wst_sio_server_push_connect_reply(server, "/admin", "{\"refuse\":{\"message\":\"nope\"}}") ==
        WST_OK);
  CHECK(wst_sio_server_push_connect_reply(server, "admin", "\"accept\"") ==
        WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_sio_server_push_connect_reply(server, NULL, "\"maybe\"") == WST_ERR_INVALID_ARGUMENT);

  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)port);
  const char *options =
      "{\"auth\":{\"token\":\"c\"},\"connect_timeout_ms\":2000,"
      "\"reconnect\":{\"initial_delay_ms\":10,\"max_delay_ms\":100,\"jitter\":0}}";
  sio_client *client = NULL;
  CHECK(sio_connect(url, options, &client) == WS_OK);
  sio_event ev;
  poll_until(client, SIO_EVENT_CONNECT, "/", NULL, &ev);

  /* The CONNECT was recorded with its auth; polling was upgraded. */
  wst_sio_connect *connect = NULL;
  CHECK(wst_sio_server_await_connect(server, WAIT_MS, &connect) == WST_OK);
  CHECK(strcmp(wst_sio_connect_nsp(connect), "/") == 0);
  CHECK(strcmp(wst_sio_connect_auth(connect), "{\"token\":\"c\"}") == 0);
  CHECK(wst_sio_connect_accepted(connect) == 1);
  wst_sio_connect_free(connect);
  wst_sio_socket *first = next_socket(server);
  CHECK(strcmp(wst_sio_socket_nsp(first), "/") == 0);
  CHECK(wst_sio_socket_transport(first) == WST_SIO_WEBSOCKET);

  /* A refused namespace. */
  CHECK(sio_join(client, "/admin", "{\"role\":\"guest\"}") == WS_OK);
  poll_until(client, SIO_EVENT_CONNECT_ERROR, "/admin", NULL, &ev);
  CHECK(data_is(&ev, "{\"message\":\"nope\"}"));
  CHECK(wst_sio_server_await_connect(server, WAIT_MS, &connect) == WST_OK);
  CHECK(wst_sio_connect_accepted(connect) == 0);
  CHECK(strcmp(wst_sio_connect_auth(connect), "{\"role\":\"guest\"}") == 0);
  wst_sio_connect_free(connect);

  /* An emit with an ack: recorded, answered by the echo. */
  uint64_t ack_id = 0;
  CHECK(sio_emit(client, "/", "hello", "[1,\"two\"]", &ack_id) == WS_OK && ack_id != 0);
  poll_until(client, SIO_EVENT_ACK, "/", NULL, &ev);
  CHECK(ev.ack_id == ack_id && ev.error == 0 && data_is(&ev, "[1,\"two\"]"));
  wst_sio_event *event = NULL;
  CHECK(wst_sio_server_await_event(server, WAIT_MS, &event) == WST_OK);
  CHECK(strcmp(wst_sio_event_name(event), "hello") == 0);
  CHECK(strcmp(wst_sio_event_args(event), "[1,\"two\"]") == 0);
  uint64_t wire_id = 99;
  CHECK(wst_sio_event_ack_id(event, &wire_id) == 1 && wire_id != 99);
  CHECK(wst_sio_event_attachment_count(event) == 0);
  wst_sio_event_free(event);

  /* Server emits: a plain one, one with an ack the client answers. */
  CHECK(wst_sio_socket_emit(first, "news", "[\"x\"]") == WST_OK);
  poll_until(client, SIO_EVENT_EVENT, "/", "news", &ev);
  CHECK(ev.ack_id == 0 && data_is(&ev, "[\"x\"]"));
  CHECK(wst_sio_socket_emit(first, "", NULL) == WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_sio_socket_emit(first, "news", "{}") == WST_ERR_INVALID_ARGUMENT);
  wst_sio_ack *ack = NULL;
  CHECK(wst_sio_socket_emit_with_ack(first, "question", "[41]", &ack) == WST_OK);
  poll_until(client, SIO_EVENT_EVENT, "/", "question", &ev);
  CHECK(ev.ack_id != 0);
  CHECK(sio_ack(client, "/", ev.ack_id, "[42]") == WS_OK);
  const char *answer = NULL;
  CHECK(wst_sio_ack_await(ack, WAIT_MS, &answer) == WST_OK && strcmp(answer, "[42]") == 0);
  wst_sio_ack_free(ack);

  /* A kick: the client is told, and stays out until it joins again. */
  CHECK(wst_sio_socket_disconnect(first) == WST_OK);
  poll_until(client, SIO_EVENT_DISCONNECT, "/", NULL, &ev);
  CHECK(data_is(&ev, "io server disconnect"));
  CHECK(wst_sio_socket_is_connected(first) == 0);
  CHECK(wst_sio_socket_emit(first, "late", NULL) == WST_ERR_CLOSED);
  CHECK(sio_join(client, "/", NULL) == WS_OK);
  poll_until(client, SIO_EVENT_CONNECT, "/", NULL, &ev);
  wst_sio_socket *second = next_socket(server);
  CHECK(wst_sio_socket_session(second) == wst_sio_socket_session(first));

  /* A dropped transport: the client reconnects with a new session. */
  CHECK(wst_sio_socket_drop_transport(second) == WST_OK);
  poll_until(client, SIO_EVENT_DISCONNECT, "/", NULL, &ev);
  poll_until(client, SIO_EVENT_CONNECT, "/", NULL, &ev);
  wst_sio_socket *third = next_socket(server);
  CHECK(wst_sio_socket_session(third) != wst_sio_socket_session(second));

  /* A restart on the same port. */
  CHECK(wst_sio_server_restart(server) == WST_OK);
  poll_until(client, SIO_EVENT_CONNECT, "/", NULL, &ev);
  wst_sio_socket *fourth = next_socket(server);
  CHECK(wst_sio_socket_is_connected(third) == 0);

  /* A stopped heartbeat: only the client's dead-link timer can tell. */
  CHECK(wst_sio_socket_set_heartbeat(fourth, 0) == WST_OK);
  poll_until(client, SIO_EVENT_DISCONNECT, "/", NULL, &ev);
  poll_until(client, SIO_EVENT_CONNECT, "/", NULL, &ev);
  wst_sio_socket *fifth = next_socket(server);
  /* Network conditions: a latency on every byte, then lifted. */
  CHECK(wst_sio_server_set_network(server, "{\"latency_ms\":\"x\"}") == WST_ERR_INVALID_ARGUMENT);
  CHECK(wst_sio_server_set_network(server, "{\"latency_ms\":50}") == WST_OK);
  CHECK(sio_emit(client, "/", "slow", "[]", &ack_id) == WS_OK);
  poll_until(client, SIO_EVENT_ACK, "/", NULL, &ev);
  CHECK(ev.ack_id == ack_id && ev.error == 0);
  CHECK(wst_sio_server_set_network(server, "{}") == WST_OK);
  CHECK(wst_sio_server_await_event(server, WAIT_MS, &event) == WST_OK);
  CHECK(strcmp(wst_sio_event_name(event), "slow") == 0);
  wst_sio_event_free(event);

  size_t sessions = 0;
  CHECK(wst_sio_server_session_count(server, &sessions) == WST_OK && sessions == 4);

  /* Nothing more within a short wait is a timeout, not an error. */
  CHECK(wst_sio_server_await_event(server, 10, &event) == WST_TIMEOUT);

  CHECK(sio_close(client) == WS_OK);
  poll_until(client, SIO_EVENT_TERMINATED, NULL, NULL, &ev);
  sio_free(client);
  wst_sio_socket_free(first);
  wst_sio_socket_free(second);
  wst_sio_socket_free(third);
  wst_sio_socket_free(fourth);
  wst_sio_socket_free(fifth);
  wst_sio_server_free(server);
  printf("sio_client_against_kit: ok\n");
  return 0;
}
