use super::*;

/// jpeg-decoder's own scaled decode: an independent check (it upsamples chroma from the same
/// IDCT size as luma, where libjpeg and this decoder use a larger one).
fn reference(data: &[u8], scale: Scale) -> (u32, u32, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(data);
    d.read_info().unwrap();
    let info = d.info().unwrap();
    let k = scale.block() as u16;
    d.scale((info.width * k).div_ceil(8), (info.height * k).div_ceil(8))
        .unwrap();
    let px = d.decode().unwrap();
    let info = d.info().unwrap();
    (info.width as u32, info.height as u32, px)
}

/// Luma of packed pixels with `channels` channels, so chroma handling does not count.
fn luma(px: &[u8], channels: u8) -> Vec<u8> {
    match channels {
        1 => px.to_vec(),
        _ => px
            .chunks_exact(3)
            .map(|p| ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8)
            .collect(),
    }
}

/// Mean and largest luma difference from jpeg-decoder at `scale`, after checking the sizes.
fn luma_diff_from_jpeg_decoder(data: &[u8], scale: Scale, name: &str) -> (f64, u8) {
    let ours = decode(data, scale).unwrap_or_else(|| panic!("{name}: fast path refused"));
    let (w, h, px) = reference(data, scale);
    assert_eq!((ours.width, ours.height), (w, h), "{name}");
    assert_eq!(ours.pixels.len(), px.len(), "{name}");
    let (a, b) = (luma(&ours.pixels, ours.channels), luma(&px, ours.channels));
    (mean_diff(&a, &b), max_diff(&a, &b))
}

/// ../shared/corpus beside the repository (CI has it there).
fn corpus(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

fn mean_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum::<u64>() as f64 / b.len() as f64
}

#[test]
fn agrees_with_jpeg_decoder_on_photos() {
    for name in [
        "photos/coffee-12mp.jpg",
        "photos/coffee-12mp-progressive.jpg",
        "photos/astronaut-1mp.jpg",
    ] {
        let data = corpus(name);
        for scale in [Scale::Eighth, Scale::Quarter] {
            // Same coefficients; jpeg-decoder's reduced IDCTs round differently from libjpeg's.
            let (mean, max) = luma_diff_from_jpeg_decoder(&data, scale, name);
            assert!(
                mean < 2.0 && max < 32,
                "{name} at {scale:?}: mean {mean}, max {max}"
            );
        }
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn sampling_grey_and_restart_variants_agree_with_jpeg_decoder() {
    for (name, channels) in [
        ("gray.jpg", 1),
        ("gray-progressive.jpg", 1),
        ("sub422.jpg", 3),
        ("sub444.jpg", 3),
        ("restart.jpg", 3),
        ("progressive-restart.jpg", 3),
    ] {
        let data = fixture(name);
        let ours = decode(&data, Scale::Eighth).unwrap();
        assert_eq!(
            (ours.width, ours.height, ours.channels),
            (26, 20, channels),
            "{name}: 203x157 at 1/8"
        );
        for scale in [Scale::Eighth, Scale::Quarter] {
            let (mean, max) = luma_diff_from_jpeg_decoder(&data, scale, name);
            assert!(
                mean < 2.0 && max < 32,
                "{name} at {scale:?}: mean {mean}, max {max}"
            );
        }
    }
}

#[test]
fn without_chroma_upsampling_it_matches_libjpeg_exactly() {
    // The .eighth.raw and .quarter.raw files are libjpeg-turbo's own output at that scale
    // (Pillow's `draft`), see tests/fixtures/README.md. Grey, 4:4:4 and 4:2:0 need no
    // upsampling (4:2:0 chroma gets the larger IDCT), sequential or progressive, with or
    // without restarts: the decode must agree to the last bit. Except at 1/8, where 4:2:0
    // chroma comes from its DC plane, upsampled (checked below).
    let cases = [
        "gray.jpg",
        "gray-progressive.jpg",
        "sub444.jpg",
        "restart.jpg",
        "progressive-restart.jpg",
    ];
    for name in cases {
        for (scale, suffix) in [(Scale::Eighth, "eighth"), (Scale::Quarter, "quarter")] {
            if name.contains("restart") && scale == Scale::Eighth {
                continue;
            }
            let ours = decode(&fixture(name), scale).unwrap();
            let expected = fixture(&name.replace(".jpg", &format!(".{suffix}.raw")));
            assert_eq!(ours.pixels.len(), expected.len(), "{name} at {scale:?}");
            let differ = ours.pixels.iter().zip(&expected).filter(|(a, b)| a != b).count();
            assert_eq!(
                differ, 0,
                "{name} at {scale:?}: {differ} samples differ from libjpeg-turbo"
            );
        }
    }
}

#[test]
fn subsampled_chroma_at_one_eighth_is_upsampled_from_dc() {
    // Luma is libjpeg's to the bit; chroma differs from libjpeg's 2x2 IDCT by the detail the
    // DC plane lacks, which shows a little in luma computed back from RGB.
    for name in ["restart.jpg", "progressive-restart.jpg"] {
        let ours = decode(&fixture(name), Scale::Eighth).unwrap();
        let expected = fixture(&name.replace(".jpg", ".eighth.raw"));
        let (a, b) = (luma(&ours.pixels, 3), luma(&expected, 3));
        let (mean, max) = (mean_diff(&a, &b), max_diff(&a, &b));
        assert!(
            mean < 1.5 && max <= 24,
            "{name}: luma differs by {mean} on average, {max} at most"
        );
    }
}

#[test]
fn cmyk_is_left_to_the_full_decoder() {
    assert_eq!(decode(&fixture("cmyk.jpg"), Scale::Eighth), None);
}

#[test]
fn damaged_streams_are_left_to_the_full_decoder() {
    let data = corpus("photos/astronaut-1mp.jpg");
    assert!(decode(&data, Scale::Eighth).is_some());
    // Truncated in the middle of the scan.
    assert!(decode(&data[..data.len() / 2], Scale::Eighth).is_none());
    // Not a JPEG at all, or only its start.
    assert!(decode(b"GIF89a", Scale::Eighth).is_none());
    assert!(decode(&data[..2], Scale::Eighth).is_none());
    // Every prefix and a byte flipped anywhere: never a panic.
    for cut in (0..data.len()).step_by(997) {
        let _ = decode(&data[..cut], Scale::Eighth);
        let _ = decode(&data[..cut], Scale::Quarter);
        let mut bad = data.clone();
        bad[cut] ^= 0x5A;
        let _ = decode(&bad, Scale::Eighth);
        let _ = decode(&bad, Scale::Quarter);
    }
}
