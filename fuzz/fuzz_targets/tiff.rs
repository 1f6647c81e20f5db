//! The hand-written TIFF fallback decoder, called directly so every input reaches it.
#![no_main]

use resizer_core::formats::tiff;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = tiff::dimensions(data);
    let _ = tiff::decode(data, 4_000_000);
});
