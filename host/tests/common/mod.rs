//! Helpers shared by the integration tests: where the corpus is, a sandbox with the built-in
//! component compiled once per test binary (and cached on disk across binaries), and
//! hostile components built from WAT.
#![allow(dead_code)]

pub mod edge;
pub mod node;
pub mod origin;
pub mod server;

/// Runs each named `async fn()` test on one backend, as `MODULE::NAME`.
#[macro_export]
macro_rules! on_backend {
    ($module:ident, $backend:ident, $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    $crate::common::server::with_backend($crate::common::server::Backend::$backend, super::$name())
                        .await
                }
            )*
        }
    };
}

/// Runs each named `async fn()` test once on SQLite and once on PostgreSQL (as
/// `sqlite::NAME` and `postgres::NAME`): one suite, both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::on_backend!(sqlite, Sqlite, $($name),*);
        $crate::on_backend!(postgres, Postgres, $($name),*);
    };
}

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use edgethumb::sandbox::{Resizer, Sandbox, SandboxConfig};

/// `../shared/corpus` beside the repository, or `$EDGETHUMB_CORPUS`.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("EDGETHUMB_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    assert!(
        dir.join("MANIFEST.tsv").exists(),
        "test corpus not found at {} (clone the repo beside ../shared, or set EDGETHUMB_CORPUS)",
        dir.display()
    );
    dir
}

pub fn photo(name: &str) -> Vec<u8> {
    let path = corpus_dir().join("photos").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Compiled components shared by every test binary of this run.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compiled")
}

pub fn config() -> SandboxConfig {
    SandboxConfig {
        cache_dir: Some(cache_dir()),
        ..SandboxConfig::default()
    }
}

/// The built-in component in a sandbox with the default limits.
pub fn builtin() -> &'static Resizer {
    static R: OnceLock<Resizer> = OnceLock::new();
    R.get_or_init(|| Sandbox::new(config()).unwrap().load_builtin().unwrap())
}

/// A sandbox with the default limits but the given deadline and memory cap.
pub fn sandbox_with(deadline: Duration, max_memory_bytes: u64) -> Sandbox {
    Sandbox::new(SandboxConfig {
        deadline,
        max_memory_bytes,
        ..config()
    })
    .unwrap()
}

/// `wasm` as a WIT 1.0 build of it would be: the `thumbnails` interface (added in 1.1) dropped
/// from the top-level exports and `resizer@1.1.0` renamed to `resizer@1.0.0`, whose types are
/// the same. Everything else is copied byte for byte. The `thumbnails` export comes last, so
/// dropping it shifts no index anything refers to.
pub fn as_wit_1_0(wasm: &[u8]) -> Vec<u8> {
    use wasm_encoder::{ComponentExportKind as K, ComponentTypeRef as T, RawSection};
    use wasmparser::{ComponentExternalKind as PK, ComponentTypeRef as PT, Parser, Payload};
    let mut out = wasm_encoder::Component::new();
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.unwrap();
        match &payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            _ => {}
        }
        if depth != 1 {
            continue;
        }
        match payload {
            Payload::ComponentExportSection(reader) => {
                let mut exports = wasm_encoder::ComponentExportSection::new();
                for e in reader {
                    let e = e.unwrap();
                    if e.name.0.starts_with("edgethumb:resizer/thumbnails@") {
                        continue;
                    }
                    let kind = match e.kind {
                        PK::Module => K::Module,
                        PK::Func => K::Func,
                        PK::Value => K::Value,
                        PK::Type => K::Type,
                        PK::Instance => K::Instance,
                        PK::Component => K::Component,
                    };
                    let ty = e.ty.map(|t| match t {
                        PT::Instance(i) => T::Instance(i),
                        PT::Func(i) => T::Func(i),
                        PT::Component(i) => T::Component(i),
                        PT::Module(i) => T::Module(i),
                        other => panic!("unexpected export type {other:?}"),
                    });
                    let name = e.name.0.replace("resizer/resizer@1.1.0", "resizer/resizer@1.0.0");
                    exports.export(&name, kind, e.index, ty);
                }
                out.section(&exports);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &wasm[range],
                    });
                }
            }
        }
    }
    out.finish()
}

/// A component exporting the resizer world whose `probe` and `thumbnail` both run `body`
/// (WAT instructions; the function then traps if `body` falls through). Built from a core
/// module written in WAT plus the real WIT, so its exports type-check like the real thing.
pub fn hostile_component(body: &str) -> Vec<u8> {
    hostile_component_importing("", body)
}

