use super::*;

fn reference(data: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(data);
    d.read_info().unwrap();
    let info = d.info().unwrap();
    let (w, h) = (info.width.div_ceil(8), info.height.div_ceil(8));
    d.scale(w, h).unwrap();
    let px = d.decode().unwrap();
    let info = d.info().unwrap();
    (info.width as u32, info.height as u32, px)
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
fn agrees_with_jpeg_decoder_at_one_eighth() {
    for name in [
        "photos/coffee-12mp.jpg",
        "photos/coffee-12mp-progressive.jpg",
        "photos/astronaut-1mp.jpg",
    ] {
        let data = corpus(name);
        let ours = decode(&data).unwrap_or_else(|| panic!("{name}: fast path refused"));
        let (w, h, px) = reference(&data);
        assert_eq!((ours.width, ours.height), (w, h), "{name}");
        assert_eq!(ours.pixels.len(), px.len(), "{name}");
        // Same DC values; the chroma upsampling and colour rounding differ slightly.
        let mean = mean_diff(&ours.pixels, &px);
        assert!(mean < 2.0, "{name}: mean difference {mean}");
        assert!(max_diff(&ours.pixels, &px) < 64, "{name}");
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
        let ours = decode(&data).unwrap_or_else(|| panic!("{name}: fast path refused"));
        let (w, h, px) = reference(&data);
        assert_eq!(
            (ours.width, ours.height, ours.channels),
            (w, h, channels),
            "{name}"
        );
        assert_eq!((w, h), (26, 20), "{name}: 203x157 at 1/8");
        let mean = mean_diff(&ours.pixels, &px);
        // jpeg-decoder rounds its colour conversion and 1x1 IDCT a little differently.
        assert!(mean < 1.5, "{name}: mean difference {mean}");
    }
}

#[test]
fn without_chroma_upsampling_it_matches_libjpeg_exactly() {
    // The .eighth.raw files are libjpeg-turbo's own 1/8-scale output (Pillow's `draft`),
    // see tests/fixtures/README.md. With no chroma to upsample, the DC path must agree
    // to the last bit.
    for name in ["gray.jpg", "gray-progressive.jpg", "sub444.jpg"] {
        let ours = decode(&fixture(name)).unwrap();
        let expected = fixture(&name.replace(".jpg", ".eighth.raw"));
        assert!(ours.pixels == expected, "{name}: differs from libjpeg-turbo");
    }
}

#[test]
fn cmyk_is_left_to_the_full_decoder() {
    assert_eq!(decode(&fixture("cmyk.jpg")), None);
}

#[test]
fn damaged_streams_are_left_to_the_full_decoder() {
    let data = corpus("photos/astronaut-1mp.jpg");
    assert!(decode(&data).is_some());
    // Truncated in the middle of the scan.
    assert!(decode(&data[..data.len() / 2]).is_none());
    // Not a JPEG at all, or only its start.
    assert!(decode(b"GIF89a").is_none());
    assert!(decode(&data[..2]).is_none());
    // Every prefix and a byte flipped anywhere: never a panic.
    for cut in (0..data.len()).step_by(997) {
        let _ = decode(&data[..cut]);
        let mut bad = data.clone();
        bad[cut] ^= 0x5A;
        let _ = decode(&bad);
    }
}
