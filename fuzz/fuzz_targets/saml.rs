#![no_main]
//! cargo fuzz target `saml`: see `jellyfin_sso_proxy_fuzz::saml` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::saml(data));
