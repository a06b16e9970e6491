//! The WHATWG EventSource stream parser ("Interpreting an event stream",
//! HTML Living Standard §9.2.6), over bytes as they arrive. Pure.
//!
//! Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF
//! at the start of the next are one line end). The stream is UTF-8 with
//! invalid sequences replaced by U+FFFD, and one BOM at its start is
//! dropped. `data` lines are joined by `\n`; an `id` containing NUL is
//! ignored; `retry` takes ASCII digits only; an event is dispatched on a
//! blank line only, and an event cut off by the end of the stream is
//! discarded. Every line and every event is bounded by the limit given,
//! so an endless line or a huge event costs at most that much memory.

use std::collections::VecDeque;
use std::time::Duration;

use crate::event::ServerSentEvent;

/// What the stream said that the wire must act on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    Event(ServerSentEvent),
    /// A `retry:` field: the new reconnection delay.
    Retry(Duration),
    /// A blank line changed the last event id without an event to carry
    /// it (an `id:` field with no `data:`).
    LastEventId(Option<String>),
}

/// A line or an event passed the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooBig {
    pub limit: usize,
}

/// Bytes a line may have beyond the event limit: its field name.
const LINE_SLACK: usize = 64;

/// The parser's state across chunks and connections.
#[derive(Debug)]
pub(crate) struct Parser {
    limit: usize,
    /// The line under way, without its end.
    line: Vec<u8>,
    /// The last byte seen was a CR: an LF right after it ends nothing.
    after_cr: bool,
    /// No line of this stream was completed yet (where a BOM may be).
    at_start: bool,
    data: String,
    event_type: String,
    /// The `id` field in force for the event under way.
    id_buffer: Option<String>,
    /// The id of the last dispatched event (sent as `Last-Event-ID`).
    last_event_id: Option<String>,
}

impl Parser {
    /// `limit`: the most bytes of data an event may carry.
    /// `last_event_id`: the id in force before any event (an option).
    pub fn new(limit: usize, last_event_id: Option<String>) -> Parser {
        Parser {
            limit,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            data: String::new(),
            event_type: String::new(),
            id_buffer: last_event_id.clone(),
            last_event_id,
        }
    }

    /// The id in force.
    #[cfg(test)]
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// A new connection starts a new stream: what the last one left
    /// unfinished is discarded, and `last_event_id` (the id of the last
    /// event delivered) is in force.
    pub fn restart(&mut self, last_event_id: Option<String>) {
        self.line = Vec::new();
        self.after_cr = false;
        self.at_start = true;
        self.data = String::new();
        self.event_type.clear();
        self.id_buffer = last_event_id.clone();
        self.last_event_id = last_event_id;
    }

