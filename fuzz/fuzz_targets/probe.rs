//! Header reading of any format: it must return, never panic or allocate by the header's word.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = resizer_core::probe(data);
});
