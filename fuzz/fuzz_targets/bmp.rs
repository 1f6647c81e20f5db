//! The hand-written BMP fallback decoder, called directly so every input reaches it.
#![no_main]

use resizer_core::formats::bmp;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bmp::dimensions(data);
    let _ = bmp::decode(data, 4_000_000);
});
