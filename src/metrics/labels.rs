//! The label values of the proxy's metrics: every one is a closed set fixed in code (an enum or
//! a `&'static str` chosen by a `match`), except the provider name, which only ever comes from
//! the registry of configured providers. Nothing taken from a request (a path, a user name, an
//! id) can become a label, so the number of series stays bounded whatever clients send.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// Which side of the router answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// The proxy's own endpoints (`/sso/*`, the linking page, a pending provider sign-out).
    Sso,
    /// Everything forwarded to Jellyfin (the password endpoints included).
    Forwarded,
}

impl RouteClass {
    pub(super) const ALL: [RouteClass; 2] = [RouteClass::Sso, RouteClass::Forwarded];
}

/// The request method, with every method outside the usual ones as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodLabel {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl MethodLabel {
    pub(super) const ALL: [MethodLabel; 8] =
        [MethodLabel::Get, MethodLabel::Head, MethodLabel::Post, MethodLabel::Put, MethodLabel::Delete, MethodLabel::Patch, MethodLabel::Options, MethodLabel::Other];

    pub fn of(m: &http::Method) -> MethodLabel {
        match *m {
            http::Method::GET => MethodLabel::Get,
            http::Method::HEAD => MethodLabel::Head,
            http::Method::POST => MethodLabel::Post,
            http::Method::PUT => MethodLabel::Put,
            http::Method::DELETE => MethodLabel::Delete,
            http::Method::PATCH => MethodLabel::Patch,
            http::Method::OPTIONS => MethodLabel::Options,
            _ => MethodLabel::Other,
        }
    }
}

/// `1xx` … `5xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    Informational,
    Success,
    Redirect,
    ClientError,
    ServerError,
}

impl StatusClass {
    pub(super) const ALL: [StatusClass; 5] = [StatusClass::Informational, StatusClass::Success, StatusClass::Redirect, StatusClass::ClientError, StatusClass::ServerError];

    /// The index into [`StatusClass::ALL`] of a status code (anything outside 100–599 as 5xx).
    pub(super) fn index(status: u16) -> usize {
        match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub route: RouteClass,
    pub method: MethodLabel,
    pub status: StatusClass,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RouteLabels {
    pub route: RouteClass,
}

/// Why a TLS handshake failed, in a few classes an operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// No complete handshake within `limits.tls_handshake_timeout`.
    Timeout,
    /// The client closed or reset the connection during the handshake.
    Closed,
    /// Not TLS at all, or a malformed message (a plain-HTTP request on the TLS port, a scanner).
    InvalidMessage,
    /// No protocol version, cipher suite or ALPN in common.
    Incompatible,
    /// The client sent an alert (often: it does not trust the certificate).
    AlertReceived,
    /// The client broke the protocol.
    Misbehaved,
    Other,
}

impl TlsFailure {
    pub(super) const ALL: [TlsFailure; 7] =
        [TlsFailure::Timeout, TlsFailure::Closed, TlsFailure::InvalidMessage, TlsFailure::Incompatible, TlsFailure::AlertReceived, TlsFailure::Misbehaved, TlsFailure::Other];

    /// The class of the error `tokio_rustls`'s accept returned.
    pub fn of(e: &std::io::Error) -> TlsFailure {
        use std::io::ErrorKind;
        if let Some(r) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return match r {
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } | rustls::Error::InappropriateHandshakeMessage { .. } => TlsFailure::InvalidMessage,
                rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => TlsFailure::Incompatible,
                rustls::Error::AlertReceived(_) => TlsFailure::AlertReceived,
                rustls::Error::PeerMisbehaved(_) | rustls::Error::DecryptError => TlsFailure::Misbehaved,
                _ => TlsFailure::Other,
            };
        }
        match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => TlsFailure::Closed,
            ErrorKind::InvalidData => TlsFailure::InvalidMessage,
            _ => TlsFailure::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct TlsLabels {
    pub reason: TlsFailure,
}

/// A failed attempt to reach Jellyfin for a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    /// No connection could be made (refused, unreachable, `limits.upstream_connect_timeout`).
    Connect,
    /// Connected, but no response headers within `limits.upstream_header_timeout`.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct UpstreamLabels {
    pub kind: UpstreamFailure,
}

/// A login's outcome: `result` is `success` or `refused`; `reason` is empty on success and
/// otherwise one of the fixed reasons the SSO side derives from its error enum.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct LoginLabels {
    pub provider: String,
    pub protocol: &'static str,
    pub result: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct HowLabels {
    pub how: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct WhyLabels {
    pub why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ProviderLabels {
    pub provider: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct StoreLabels {
    /// `durable` or `ephemeral`.
    pub store: &'static str,
    /// `sqlite`, `postgres`, `memory` or `redis`.
    pub backend: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub result: &'static str,
}

impl RouteClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Sso => "sso",
            RouteClass::Forwarded => "forwarded",
        }
    }
}

impl EncodeLabelValue for RouteClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

impl MethodLabel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodLabel::Get => "GET",
            MethodLabel::Head => "HEAD",
            MethodLabel::Post => "POST",
            MethodLabel::Put => "PUT",
            MethodLabel::Delete => "DELETE",
            MethodLabel::Patch => "PATCH",
            MethodLabel::Options => "OPTIONS",
            MethodLabel::Other => "other",
        }
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

impl StatusClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

impl TlsFailure {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Timeout => "timeout",
            TlsFailure::Closed => "closed",
            TlsFailure::InvalidMessage => "invalid_message",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::AlertReceived => "alert_received",
            TlsFailure::Misbehaved => "misbehaved",
            TlsFailure::Other => "other",
        }
    }
}

impl EncodeLabelValue for TlsFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

impl UpstreamFailure {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
        }
    }
}

impl EncodeLabelValue for UpstreamFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}
