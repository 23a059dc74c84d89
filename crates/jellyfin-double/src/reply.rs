//! The response shapes Jellyfin's ASP.NET stack produces: empty statuses, JSON strings from
//! `NotFound("msg")`, the exception middleware's text, ProblemDetails and validation problems,
//! and the model binding of JSON bodies and query parameters that comes before a handler runs.
//! Kept in one place so every endpoint fails the way the real server does.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::{hex_id, parse_guid};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// `Jellyfin.Api/Middleware/ExceptionMiddleware.cs`: outside a Development environment every
/// exception is answered with this text (`text/plain`), whatever its message.
pub const EXCEPTION_TEXT: &str = "Error processing request.";

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never: Infallible| match never {}).boxed()
}

pub(crate) fn respond(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    Response::builder().status(status).header("content-type", content_type).body(full(body)).unwrap()
}

pub(crate) fn json_resp(status: StatusCode, v: &Value) -> Response<Body> {
    respond(status, v.to_string(), "application/json; charset=utf-8")
}

/// `NotFound("msg")`, `StatusCode(403, "msg")`, `Unauthorized("msg")`, `BadRequest("msg")`: an
/// ObjectResult holding a string, written by the JSON formatter (`BaseJellyfinApiController`'s
/// `[Produces(application/json, …)]`), so the body is a JSON string.
pub(crate) fn message(status: StatusCode, s: &str) -> Response<Body> {
    json_resp(status, &Value::String(s.to_string()))
}

/// An exception turned into a status by `Jellyfin.Api/Middleware/ExceptionMiddleware.cs`.
pub(crate) fn exception(status: StatusCode) -> Response<Body> {
    respond(status, EXCEPTION_TEXT, "text/plain")
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(full(Bytes::new())).unwrap()
}

fn trace_id() -> String {
    format!("00-{}-{}-00", hex_id(), &hex_id()[..16])
}

/// `NotFound()` / `BadRequest()` without a value: ProblemDetails by `[ApiController]`'s
/// client-error mapping.
pub(crate) fn problem(status: StatusCode) -> Response<Body> {
    let section = match status.as_u16() {
        400 => "15.5.1",
        401 => "15.5.2",
        403 => "15.5.4",
        404 => "15.5.5",
        415 => "15.5.16",
        _ => "15.6.1",
    };
    let v = json!({"type": format!("https://tools.ietf.org/html/rfc9110#section-{section}"), "title": status.canonical_reason().unwrap_or(""),
                   "status": status.as_u16(), "traceId": trace_id()});
    respond(status, v.to_string(), "application/problem+json; charset=utf-8")
}

/// `[ApiController]`'s automatic 400 when model binding or validation fails.
pub(crate) fn validation(errors: Map<String, Value>) -> Response<Body> {
    let v = json!({"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1", "title": "One or more validation errors occurred.",
                   "status": 400, "errors": errors, "traceId": trace_id()});
    respond(StatusCode::BAD_REQUEST, v.to_string(), "application/problem+json; charset=utf-8")
}

pub(crate) fn validation1(key: &str, msg: &str) -> Response<Body> {
    let mut e = Map::new();
    e.insert(key.to_string(), json!([msg]));
    validation(e)
}

/// A `[FromBody, Required]` JSON parameter named `param`: 415 without a JSON content type
/// (ASP.NET's SystemTextJsonInputFormatter takes application/json, text/json and
/// application/*+json), 400 for an empty body or malformed JSON.
pub(crate) fn json_body(headers: &HeaderMap, body: &[u8], param: &str) -> Result<Value, Response<Body>> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mt = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(mt == "application/json" || mt == "text/json" || (mt.starts_with("application/") && mt.ends_with("+json"))) {
        return Err(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        let mut e = Map::new();
        e.insert("".into(), json!(["A non-empty request body is required."]));
        e.insert(param.into(), json!([format!("The {param} field is required.")]));
        return Err(validation(e));
    }
    serde_json::from_slice::<Value>(body).map_err(|err| {
        let mut e = Map::new();
        e.insert("$".into(), json!([format!("{err}. Path: $")]));
        e.insert(param.into(), json!([format!("The {param} field is required.")]));
        validation(e)
    })
}

pub(crate) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.as_object().and_then(|m| get_ci(m, key)).and_then(Value::as_str).map(str::to_string)
}

/// A JSON property looked up the way ASP.NET binds (case-insensitive names).
pub(crate) fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// A `bool?` query parameter: absent or empty → None, anything but true/false → 400.
pub(crate) fn opt_bool(query: &HashMap<String, String>, key: &str, name: &str) -> Result<Option<bool>, Response<Body>> {
    match query.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(s) => Err(validation1(name, &format!("The value '{s}' is not valid."))),
    }
}

/// A `Guid?` query parameter: absent or empty → None, unparseable → 400.
pub(crate) fn opt_guid(query: &HashMap<String, String>, key: &str, name: &str) -> Result<Option<String>, Response<Body>> {
    match query.get(key).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_guid(s).map(Some).ok_or_else(|| validation1(name, &format!("The value '{s}' is not valid."))),
    }
}

/// A `Guid` route segment (`{userId}`): unparseable → 400 naming `userId`.
pub(crate) fn route_guid(raw: &str) -> Result<String, Response<Body>> {
    parse_guid(raw).ok_or_else(|| validation1("userId", &format!("The value '{raw}' is not valid.")))
}
