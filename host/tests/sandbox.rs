//! The sandbox against hostile components and hostile inputs: each must end in a typed error
//! in bounded time and memory, and the next call must work.

mod common;

use std::time::{Duration, Instant};

use common::*;
use edgethumb::sandbox::{SandboxError, default_memory_for};
use resizer_core::{Fit, Options, OutputFormat};

#[test]
fn endless_loop_hits_the_deadline_and_the_host_carries_on() {
    let deadline = Duration::from_millis(300);
    let sandbox = sandbox_with(deadline, 64 << 20);
    let hostile = sandbox.load(&hostile_component(LOOP_FOREVER)).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let err = hostile.thumbnail(&small_png(), &Options::default()).unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, SandboxError::Deadline(d) if d == deadline),
            "got {err:?}"
        );
        assert!(
            took >= deadline && took < deadline * 5,
            "interrupted after {took:?} for a {deadline:?} deadline"
        );
        assert_eq!(err.code().as_str(), "deadline_exceeded");
    }
    let err = hostile.probe(&small_png()).unwrap_err();
    assert!(matches!(err, SandboxError::Deadline(_)), "probe: {err:?}");
    assert_next_call_works(&sandbox.load_builtin().unwrap());
}

/// Finding 6 of issue 12: a wait inside WASI ran 20 s under a 2 s deadline, then counted as a
/// crash.
#[test]
fn waiting_in_wasi_ends_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let sandbox = sandbox_with(deadline, 64 << 20);
    for body in [WAIT_IN_WASI, POLL_IN_WASI] {
        let hostile = sandbox
            .load(&hostile_component_importing(WASI_WAIT_IMPORTS, body))
            .unwrap();
        let started = Instant::now();
        let err = hostile.thumbnail(&small_png(), &Options::default()).unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(err, SandboxError::Deadline(d) if d == deadline),
            "{body}: got {err:?}"
        );
        assert!(
            took < deadline * 5,
            "{body}: ended after {took:?} for a {deadline:?} deadline"
        );
        let err = hostile.probe(&small_png()).unwrap_err();
        assert_eq!(err.code().as_str(), "deadline_exceeded", "{body}: probe");
    }
    assert_next_call_works(&sandbox.load_builtin().unwrap());
}

#[test]
fn memory_growth_past_the_cap_is_a_memory_error() {
    let cap = 32 << 20;
    let sandbox = sandbox_with(Duration::from_secs(10), cap);
    let hostile = sandbox.load(&hostile_component(GROW_FOREVER)).unwrap();
    let err = hostile.thumbnail(&small_png(), &Options::default()).unwrap_err();
    assert!(
        matches!(err, SandboxError::MemoryLimit { cap: c } if c == cap),
        "got {err:?}"
    );
    assert_next_call_works(&sandbox.load_builtin().unwrap());
}

#[test]
fn a_trapping_component_is_a_crash_not_a_host_panic() {
    let sandbox = sandbox_with(Duration::from_secs(10), 64 << 20);
    let hostile = sandbox.load(&hostile_component(TRAP)).unwrap();
    let err = hostile.thumbnail(&small_png(), &Options::default()).unwrap_err();
    assert!(matches!(err, SandboxError::Trap(_)), "got {err:?}");
    assert!(
        err.code().is_worth_retrying(),
        "a crash may be the host's doing: worth a retry"
    );
    assert_next_call_works(&sandbox.load_builtin().unwrap());
}

#[test]
fn a_real_component_under_a_tiny_cap_fails_cleanly() {
    // The real resizer, a 2 MP RGBA PNG (about 20 MiB to decode) and 8 MiB of memory: the
    // guest's allocator fails, and that must surface as the memory error, not as a crash.
    let sandbox = sandbox_with(Duration::from_secs(10), 8 << 20);
    let resizer = sandbox.load_builtin().unwrap();
    let err = resizer
        .thumbnail(&photo("astronaut-2mp-rgba.png"), &Options::default())
        .unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit { .. }), "got {err:?}");
    assert_next_call_works(&resizer);
}

/// What the fuzzers found (resizer-core/tests/fuzz-regressions) through the real component:
/// a thumbnail or a typed image error, never a crash or a deadline.
#[test]
fn fuzz_findings_are_typed_results_in_the_sandbox() {
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../resizer-core/tests/fuzz-regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        match builtin().thumbnail(&data, &Options::default()) {
            Ok((thumb, _)) => assert!(thumb.width <= 100 && thumb.height <= 100),
            Err(SandboxError::Image(_)) => {}
            Err(other) => panic!("{}: {other:?}", path.display()),
        }
        seen += 1;
    }
    assert!(seen > 0, "no fuzz findings in {}", dir.display());
    assert_next_call_works(builtin());
}

