//! The JPEG shrink-on-load fast path (DC-only 1/8 and the 1/4 IDCT path), called directly.
#![no_main]

use resizer_core::formats::jpeg_scaled::{Scale, decode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((pick, jpeg)) = data.split_first() else {
        return;
    };
    // As in the pipeline, the pixel limit is checked on the header before the fast path runs.
    match resizer_core::probe(jpeg) {
        Ok(info) if u64::from(info.width) * u64::from(info.height) <= 4_000_000 => {}
        _ => return,
    }
    let scale = if pick & 1 == 0 { Scale::Eighth } else { Scale::Quarter };
    if let Some(image) = decode(jpeg, scale) {
        let expected = image.width as usize * image.height as usize * usize::from(image.channels);
        assert_eq!(image.pixels.len(), expected, "a decoded image's buffer matches its size");
    }
});
