#![no_main]
//! cargo fuzz target `cookies`: see `jellyfin_sso_proxy_fuzz::cookies` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::cookies(data));
