#![no_main]
//! cargo fuzz target `authorization`: see `jellyfin_sso_proxy_fuzz::authorization` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::authorization(data));
