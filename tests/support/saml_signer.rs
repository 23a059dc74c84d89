//! SAML responses signed by an independent signer: Debian's `xmlsec1` CLI (libxmlsec1 over
//! OpenSSL), with RSA keys made by the `openssl` CLI. The proxy's verifier (the `saml`
//! crate) never signs what it checks here, so a shared bug cannot hide itself.
//!
//! [`ResponseSpec`] renders a `samlp:Response` with one assertion; [`Signer::sign`] fills
//! in one `ds:Signature` template per signed element. Tests then tamper with the text.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine;

pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// An RSA key pair and self-signed certificate, in PEM files.
pub struct KeyPair {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl KeyPair {
    /// `openssl req -x509 -newkey rsa:2048` into `dir`, valid for a year (as an IdP's is).
    pub fn generate(dir: &Path, name: &str) -> KeyPair {
        let key = dir.join(format!("{name}.key"));
        let cert = dir.join(format!("{name}.crt"));
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj"])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl (installed by tests/run.sh)");
        assert!(st.status.success(), "openssl: {}", String::from_utf8_lossy(&st.stderr));
        KeyPair { key, cert }
    }

    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    /// The certificate as bare base64 DER (as IdP consoles and `ds:X509Certificate` show it).
    pub fn cert_b64(&self) -> String {
        self.cert_pem().lines().filter(|l| !l.starts_with("-----")).collect()
    }
}

/// Which elements carry a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOn {
    Nothing,
    Response,
    Assertion,
    Both,
}

/// Everything a response says; defaults are a valid answer to `in_response_to`.
#[derive(Debug, Clone)]
pub struct ResponseSpec {
    pub response_id: String,
    pub assertion_id: String,
    pub in_response_to: String,
    pub destination: String,
    pub recipient: String,
    pub issuer: String,
    pub audience: String,
    pub name_id: String,
    pub name_id_format: String,
    pub attributes: Vec<(String, Vec<String>)>,
    pub not_before: SystemTime,
    pub not_on_or_after: SystemTime,
    pub status: String,
    pub status_message: Option<String>,
    pub signature_method: String,
    pub digest_method: String,
}

