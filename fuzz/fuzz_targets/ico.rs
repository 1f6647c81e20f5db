//! The hand-written ICO fallback decoder, called directly so every input reaches it.
#![no_main]

use resizer_core::formats::ico;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ico::dimensions(data);
    let _ = ico::decode(data, 4_000_000);
});