    /// Parses `bytes`, appending what they completed to `out`. After an
    /// error the stream must not be fed again (until `restart`).
    pub fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Parsed>) -> Result<(), TooBig> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.grow_line(&rest[..end])?;
                    self.after_cr = rest[end] == b'\r';
                    rest = &rest[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line, out)?;
                    // Keeps the buffer's capacity for the next line.
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.grow_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    fn grow_line(&mut self, bytes: &[u8]) -> Result<(), TooBig> {
        if self.line.len() + bytes.len() > self.limit.saturating_add(LINE_SLACK) {
            return Err(TooBig { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8], out: &mut VecDeque<Parsed>) -> Result<(), TooBig> {
        let mut line = raw;
        if std::mem::take(&mut self.at_start) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                let value = String::from_utf8_lossy(value);
                if self.data.len() + value.len() + 1 > self.limit.saturating_add(1) {
                    return Err(TooBig { limit: self.limit });
                }
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Too many digits for the clock: as long as allowed (the
                // backoff caps it).
                let ms = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
                out.push_back(Parsed::Retry(Duration::from_millis(ms)));
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut VecDeque<Parsed>) {
        let id_changed = self.last_event_id != self.id_buffer;
        self.last_event_id = self.id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            if id_changed {
                out.push_back(Parsed::LastEventId(self.last_event_id.clone()));
            }
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the "\n" after the last line
        let event_type = if self.event_type.is_empty() {
            "message".to_string()
        } else {
            std::mem::take(&mut self.event_type)
        };
        out.push_back(Parsed::Event(ServerSentEvent {
            event_type,
            id: self.last_event_id.clone(),
            data,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` whole, then byte by byte, and checks both give the
    /// same: chunk boundaries must not matter.
    fn parse(stream: &[u8]) -> Vec<Parsed> {
        let mut whole = VecDeque::new();
        Parser::new(1 << 20, None).feed(stream, &mut whole).unwrap();
        let mut parser = Parser::new(1 << 20, None);
        let mut bytewise = VecDeque::new();
        for b in stream {
            parser.feed(std::slice::from_ref(b), &mut bytewise).unwrap();
        }
        assert_eq!(whole, bytewise, "chunking changed the result");
        whole.into()
    }

    fn event(event_type: &str, id: Option<&str>, data: &str) -> Parsed {
        Parsed::Event(ServerSentEvent {
            event_type: event_type.into(),
            id: id.map(Into::into),
            data: data.into(),
        })
    }

    #[test]
    fn data_lines_are_joined_and_dispatched_on_a_blank_line() {
        assert_eq!(
            parse(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            [event("message", None, "YHOO\n+2\n10")]
        );
        // The spec's example: no space after the colon, and a trailing line.
        assert_eq!(
            parse(b"data:test\n\ndata: two\ndata\n\n"),
            [
                event("message", None, "test"),
                event("message", None, "two\n")
            ]
        );
        // Only one leading space is removed.
        assert_eq!(parse(b"data:  x\n\n"), [event("message", None, " x")]);
    }

    #[test]
    fn cr_lf_and_crlf_all_end_lines() {
        let expected = [event("message", None, "a\nb")];
        assert_eq!(parse(b"data: a\rdata: b\r\r"), expected);
        assert_eq!(parse(b"data: a\r\ndata: b\r\n\r\n"), expected);
        assert_eq!(parse(b"data: a\ndata: b\r\n\r"), expected);
    }

    #[test]
    fn a_bom_at_the_start_is_dropped_once() {
        assert_eq!(
            parse(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n"),
            [event("message", None, "a")],
            "a second BOM makes its line a field named \\u{{FEFF}}data"
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_eq!(
            parse(b": hello\nfoo: bar\ndata: x\n:another\n\n"),
            [event("message", None, "x")]
        );
        assert_eq!(parse(b":only a comment\n\n"), []);
    }

    #[test]
    fn event_sets_the_type_of_one_event() {
        assert_eq!(
            parse(b"event: add\ndata: 1\n\ndata: 2\n\n"),
            [event("add", None, "1"), event("message", None, "2")]
        );
        // An event without data dispatches nothing and resets the type.
        assert_eq!(
            parse(b"event: add\n\ndata: 2\n\n"),
            [event("message", None, "2")]
        );
    }

    #[test]
    fn ids_persist_and_an_id_with_nul_is_ignored() {
        assert_eq!(
            parse(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\0y\ndata: d\n\n"),
            [
                event("message", Some("1"), "a"),
                event("message", Some("1"), "b"),
                event("message", Some(""), "c"),
                event("message", Some(""), "d"),
            ]
        );
    }

    #[test]
    fn an_id_without_data_still_becomes_the_last_event_id() {
        let mut parser = Parser::new(100, Some("start".into()));
        let mut out = VecDeque::new();
        parser.feed(b"id: 7\n\nid: 7\n\n", &mut out).unwrap();
        assert_eq!(out, [Parsed::LastEventId(Some("7".into()))]);
        assert_eq!(parser.last_event_id(), Some("7"));
    }

    #[test]
    fn an_event_cut_off_by_the_stream_end_is_discarded() {
        let mut parser = Parser::new(100, None);
        let mut out = VecDeque::new();
        parser
            .feed(b"id: 1\ndata: a\n\nid: 2\ndata: half", &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        parser.restart(Some("1".into()));
        assert_eq!(parser.last_event_id(), Some("1"));
        parser.feed(b"\n\n", &mut out).unwrap();
        assert_eq!(out.len(), 1, "the half event came back");
        parser.feed(b"data: b\n\n", &mut out).unwrap();
        assert_eq!(out.pop_back(), Some(event("message", Some("1"), "b")));
    }

    #[test]
    fn retry_takes_digits_only() {
        assert_eq!(
            parse(b"retry: 1500\nretry: 1.5\nretry: -1\nretry: abc\nretry:\nretry: 20\n"),
            [
                Parsed::Retry(Duration::from_millis(1500)),
                Parsed::Retry(Duration::from_millis(20))
            ]
        );
        let huge = format!("retry: {}\n", "9".repeat(100));
        assert_eq!(
            parse(huge.as_bytes()),
            [Parsed::Retry(Duration::from_millis(u64::MAX))]
        );
    }

    #[test]
    fn field_names_are_case_sensitive_and_need_no_value() {
        assert_eq!(parse(b"Data: x\n\n"), []);
        assert_eq!(parse(b"data\ndata\n\n"), [event("message", None, "\n")]);
    }

    #[test]
    fn bad_utf8_is_replaced_not_fatal() {
        assert_eq!(
            parse(b"data: a\xFFb\xC3\n\n"),
            [event("message", None, "a\u{FFFD}b\u{FFFD}")]
        );
    }

    #[test]
    fn lines_and_events_are_bounded() {
        let mut out = VecDeque::new();
        let mut parser = Parser::new(10, None);
        assert!(parser.feed(b"data: 0123456789\n\n", &mut out).is_ok());
        assert_eq!(out.len(), 1);
        assert_eq!(
            parser.feed(b"data: 01234\ndata: 56789\n\n", &mut out),
            Err(TooBig { limit: 10 })
        );
        let mut parser = Parser::new(10, None);
        let endless = vec![b'x'; 100];
        let mut result = Ok(());
        for _ in 0..10 {
            result = result.and_then(|_| parser.feed(&endless, &mut out));
        }
        assert_eq!(result, Err(TooBig { limit: 10 }));
        assert!(parser.line.len() <= 10 + LINE_SLACK);
    }

    mod chunking {
        use super::*;
        use proptest::prelude::*;

        fn stream() -> impl Strategy<Value = Vec<u8>> {
            let token = prop_oneof![
                proptest::sample::select(vec![
                    &b"data:"[..],
                    b"data: ",
                    b"id: ",
                    b"event:",
                    b"retry: 7",
                    b":",
                    b"\r",
                    b"\n",
                    b"\r\n",
                    b"\0",
                    b"\xEF\xBB\xBF",
                    b"\xff",
                    b"x",
                ])
                .prop_map(|t| t.to_vec()),
                proptest::collection::vec(any::<u8>(), 0..6),
            ];
            proptest::collection::vec(token, 0..80).prop_map(|t| t.concat())
        }

        proptest! {
            /// Chunk boundaries never change what is parsed, whatever the
            /// bytes; nothing parsed passes the limit or holds a line end.
            #[test]
            fn any_chunking_parses_the_same(
                stream in stream(),
                cuts in proptest::collection::vec(0usize..400, 0..8),
            ) {
                let limit = 16;
                let mut whole = VecDeque::new();
                let whole_result = Parser::new(limit, None).feed(&stream, &mut whole);
                let mut parser = Parser::new(limit, None);
                let mut pieces = VecDeque::new();
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
                cuts.sort_unstable();
                let mut at = 0;
                let mut result = Ok(());
                for cut in cuts.into_iter().chain([stream.len()]) {
                    if result.is_ok() {
                        result = parser.feed(&stream[at..cut], &mut pieces);
                    }
                    at = cut;
                }
                prop_assert_eq!(whole_result, result);
                prop_assert_eq!(&whole, &pieces);
                for parsed in whole {
                    if let Parsed::Event(e) = parsed {
                        prop_assert!(e.data.len() <= limit);
                        prop_assert!(!e.data.contains('\r'));
                        prop_assert!(!e.event_type.contains(['\r', '\n']));
                        prop_assert!(!e.id.unwrap_or_default().contains(['\0', '\r', '\n']));
                    }
                }
            }
        }
    }
}
