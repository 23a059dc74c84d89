#![no_main]
//! cargo fuzz target `oidc_callback`: see `jellyfin_sso_proxy_fuzz::oidc_callback` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::oidc_callback(data));
