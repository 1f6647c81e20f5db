//! The hand-written GIF fallback decoder, called directly so every input reaches it.
#![no_main]

use resizer_core::formats::gif;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = gif::dimensions(data);
    let _ = gif::decode(data, 4_000_000);
});
