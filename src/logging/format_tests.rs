//! The formats write what `tracing-subscriber` wrote for a real `request{id=…}` span: each
//! case is logged twice, once through our formatter with the thread-local id and once through
//! the library's formatter inside a real span, and the lines must agree but for the time.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt;
use tracing_subscriber::layer::SubscriberExt;

use super::{Human, Json};
use crate::logging::request::{with_request, RequestId};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The events of one case: an access line, a line in a library's span, a log-crate record.
fn events() {
    tracing::info!(target: "access", peer = "127.0.0.1:1", status = 200u16, ms = 0.25, "request");
    let lib = tracing::info_span!("pool", conn = 3u64, origin = "http://j");
    lib.in_scope(|| tracing::warn!(error = "refused", "connect failed"));
    log::logger().log(&log::Record::builder().level(log::Level::Warn).target("rustls::x").args(format_args!("from log")).build());
}

/// `case` logged by ours (with `id` current, or none) and by the library inside a real span.
fn both(json: bool, id: Option<RequestId>) -> (String, String) {
    both_coloured(json, false, id)
}

fn both_coloured(json: bool, ansi: bool, id: Option<RequestId>) -> (String, String) {
    let _ = tracing_log::LogTracer::init();
    let (ours, theirs) = (Capture::default(), Capture::default());
    let (o, t) = (ours.clone(), theirs.clone());
    if json {
        let sub = tracing_subscriber::registry().with(fmt::layer().json().event_format(Json).with_writer(move || o.clone()));
        tracing::subscriber::with_default(sub, || match id {
            Some(id) => with_request(id, events),
            None => events(),
        });
        let sub = tracing_subscriber::registry().with(fmt::layer().json().flatten_event(true).with_writer(move || t.clone()));
        tracing::subscriber::with_default(sub, || match id {
            Some(id) => tracing::error_span!("request", id = %id).in_scope(events),
            None => events(),
        });
    } else {
        let sub = tracing_subscriber::registry().with(fmt::layer().with_ansi(ansi).event_format(Human::new()).with_writer(move || o.clone()));
        tracing::subscriber::with_default(sub, || match id {
            Some(id) => with_request(id, events),
            None => events(),
        });
        let sub = tracing_subscriber::registry().with(fmt::layer().with_ansi(ansi).with_writer(move || t.clone()));
        tracing::subscriber::with_default(sub, || match id {
            Some(id) => tracing::error_span!("request", id = %id).in_scope(events),
            None => events(),
        });
    }
    (ours.text(), theirs.text())
}

/// Human lines without their timestamp (the first word).
fn untimed(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split_once(' ').expect("a timestamp").1.to_string()).collect()
}

#[test]
fn human_lines_are_the_spans_lines() {
    for id in [Some(RequestId::from_raw(0x2a)), None] {
        let (ours, theirs) = both(false, id);
        let (ours, theirs) = (untimed(&ours), untimed(&theirs));
        assert_eq!(ours.len(), 3, "{ours:?}");
        assert_eq!(ours, theirs);
        if id.is_some() {
            assert_eq!(ours[0], " INFO request{id=0000002a}: access: request peer=\"127.0.0.1:1\" status=200 ms=0.25");
            assert_eq!(ours[1], " WARN request{id=0000002a}:pool{conn=3 origin=\"http://j\"}: jellyfin_sso_proxy::logging::format::tests: connect failed error=\"refused\"");
            assert!(ours[2].starts_with(" WARN request{id=0000002a}: rustls::x: from log"), "{}", ours[2]);
        } else {
            assert!(ours[0].starts_with(" INFO access: request"), "{}", ours[0]);
        }
    }
}

#[test]
fn human_timestamps_are_rfc3339_utc_with_microseconds() {
    let (ours, _) = both(false, Some(RequestId::next()));
    let stamp = ours.split(' ').next().unwrap();
    assert_eq!(stamp.len(), "2026-12-02T04:00:13.123456Z".len(), "{stamp}");
    assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[19] == b'.', "{stamp}");
}

#[test]
fn json_lines_are_the_spans_lines() {
    for id in [Some(RequestId::from_raw(0xdead_beef_cafe)), None] {
        let (ours, theirs) = both(true, id);
        let parse = |text: &str| -> Vec<serde_json::Value> {
            text.lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
                    v.as_object_mut().unwrap().remove("timestamp");
                    v
                })
                .collect()
        };
        let (ours, theirs) = (parse(&ours), parse(&theirs));
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, theirs);
        if id.is_some() {
            assert_eq!(ours[0]["span"], serde_json::json!({ "id": "deadbeefcafe", "name": "request" }));
            assert_eq!(ours[0]["status"], 200);
            assert_eq!(ours[1]["spans"][1], serde_json::json!({ "conn": 3, "origin": "http://j", "name": "pool" }));
            assert_eq!(ours[1]["span"]["name"], "pool");
        } else {
            assert!(ours[0].get("span").is_none() && ours[0].get("spans").is_none());
        }
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn coloured_human_lines_read_as_the_spans_lines() {
    let (ours, theirs) = both_coloured(false, true, Some(RequestId::from_raw(7)));
    assert!(ours.contains("\x1b[32m INFO\x1b[0m") && ours.contains("\x1b[33m WARN\x1b[0m"), "{ours:?}");
    assert!(ours.contains("\x1b[1mrequest{"), "{ours:?}");
    let (ours, theirs) = (untimed(&plain(&ours)), untimed(&plain(&theirs)));
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs);
    assert!(ours[0].starts_with(" INFO request{id=00000007}: access: request"), "{}", ours[0]);
}