/// [`hostile_component`] whose core module also has `imports` (WAT import fields of the WASI
/// functions declared in [`HOSTILE_WASI_WIT`]).
pub fn hostile_component_importing(imports: &str, body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          {imports}
          (memory (export "memory") 1)
          (global $heap (mut i32) (i32.const 1024))
          ;; A bump allocator: enough for the host to copy arguments in.
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
            (local $p i32)
            (local.set $p (i32.and
              (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
              (i32.sub (i32.const 0) (local.get 2))))
            (global.set $heap (i32.add (local.get $p) (local.get 3)))
            (block $done
              (loop $grow
                (br_if $done (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
                (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
                (br $grow)))
            (local.get $p))
          (func (export "edgethumb:resizer/resizer@1.0.0#probe") (param i32 i32) (result i32)
            {body}
            unreachable)
          (func (export "edgethumb:resizer/resizer@1.0.0#thumbnail")
            (param i32 i32 i32 i32 i32 i32 i32 i64) (result i32)
            {body}
            unreachable))"#
    );
    let mut module = wat::parse_str(&wat).expect("hostile WAT parses");
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_path(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/wit-1.0"))
        .unwrap();
    for (i, wit) in HOSTILE_WASI_WIT.iter().enumerate() {
        resolve.push_str(format!("hostile{i}.wit"), wit).unwrap();
    }
    let pkg = resolve.push_str("hostile.wit", HOSTILE_WORLD).unwrap();
    let world = resolve.select_world(&[pkg], Some("hostile")).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .expect("hostile component encodes")
}

/// The parts of WASI a hostile component may import, as the real packages declare them.
const HOSTILE_WASI_WIT: [&str; 2] = [
    "package wasi:io@0.2.0;
     interface poll { resource pollable { block: func(); } poll: func(in: list<borrow<pollable>>) -> list<u32>; }",
    "package wasi:clocks@0.2.0;
     interface monotonic-clock {
         use wasi:io/poll@0.2.0.{pollable};
         subscribe-duration: func(when: u64) -> pollable;
     }",
];
/// The resizer world plus those imports (a component imports only what its module uses).
const HOSTILE_WORLD: &str = "package test:hostile;
world hostile {
    import wasi:clocks/monotonic-clock@0.2.0;
    import wasi:io/poll@0.2.0;
    export edgethumb:resizer/resizer@1.0.0;
}";

/// Imports for [`WAIT_IN_WASI`] and [`POLL_IN_WASI`].
pub const WASI_WAIT_IMPORTS: &str = r#"
    (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration" (func $subscribe (param i64) (result i32)))
    (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func $block (param i32)))
    (import "wasi:io/poll@0.2.0" "poll" (func $poll (param i32 i32 i32)))"#;
/// Subscribes to a 30 s timer and blocks on it: a wait the epoch never sees.
pub const WAIT_IN_WASI: &str = "(call $block (call $subscribe (i64.const 30000000000)))";
/// The same wait through `poll` with a one-element list at address 16 (results at 32).
pub const POLL_IN_WASI: &str = "(i32.store (i32.const 16) (call $subscribe (i64.const 30000000000)))
    (call $poll (i32.const 16) (i32.const 1) (i32.const 32))";

/// Loops forever.
pub const LOOP_FOREVER: &str = "(loop $l (br $l))";
/// Grows memory a megabyte at a time until refused, then traps.
pub const GROW_FOREVER: &str = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))";
/// Traps at once.
pub const TRAP: &str = "";

/// A small valid PNG for "the next call still works" checks.
pub fn small_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .unwrap();
    out
}

/// A JPEG cut off half way: a job on it fails with `malformed_image`.
pub fn truncated_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(256, 256, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90))
        .unwrap();
    out.truncate(out.len() / 2);
    out
}

/// Asserts the built-in component still thumbnails an image correctly.
pub fn assert_next_call_works(resizer: &Resizer) {
    let (t, _) = resizer
        .thumbnail(&small_png(), &resizer_core::Options::default())
        .expect("a valid image after a hostile one");
    assert_eq!((t.width, t.height), (100, 75));
}

/// Blob files under a data dir, half-written ones (`tmp`) excluded.
pub fn blob_files(data_dir: &std::path::Path) -> usize {
    let Ok(shards) = std::fs::read_dir(data_dir.join("blobs")) else {
        return 0;
    };
    shards
        .flatten()
        .filter(|s| s.file_name() != "tmp")
        .map(|s| std::fs::read_dir(s.path()).map(|f| f.count()).unwrap_or(0))
        .sum()
}

/// A 1-bit greyscale PNG of 40000x40000 zeros: 200 MB of pixels at 1 bit, 1.6 GB once
/// decoded to 8 bits, and about 200 KB on disk.
pub fn png_bomb() -> Vec<u8> {
    let (w, h) = (40_000u32, 40_000u32);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0u8; w.div_ceil(8) as usize];
    for _ in 0..h {
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
    writer.finish().unwrap();
    out
}
