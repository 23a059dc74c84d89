//! The two line formats, `log.format: human` and `json`, with the request id of
//! [`super::request`] written where a `request{id=…}` span would be.
//!
//! Both keep the bytes `tracing-subscriber`'s own formats wrote when the id was a span (the
//! tests compare them with the real thing): human lines are
//! `TIMESTAMP LEVEL request{id=…}: target: message fields`, JSON lines carry
//! `"span":{"id":…,"name":"request"}` and `"spans":[…]`. Spans opened by libraries inside a
//! request follow the request, as they did when it was a span.

use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_serde::SerdeMapVisitor;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::request::RequestId;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// `log.format: human`: timestamp, level and the request's id written here; library spans,
/// target and fields by `tracing-subscriber`'s full format (told to skip what is written).
pub struct Human {
    rest: Format<Full, ()>,
}

impl Human {
    pub fn new() -> Human {
        Human { rest: tracing_subscriber::fmt::format().without_time().with_level(false) }
    }
}

impl Default for Human {
    fn default() -> Human {
        Human::new()
    }
}

/// A level as `tracing-subscriber` writes it: five wide, and its colour's ANSI code.
fn level_text(level: Level) -> (&'static str, u8) {
    match level {
        Level::TRACE => ("TRACE", 35),
        Level::DEBUG => ("DEBUG", 34),
        Level::INFO => (" INFO", 32),
        Level::WARN => (" WARN", 33),
        Level::ERROR => ("ERROR", 31),
    }
}

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let ansi = w.has_ansi_escapes();
        let (level, colour) = level_text(*meta.level());
        if ansi {
            w.write_str(DIM)?;
        }
        if SystemTime.format_time(&mut w).is_err() {
            w.write_str("<unknown time>")?;
        }
        if ansi {
            write!(w, "{RESET} \x1b[{colour}m{level}{RESET} ")?;
        } else {
            write!(w, " {level} ")?;
        }
        if let Some(id) = RequestId::current() {
            if ansi {
                write!(w, "{BOLD}request{{{RESET}id={id}{BOLD}}}{RESET}{DIM}:{RESET}")?;
            } else {
                write!(w, "request{{id={id}}}:")?;
            }
            // The full format writes a space after the last span; with none left, it is ours.
            if ctx.event_scope().is_none_or(|mut s| s.next().is_none()) {
                w.write_char(' ')?;
            }
        }
        self.rest.format_event(ctx, w, event)
    }
}

/// `log.format: json`: one object per line, the event's fields flattened into it.
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;

        // The spans from the root: the request first, then any a library opened inside it.
        let mut spans = Vec::new();
        if let Some(id) = RequestId::current() {
            spans.push(serde_json::json!({ "id": id.to_string(), "name": "request" }));
        }
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            let ext = span.extensions();
            let fields = ext.get::<FormattedFields<N>>().map(|f| f.as_str()).unwrap_or("");
            let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(fields).unwrap_or_default();
            object.insert("name".into(), span.metadata().name().into());
            spans.push(object.into());
        }

        let mut out = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::new(&mut out);
        let written: Result<(), serde_json::Error> = (|| {
            let mut map = ser.serialize_map(None)?;
            map.serialize_entry("timestamp", &timestamp)?;
            map.serialize_entry("level", meta.level().as_str())?;
            let mut visitor = SerdeMapVisitor::new(map);
            event.record(&mut visitor);
            let mut map = visitor.take_serializer()?;
            map.serialize_entry("target", meta.target())?;
            if let Some(leaf) = spans.last() {
                map.serialize_entry("span", leaf)?;
                map.serialize_entry("spans", &spans)?;
            }
            map.end()
        })();
        written.map_err(|_| fmt::Error)?;
        w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)?;
        writeln!(w)
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