#[test]
fn decompression_bomb_is_refused_from_the_header() {
    let bomb = png_bomb();
    assert!(bomb.len() < 1 << 20, "bomb is {} bytes", bomb.len());
    let resizer = builtin();
    let started = Instant::now();
    let err = resizer.thumbnail(&bomb, &Options::default()).unwrap_err();
    let took = started.elapsed();
    match &err {
        SandboxError::Image(resizer_core::Error::TooLarge {
            width,
            height,
            max_pixels,
        }) => {
            assert_eq!((*width, *height), (40_000, 40_000));
            assert_eq!(*max_pixels, resizer_core::DEFAULT_MAX_PIXELS);
        }
        other => panic!("expected too-large, got {other:?}"),
    }
    assert!(took < Duration::from_secs(2), "refusal took {took:?}");
    // Peak guest memory: the input plus bookkeeping, nowhere near the pixels.
    let (info, stats) = resizer.probe(&bomb).unwrap();
    assert_eq!((info.width, info.height), (40_000, 40_000));
    assert!(
        stats.peak_memory_bytes < 8 << 20,
        "probe peaked at {} bytes",
        stats.peak_memory_bytes
    );
    assert_next_call_works(resizer);
}

#[test]
fn empty_random_and_truncated_inputs_are_typed_errors() {
    let resizer = builtin();
    let mut inputs: Vec<(String, Vec<u8>)> = vec![("empty".into(), vec![])];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for len in [1usize, 7, 100, 10_000, 1 << 20] {
        let bytes = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        inputs.push((format!("random {len}"), bytes));
    }
    for name in [
        "coffee-12mp.jpg",
        "coffee-2mp.webp",
        "astronaut-2mp.png",
        "coffee-2mp.gif",
        "coffee-2mp.bmp",
    ] {
        let full = photo(name);
        for frac in [2usize, 10, 100] {
            inputs.push((
                format!("{name} cut to 1/{frac}"),
                full[..full.len() / frac].to_vec(),
            ));
        }
        // A valid header followed by garbage.
        let mut mangled = full[..full.len().min(600)].to_vec();
        mangled.extend(std::iter::repeat_n(0xA5u8, 50_000));
        inputs.push((format!("{name} header + garbage"), mangled));
    }
    for (name, bytes) in &inputs {
        match resizer.thumbnail(bytes, &Options::default()) {
            Err(SandboxError::Image(_)) => {}
            // Some decoders fill a truncated image with grey and say nothing; then the result
            // must still be a proper thumbnail.
            Ok((t, _)) => assert!(
                t.width == 100 || t.height == 100,
                "{name}: {}x{}",
                t.width,
                t.height
            ),
            Err(other) => panic!("{name}: expected a typed image error, got {other:?}"),
        }
        match resizer.probe(bytes) {
            Ok(_) | Err(SandboxError::Image(_)) => {}
            Err(other) => panic!("{name}: probe gave {other:?}"),
        }
    }
    for (name, bytes) in &inputs[..6] {
        assert!(
            matches!(
                resizer.thumbnail(bytes, &Options::default()),
                Err(SandboxError::Image(resizer_core::Error::UnsupportedFormat(_)))
            ),
            "{name} should be unsupported"
        );
    }
    assert_next_call_works(resizer);
}

#[test]
fn invalid_options_are_refused_before_the_guest_runs() {
    let resizer = builtin();
    for opts in [
        Options {
            width: 0,
            ..Options::default()
        },
        Options {
            height: 100_000,
            ..Options::default()
        },
        Options {
            quality: 101,
            format: OutputFormat::Jpeg,
            ..Options::default()
        },
    ] {
        let err = resizer.thumbnail(&small_png(), &opts).unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_options", "{opts:?}: {err}");
    }
}

