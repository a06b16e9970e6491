// include/tether.h must compile as C++ (cbindgen cpp_compat): checked with
// g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -fsyntax-only, so it is
// never linked. It uses the declarations the way a C++ caller would.
#include "tether.h"
#include "tether.h"  // the include guard holds

#include <cstddef>
#include <cstdint>
#include <type_traits>

static_assert(TETHER_VERSION_MAJOR >= 0 && TETHER_VERSION_MINOR >= 0 && TETHER_VERSION_PATCH >= 0,
              "version macros are integers");

// Stable values (the header says statuses are never renumbered).
static_assert(WS_OK == 0 && WS_TIMEOUT == 1, "ws_status");
static_assert(WS_ERR_NULL_ARGUMENT == -1 && WS_ERR_INVALID_ARGUMENT == -2 &&
                  WS_ERR_QUEUE_FULL == -3 && WS_ERR_CLOSED == -4 && WS_ERR_INTERNAL == -5,
              "ws_status");
static_assert(WS_TEXT == 1 && WS_BINARY == 2, "ws_message_kind");
static_assert(WS_ERROR_UNSENT < 0 && WS_ERROR_CONNECT < 0, "ws_error_code is negative");

// C linkage, the documented signatures.
static_assert(std::is_same<decltype(&ws_connect),
                           ws_status (*)(const char *, const char *, ws_client **)>::value,
              "ws_connect");
static_assert(std::is_same<decltype(&ws_poll_event),
                           ws_status (*)(ws_client *, int32_t, ws_event *)>::value,
              "ws_poll_event");
static_assert(std::is_same<decltype(&ws_send), ws_status (*)(ws_client *, ws_message_kind,
                                                             const uint8_t *, size_t)>::value,
              "ws_send");
static_assert(std::is_same<decltype(&ws_close),
                           ws_status (*)(ws_client *, uint16_t, const char *)>::value,
              "ws_close");
static_assert(std::is_same<decltype(&ws_free), void (*)(ws_client *)>::value, "ws_free");
static_assert(std::is_same<decltype(&ws_last_error), const char *(*)()>::value,
              "ws_last_error");
static_assert(std::is_same<decltype(&ws_stats),
                           ws_status (*)(ws_client *, ws_client_stats *)>::value,
              "ws_stats");
static_assert(std::is_same<decltype(&ws_version), const char *(*)()>::value, "ws_version");
static_assert(std::is_same<decltype(&ws_live_clients), size_t (*)()>::value,
              "ws_live_clients");

// Plain data, usable from C++ as-is.
static_assert(std::is_trivially_copyable<ws_event>::value, "ws_event");
static_assert(std::is_standard_layout<ws_event>::value, "ws_event");
static_assert(std::is_trivially_copyable<ws_client_stats>::value, "ws_client_stats");

// A typical C++ caller.
[[maybe_unused]] static int drain(ws_client *c) {
  ws_event ev{};
  int n = 0;
  while (n < 100 && ws_poll_event(c, 0, &ev) == WS_OK) {
    switch (ev.kind) {
      case WS_EVENT_TEXT:
      case WS_EVENT_BINARY:
        n += static_cast<int>(ev.len > 0 && ev.data != nullptr);
        break;
      case WS_EVENT_TERMINATED:
        return n;
      case WS_EVENT_STATE:
      case WS_EVENT_OPEN:
      case WS_EVENT_CLOSED:
      case WS_EVENT_RECONNECTING:
      case WS_EVENT_ERROR:
      case WS_EVENT_RESENT:
        break;
    }
  }
  ws_client_stats st{};
  if (ws_stats(c, &st) != WS_OK) return -1;
  return n + static_cast<int>(st.queued_messages);
}

[[maybe_unused]] static ws_status send_text(ws_client *c, const char *s, std::size_t n) {
  return ws_send(c, WS_TEXT, reinterpret_cast<const uint8_t *>(s), n);
}