pub fn xs_time(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("_{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

impl ResponseSpec {
    pub fn new(in_response_to: &str, acs: &str, issuer: &str, audience: &str, name_id: &str) -> ResponseSpec {
        let now = SystemTime::now();
        ResponseSpec {
            response_id: random_id(),
            assertion_id: random_id(),
            in_response_to: in_response_to.into(),
            destination: acs.into(),
            recipient: acs.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            name_id: name_id.into(),
            name_id_format: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into(),
            attributes: Vec::new(),
            not_before: now - Duration::from_secs(5),
            not_on_or_after: now + Duration::from_secs(300),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            status_message: None,
            signature_method: RSA_SHA256.into(),
            digest_method: SHA256.into(),
        }
    }

    pub fn attribute(mut self, name: &str, values: &[&str]) -> Self {
        self.attributes.push((name.into(), values.iter().map(|v| v.to_string()).collect()));
        self
    }

    /// The assertion element, with a signature template if `signed`.
    pub fn assertion_xml(&self, signed: Option<&str>) -> String {
        let now = xs_time(SystemTime::now());
        let attrs: String = self
            .attributes
            .iter()
            .map(|(n, vs)| {
                let values: String = vs.iter().map(|v| format!("<saml:AttributeValue>{}</saml:AttributeValue>", esc(v))).collect();
                format!("<saml:Attribute Name=\"{}\" NameFormat=\"urn:oasis:names:tc:SAML:2.0:attrname-format:basic\">{values}</saml:Attribute>", esc(n))
            })
            .collect();
        let attr_statement = if attrs.is_empty() { String::new() } else { format!("<saml:AttributeStatement>{attrs}</saml:AttributeStatement>") };
        format!(
            "<saml:Assertion xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\"><saml:Issuer>{issuer}</saml:Issuer>{sig}\
<saml:Subject><saml:NameID Format=\"{fmt}\">{name_id}</saml:NameID><saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
<saml:SubjectConfirmationData InResponseTo=\"{irt}\" Recipient=\"{recipient}\" NotOnOrAfter=\"{noa}\"/></saml:SubjectConfirmation></saml:Subject>\
<saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{noa}\"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
<saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"{sid}\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
{attr_statement}</saml:Assertion>",
            id = self.assertion_id,
            issuer = esc(&self.issuer),
            sig = signed.map(|cert| self.signature_template(&self.assertion_id, cert)).unwrap_or_default(),
            fmt = self.name_id_format,
            name_id = esc(&self.name_id),
            irt = self.in_response_to,
            recipient = esc(&self.recipient),
            noa = xs_time(self.not_on_or_after),
            nb = xs_time(self.not_before),
            aud = esc(&self.audience),
            sid = random_id(),
        )
    }

    /// The whole response around `assertion` (already rendered), with a signature template
    /// on the Response if `signed`.
    pub fn response_xml(&self, assertion: &str, signed: Option<&str>) -> String {
        let message = self.status_message.as_ref().map(|m| format!("<samlp:StatusMessage>{}</samlp:StatusMessage>", esc(m))).unwrap_or_default();
        format!(
            "<samlp:Response xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{dest}\" InResponseTo=\"{irt}\">\
<saml:Issuer>{issuer}</saml:Issuer>{sig}<samlp:Status><samlp:StatusCode Value=\"{status}\"/>{message}</samlp:Status>{assertion}</samlp:Response>",
            id = self.response_id,
            now = xs_time(SystemTime::now()),
            dest = esc(&self.destination),
            irt = self.in_response_to,
            issuer = esc(&self.issuer),
            sig = signed.map(|cert| self.signature_template(&self.response_id, cert)).unwrap_or_default(),
            status = self.status,
        )
    }

    pub fn signature_template(&self, id: &str, cert_b64: &str) -> String {
        format!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/><ds:SignatureMethod Algorithm=\"{sm}\"/>\
<ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms><ds:DigestMethod Algorithm=\"{dm}\"/><ds:DigestValue/></ds:Reference>\
</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
            sm = self.signature_method,
            dm = self.digest_method,
        )
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Signs with `xmlsec1`, in a scratch directory.
pub struct Signer {
    dir: PathBuf,
}

impl Signer {
    pub fn new(dir: &Path) -> Signer {
        Signer { dir: dir.to_path_buf() }
    }

    /// Fill in the first unsigned `ds:Signature` template of `xml` with `key`.
    pub fn sign_first(&self, xml: &str, key: &KeyPair) -> String {
        self.sign_first_of(xml, key, &[&format!("{NS_SAMLP}:Response"), &format!("{NS_SAML}:Assertion")])
    }

    /// [`Signer::sign_first`] for a document whose signed elements (`ns:Local`, their `ID`
    /// attribute referenced) are `elements`, e.g. a `samlp:LogoutRequest`.
    pub fn sign_first_of(&self, xml: &str, key: &KeyPair, elements: &[&str]) -> String {
        let n = random_id();
        let input = self.dir.join(format!("{n}.in.xml"));
        let output = self.dir.join(format!("{n}.out.xml"));
        std::fs::write(&input, xml).unwrap();
        let out = Command::new("xmlsec1")
            .arg("--sign")
            .arg("--privkey-pem")
            .arg(format!("{},{}", key.key.display(), key.cert.display()))
            .args(elements.iter().flat_map(|e| ["--id-attr:ID", e]))
            .arg("--output")
            .arg(&output)
            .arg(&input)
            .output()
            .expect("xmlsec1 (installed by tests/run.sh)");
        assert!(out.status.success(), "xmlsec1 --sign: {}\n{xml}", String::from_utf8_lossy(&out.stderr));
        let signed = std::fs::read_to_string(&output).unwrap();
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
        // xmlsec1 writes an XML declaration; keep the document as the IdP would send it.
        match signed.strip_prefix("<?xml version=\"1.0\"?>\n") {
            Some(rest) => rest.trim_end().to_string(),
            None => signed.trim_end().to_string(),
        }
    }

    /// The response for `spec`, signed where `on` says, by `key`.
    pub fn signed_response(&self, spec: &ResponseSpec, on: SignOn, key: &KeyPair) -> String {
        let cert = key.cert_b64();
        let sign_assertion = matches!(on, SignOn::Assertion | SignOn::Both);
        let sign_response = matches!(on, SignOn::Response | SignOn::Both);
        let assertion = spec.assertion_xml(sign_assertion.then_some(cert.as_str()));
        let xml = if sign_assertion {
            // Sign the assertion alone first, so xmlsec1 finds its template.
            let unsigned_response = spec.response_xml(&assertion, None);
            self.sign_first(&unsigned_response, key)
        } else {
            spec.response_xml(&assertion, None)
        };
        if !sign_response {
            return xml;
        }
        // Insert the Response's template after its Issuer; it is then the first template.
        let template = spec.signature_template(&spec.response_id, &cert);
        let issuer_end = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
        let with_template = format!("{}{}{}", &xml[..issuer_end], template, &xml[issuer_end..]);
        self.sign_first(&with_template, key)
    }
}

/// `SAMLResponse` form value.
pub fn encode(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml.as_bytes())
}

/// The `ID` of the AuthnRequest in a HTTP-Redirect URL (`SAMLRequest`: deflate + base64).
pub fn authn_request_of(location: &str) -> String {
    use std::io::Read;
    let url = url::Url::parse(location).unwrap();
    let req = url.query_pairs().find(|(k, _)| k == "SAMLRequest").expect("SAMLRequest in the redirect").1.into_owned();
    let raw = base64::engine::general_purpose::STANDARD.decode(req).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..]).read_to_string(&mut xml).unwrap();
    xml
}

/// The value of attribute `name` on the first element that has it.
pub fn xml_attr(xml: &str, name: &str) -> Option<String> {
    let pat = format!(" {name}=\"");
    let i = xml.find(&pat)? + pat.len();
    Some(xml[i..].split('"').next()?.to_string())
}