#[test]
fn not_components_are_refused_at_load() {
    let sandbox = sandbox_with(Duration::from_secs(1), 16 << 20);
    let cases: [(&str, Vec<u8>); 3] = [
        ("garbage", b"definitely not wasm".to_vec()),
        (
            "core module",
            wat::parse_str("(module (func (export \"f\")))").unwrap(),
        ),
        ("empty", vec![]),
    ];
    for (name, bytes) in cases {
        let err = sandbox
            .load(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{name} loaded"));
        assert!(matches!(err, SandboxError::NotAComponent(_)), "{name}: {err:?}");
    }
    // A component of another world: it compiles, but does not export the resizer.
    let other = wat::parse_str("(component (core module $m) (core instance (instantiate $m)))").unwrap();
    let err = sandbox
        .load(&other)
        .err()
        .expect("a component without the export loaded");
    assert!(matches!(err, SandboxError::World(_)), "{err:?}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = || edgethumb::sandbox::SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..config()
    };
    let wasm = hostile_component(TRAP);
    let first = edgethumb::sandbox::Sandbox::new(config())
        .unwrap()
        .load(&wasm)
        .unwrap();
    assert!(!first.from_cache());
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().starts_with(first.digest()));
    let second = edgethumb::sandbox::Sandbox::new(config())
        .unwrap()
        .load(&wasm)
        .unwrap();
    assert!(second.from_cache());
    assert_eq!(second.digest(), first.digest());
    // A corrupt artefact is replaced, not trusted. (Replaced by rename, as the cache itself
    // writes: truncating a file that a live component has mapped would pull its code away.)
    let garbage = dir.path().join("garbage.tmp");
    std::fs::write(&garbage, b"garbage").unwrap();
    std::fs::rename(&garbage, dir.path().join(&files[0])).unwrap();
    let third = edgethumb::sandbox::Sandbox::new(config())
        .unwrap()
        .load(&wasm)
        .unwrap();
    assert!(!third.from_cache());
    assert!(matches!(
        third.thumbnail(&small_png(), &Options::default()),
        Err(SandboxError::Trap(_))
    ));
}

#[test]
fn fit_modes_give_the_requested_geometry() {
    let resizer = builtin();
    let src = photo("coffee-12mp.jpg");
    for (fit, w, h, want) in [
        (Fit::Contain, 100, 100, (100, 67)),
        (Fit::Contain, 50, 200, (50, 33)),
        (Fit::Cover, 100, 100, (100, 100)),
        (Fit::Fill, 30, 90, (30, 90)),
    ] {
        let (t, _) = resizer
            .thumbnail(
                &src,
                &Options {
                    fit,
                    width: w,
                    height: h,
                    ..Options::default()
                },
            )
            .unwrap();
        let img = image::load_from_memory(&t.data).unwrap();
        assert_eq!((img.width(), img.height()), want, "{fit:?} {w}x{h}");
    }
}

#[test]
fn exif_orientation_is_applied() {
    // Stored landscape 1200x800 with orientation 6: displayed portrait.
    let (t, _) = builtin()
        .thumbnail(&photo("coffee-exif-orientation-6.jpg"), &Options::default())
        .unwrap();
    assert_eq!(t.source.orientation, 6);
    assert_eq!((t.source.width, t.source.height), (800, 1200));
    let img = image::load_from_memory(&t.data).unwrap();
    assert_eq!((img.width(), img.height()), (67, 100));
}

/// A full decode with the EXIF orientation applied, as the reference for quality checks.
fn oriented(bytes: &[u8]) -> image::DynamicImage {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    let orientation = decoder.orientation().unwrap();
    let mut img = image::DynamicImage::from_decoder(decoder).unwrap();
    img.apply_orientation(orientation);
    img
}

/// Peak signal-to-noise ratio of two same-sized RGB images, in dB.
fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let mse = se / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

#[test]
fn resize_quality_matches_a_lanczos_reference() {
    // The JPEGs take the shrink-on-load path (a DCT-domain downscale before the Lanczos pass).
    for name in [
        "coffee-12mp.jpg",
        "coffee-12mp-progressive.jpg",
        "motorcycle-24mp.jpg",
        "coffee-exif-orientation-6.jpg",
        "astronaut-2mp.png",
        "coffee-2mp.webp",
    ] {
        let src = photo(name);
        let (t, _) = builtin().thumbnail(&src, &Options::default()).unwrap();
        let ours = image::load_from_memory(&t.data).unwrap().into_rgb8();
        let reference = oriented(&src)
            .resize_exact(ours.width(), ours.height(), image::imageops::FilterType::Lanczos3)
            .into_rgb8();
        let db = psnr(&ours, &reference);
        eprintln!("{name}: PSNR {db:.1} dB");
        assert!(
            db >= 30.0,
            "{name}: PSNR {db:.1} dB against the Lanczos3 reference"
        );
        // And it is not just any image of the right size: a flat grey scores far lower.
        let grey = image::RgbImage::from_pixel(ours.width(), ours.height(), image::Rgb([128, 128, 128]));
        assert!(psnr(&grey, &reference) < 20.0);
    }
}

