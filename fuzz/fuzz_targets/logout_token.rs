#![no_main]
//! cargo fuzz target `logout_token`: see `jellyfin_sso_proxy_fuzz::logout_token` (fuzz/harness.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| jellyfin_sso_proxy_fuzz::logout_token(data));
