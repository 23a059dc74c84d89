#![no_main]
//! cargo fuzz target `branding`: see `jellyfin_sso_proxy_fuzz::branding` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::branding(data));