#[test]
fn an_image_at_the_pixel_limit_fits_in_the_default_memory_cap() {
    // The costliest layout the decoders produce: 16-bit RGBA, 8 bytes a pixel.
    let max = resizer_core::DEFAULT_MAX_PIXELS;
    let h = 6500u32;
    let w = (max / h as u64) as u32;
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.set_compression(png::Compression::Fastest);
        let mut writer = enc.write_header().unwrap();
        let mut stream = writer.stream_writer().unwrap();
        let mut row = vec![0u8; w as usize * 8];
        for y in 0..h {
            for (x, px) in row.chunks_exact_mut(8).enumerate() {
                px[0] = (x / 64) as u8;
                px[2] = (y / 64) as u8;
                px[6] = 0xff;
                px[7] = if (x / 500 + y as usize / 500).is_multiple_of(2) {
                    0xff
                } else {
                    0x80
                };
            }
            std::io::Write::write_all(&mut stream, &row).unwrap();
        }
        stream.finish().unwrap();
        writer.finish().unwrap();
    }
    let resizer = builtin();
    let (t, stats) = resizer
        .thumbnail(&png_bytes, &Options::default())
        .expect("an image at the limit");
    assert_eq!(t.width, 100);
    assert!(t.source.has_alpha);
    let cap = default_memory_for(max);
    assert!(
        stats.peak_memory_bytes <= cap,
        "peak {} over cap {cap}",
        stats.peak_memory_bytes
    );
    eprintln!(
        "{w}x{h} RGBA16 ({} MB encoded): peak guest memory {} MiB of {} MiB, {:?}",
        png_bytes.len() >> 20,
        stats.peak_memory_bytes >> 20,
        cap >> 20,
        stats.total
    );
}

/// Finding 5 of issue 12: workers could together hold more memory than the host has. With a
/// budget of one call's cap, a second call waits for the first, whatever the pool allows.
#[test]
fn calls_wait_for_the_memory_budget() {
    let cap = 64 << 20;
    let sandbox = edgethumb::sandbox::Sandbox::new(edgethumb::sandbox::SandboxConfig {
        deadline: Duration::from_millis(500),
        max_memory_bytes: cap,
        memory_budget: cap,
        ..config()
    })
    .unwrap();
    assert_eq!(sandbox.memory_budget(), cap);
    let hostile = sandbox.load(&hostile_component(LOOP_FOREVER)).unwrap();
    let honest = sandbox.load_builtin().unwrap();
    let deadline = sandbox.config().deadline;
    std::thread::scope(|s| {
        let spawned = Instant::now();
        let looping = s.spawn(|| hostile.thumbnail(&small_png(), &Options::default()).unwrap_err());
        let until = Instant::now() + Duration::from_secs(10);
        while sandbox.memory_in_use() < cap {
            assert!(
                Instant::now() < until,
                "the looping call never reserved its memory"
            );
            std::thread::yield_now();
        }
        // The looping call started after `spawned` and runs its whole deadline, so the
        // honest one, admitted only after it, cannot finish sooner than this.
        let started = Instant::now();
        let (thumb, _) = honest.thumbnail(&small_png(), &Options::default()).unwrap();
        let waited = started.elapsed();
        let head_start = started - spawned;
        assert!(
            waited + head_start >= deadline,
            "the second call took {waited:?}, {head_start:?} after the first began: it ran beside it"
        );
        assert!(thumb.width > 0);
        let err = looping.join().unwrap();
        assert!(matches!(err, SandboxError::Deadline(_)), "got {err:?}");
    });
    assert_eq!(sandbox.memory_in_use(), 0);
}

#[test]
fn a_budget_smaller_than_one_call_is_refused() {
    let err = edgethumb::sandbox::Sandbox::new(edgethumb::sandbox::SandboxConfig {
        max_memory_bytes: 64 << 20,
        memory_budget: 32 << 20,
        ..config()
    })
    .err()
    .expect("a budget below the cap must be refused");
    assert!(err.to_string().contains("--memory-budget"), "{err}");
}

#[test]
fn calls_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    // Two pool slots, eight concurrent calls, each slow enough to overlap the others: every
    // call must get its thumbnail, none a "pool exhausted" error.
    let sandbox = edgethumb::sandbox::Sandbox::new(edgethumb::sandbox::SandboxConfig {
        max_concurrent_calls: 2,
        ..config()
    })
    .unwrap();
    let resizer = sandbox.load_builtin().unwrap();
    let image = photo("astronaut-1mp.jpg");
    let results: Vec<_> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..8)
            .map(|_| s.spawn(|| resizer.thumbnail(&image, &Options::default())))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for r in results {
        let (thumb, _) = r.unwrap();
        assert_eq!((thumb.width, thumb.height), (100, 100));
    }
}
