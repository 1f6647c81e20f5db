//! The whole pipeline. The first four bytes pick the box, fit and output format, so the fuzzer
//! explores the resize and crop arithmetic too; the rest is the image.
#![no_main]

use resizer_core::{Fit, Options, OutputFormat};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((head, image)) = data.split_first_chunk::<4>() else {
        return;
    };
    let opts = Options {
        width: 1 + u32::from(head[0]) % 160,
        height: 1 + u32::from(head[1]) % 160,
        fit: [Fit::Contain, Fit::Cover, Fit::Fill][usize::from(head[2] % 3)],
        format: [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp][usize::from(head[3] % 3)],
        quality: 1 + head[3] % 100,
        // A small limit keeps every decode in the fuzzer's memory limit; the code paths are the
        // same as at the default.
        max_pixels: 4_000_000,
    };
    let _ = resizer_core::thumbnail(image, &opts);
});
