//! ICO (and CUR) decoding: one entry, the largest, as Pillow shows by default.
//!
//! `image` refuses icons whose directory fields are nonsense, PNG entries that are not RGBA,
//! and 32-bpp entries whose AND mask is cut short. Here the directory supplies only the
//! entry's size for choosing it and where its data is; everything else (bit depth, real
//! size, PNG colour type) comes from the entry's own PNG or DIB header.
//!
//! The chosen entry is the largest by directory size (a 0 there means 256); among equal
//! sizes the deepest by its real header, then PNG over DIB, then the first. PNG entries
//! decode in whatever colour type they have; DIB entries go to [`super::bmp::decode_dib`],
//! which applies the AND mask and the 32-bpp alpha rules.

use std::io::Cursor;

use image::codecs::png::PngDecoder;
use image::{DynamicImage, ImageDecoder};

use super::{Header, bmp, check_pixels};
use crate::Error;

const DIRECTORY_START: usize = 6;
const DIRECTORY_ENTRY_LEN: usize = 16;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Reads size and alpha from the header alone.
pub fn dimensions(data: &[u8]) -> Result<Header, Error> {
    let entry = choose_entry(data, None)?;
    if entry.png {
        let decoder = png_decoder(entry.data)?;
        let (width, height) = decoder.dimensions();
        Ok(Header {
            width,
            height,
            has_alpha: decoder.color_type().has_alpha(),
        })
    } else {
        Ok(bmp::dib_header(entry.data, true)?.header)
    }
}

/// Decodes the image, refusing it before allocation if it has more than `max_pixels`.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<DynamicImage, Error> {
    decode_entry(choose_entry(data, None)?, max_pixels)
}

/// Shrink-on-load for icons: decodes the smallest entry that still covers `need` (width,
/// height), among those shaped like the largest one, so a 100x100 thumbnail of an icon with
/// 16, 32, 128 and 256 pixel entries decodes the 128 one. The largest when none covers it.
pub fn decode_for(data: &[u8], max_pixels: u64, need: (u32, u32)) -> Result<DynamicImage, Error> {
    decode_entry(choose_entry(data, Some(need))?, max_pixels)
}

fn decode_entry(entry: Entry<'_>, max_pixels: u64) -> Result<DynamicImage, Error> {
    if entry.png {
        let decoder = png_decoder(entry.data)?;
        let (width, height) = decoder.dimensions();
        check_pixels(width, height, max_pixels)?;
        DynamicImage::from_decoder(decoder).map_err(png_error)
    } else {
        bmp::decode_dib(entry.data, max_pixels, true)
    }
}

fn png_error(e: image::ImageError) -> Error {
    Error::MalformedImage(format!("png entry of ico: {e}"))
}

fn png_decoder(png: &[u8]) -> Result<PngDecoder<Cursor<&[u8]>>, Error> {
    PngDecoder::new(Cursor::new(png)).map_err(png_error)
}

/// An entry's data and what ranks it.
#[derive(Clone)]
struct Entry<'a> {
    data: &'a [u8],
    png: bool,
    /// Width and height from the directory.
    width: u32,
    height: u32,
    /// Bits per pixel from the entry's own header.
    depth: u32,
}

impl Entry<'_> {
    fn rank(&self) -> (u32, u32, bool) {
        (self.width * self.height, self.depth, self.png)
    }

    fn covers(&self, (w, h): (u32, u32)) -> bool {
        self.width >= w && self.height >= h
    }
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The largest entry (see the module docs), or with `need`, the smallest of the same shape
/// that covers it.
fn choose_entry(data: &[u8], need: Option<(u32, u32)>) -> Result<Entry<'_>, Error> {
    let (Some(reserved), Some(kind), Some(count)) = (u16_at(data, 0), u16_at(data, 2), u16_at(data, 4))
    else {
        return Err(Error::MalformedImage("ico header is truncated".into()));
    };
    if reserved != 0 || !matches!(kind, 1 | 2) {
        return Err(Error::MalformedImage("not an ico file".into()));
    }
    if count == 0 {
        return Err(Error::MalformedImage("ico file has no entries".into()));
    }

    let mut entries: Vec<Entry> = Vec::new();
    let mut first_error = None;
    for i in 0..usize::from(count) {
        let start = DIRECTORY_START + i * DIRECTORY_ENTRY_LEN;
        let Some(dir) = data.get(start..start + DIRECTORY_ENTRY_LEN) else {
            // A directory cut short still has the entries before the cut.
            break;
        };
        match read_entry(data, dir) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // The first of equals wins, as before: iterate in reverse so max_by_key keeps it.
    let largest = entries.iter().rev().max_by_key(|e| e.rank());
    let chosen = match (largest, need) {
        (Some(largest), Some(need)) => entries
            .iter()
            .filter(|e| e.covers(need) && e.width * largest.height == e.height * largest.width)
            .min_by_key(|e| (e.width * e.height, std::cmp::Reverse((e.depth, e.png))))
            .or(Some(largest)),
        (largest, _) => largest,
    };
    chosen.cloned().ok_or_else(|| {
        first_error.unwrap_or_else(|| Error::MalformedImage("ico directory is truncated".into()))
    })
}

/// Locates an entry's data and reads its header; errors if it has no usable header.
fn read_entry<'a>(data: &'a [u8], dir: &[u8]) -> Result<Entry<'a>, Error> {
    let side = |at: usize| match dir.get(at) {
        Some(0) | None => 256,
        Some(&b) => u32::from(b),
    };
    let (width, height) = (side(0), side(1));
    let size = bmp::u32_at(dir, 8).and_then(|size| usize::try_from(size).ok());
    let rest = bmp::u32_at(dir, 12)
        .and_then(|offset| usize::try_from(offset).ok())
        .and_then(|offset| data.get(offset..))
        .filter(|rest| !rest.is_empty())
        .ok_or_else(|| Error::MalformedImage("ico entry lies outside the file".into()))?;
    // A size past the end of the file is taken as "to the end", which is all there is.
    let entry = size
        .and_then(|size| rest.get(..size))
        .filter(|entry| !entry.is_empty())
        .unwrap_or(rest);

    if entry.starts_with(PNG_SIGNATURE) {
        // Only the IHDR's bit depth and colour type are needed to rank it.
        let (Some(b"IHDR"), Some(&bit_depth), Some(&colour_type)) =
            (entry.get(12..16), entry.get(24), entry.get(25))
        else {
            return Err(Error::MalformedImage("png entry of ico has no IHDR".into()));
        };
        let channels = match colour_type {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        };
        Ok(Entry {
            data: entry,
            png: true,
            width,
            height,
            depth: u32::from(bit_depth) * channels,
        })
    } else {
        let dib = bmp::dib_header(entry, true)?;
        Ok(Entry {
            data: entry,
            png: false,
            width,
            height,
            depth: u32::from(dib.bits_per_pixel),
        })
    }
}

#[cfg(test)]
mod tests {
    use image::{GenericImageView, RgbaImage};

    use super::*;

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/formats/");

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{CORPUS}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn decode_rgba(name: &str) -> RgbaImage {
        decode(&read(name), crate::DEFAULT_MAX_PIXELS)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_rgba8()
    }

    fn px(img: &RgbaImage, x: u32, y: u32) -> [u8; 4] {
        img.get_pixel(x, y).0
    }

    /// An icon with one entry of `bytes`, whose directory says `size` (0 meaning 256).
    fn icon(size: u8, bytes: &[u8]) -> Vec<u8> {
        let mut data = vec![0, 0, 1, 0, 1, 0, size, size, 0, 0, 1, 0, 32, 0];
        data.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        data.extend_from_slice(&22u32.to_le_bytes());
        data.extend_from_slice(bytes);
        data
    }

    fn dib(width: i32, height: i32, bpp: u16, pixels: &[u8]) -> Vec<u8> {
        let mut data = 40u32.to_le_bytes().to_vec();
        data.extend_from_slice(&width.to_le_bytes());
        data.extend_from_slice(&height.to_le_bytes());
        data.extend_from_slice(&1u16.to_le_bytes());
        data.extend_from_slice(&bpp.to_le_bytes());
        data.extend_from_slice(&[0; 24]);
        data.extend_from_slice(pixels);
        data
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG signature, IHDR and an empty IDAT: enough for the header, not for pixels.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut data = PNG_SIGNATURE.to_vec();
        for chunk in [ihdr, b"IDAT".to_vec()] {
            data.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
            data.extend_from_slice(&chunk);
            data.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        data
    }

    #[test]
    fn ignores_directory_bit_depth() {
        let data = read("ico/images/lenient-bpp.ico");
        let header = dimensions(&data).unwrap();
        assert_eq!((header.width, header.height), (256, 256));
        // From Pillow: a red square.
        let img = decode_rgba("ico/images/lenient-bpp.ico");
        assert_eq!(img.dimensions(), (256, 256));
        assert_eq!(px(&img, 0, 0), [255, 0, 0, 255]);
        assert_eq!(px(&img, 255, 255), [255, 0, 0, 255]);
    }

    #[test]
    fn decodes_png_entries_of_any_colour_type() {
        // Pixel values from Pillow 13 (Image.open(f).convert("RGBA")).
        let data = read("ico/images/png_l8.ico");
        assert_eq!(
            dimensions(&data).unwrap(),
            Header {
                width: 32,
                height: 32,
                has_alpha: false
            }
        );
        let img = decode_rgba("ico/images/png_l8.ico");
        assert_eq!(px(&img, 0, 0), [131, 131, 131, 255]);
        assert_eq!(px(&img, 31, 31), [130, 130, 130, 255]);
        assert_eq!(px(&img, 5, 20), [96, 96, 96, 255]);

        let img = decode_rgba("ico/images/png_rgb8.ico");
        assert_eq!(img.dimensions(), (32, 32));
        assert_eq!(px(&img, 0, 0), [127, 104, 251, 255]);
        assert_eq!(px(&img, 16, 16), [126, 105, 250, 255]);
        assert_eq!(px(&img, 5, 20), [188, 54, 249, 255]);
    }

    #[test]
    fn ignores_a_truncated_mask() {
        let data = read("ico/images/truncated_mask_32bpp.ico");
        assert_eq!(
            dimensions(&data).unwrap(),
            Header {
                width: 64,
                height: 64,
                has_alpha: true
            }
        );
        // From Pillow: opaque blue.
        let img = decode_rgba("ico/images/truncated_mask_32bpp.ico");
        assert_eq!(px(&img, 0, 0), [0, 0, 255, 255]);
        assert_eq!(px(&img, 63, 63), [0, 0, 255, 255]);
        assert_eq!(px(&img, 10, 50), [0, 0, 255, 255]);
    }

    #[test]
    fn chooses_the_largest_then_deepest_entry() {
        let img = decode_rgba("ico/images/multiple_entries_with_different_bit_depth.ico");
        assert_eq!(img.dimensions(), (48, 48));
        // From Pillow's frame of the 48x48 32-bpp entry (Pillow itself shows the 8-bpp one).
        assert_eq!(px(&img, 0, 0), [2, 2, 4, 255]);
        assert_eq!(px(&img, 10, 5), [55, 29, 84, 255]);
        assert_eq!(px(&img, 8, 0), [45, 2, 47, 234]);
        assert_eq!(px(&img, 12, 0), [0, 0, 0, 0]);
        // Equal entries: the first, as in Pillow.
        let data = read("ico/images/two-entry-order-test.ico");
        let first = bmp::decode_dib(&data[38..3790], u64::MAX, true).unwrap();
        assert_eq!(decode(&data, u64::MAX).unwrap(), first);
    }

    #[test]
    fn applies_masks_and_alpha() {
        // From Pillow.
        let img = decode_rgba("ico/images/smile.ico");
        assert_eq!(img.dimensions(), (32, 32));
        assert_eq!(px(&img, 0, 0), [0, 0, 0, 0]);
        assert_eq!(px(&img, 16, 16), [255, 255, 0, 255]);
        let img = decode_rgba("ico/images/bmp-24bpp-mask.ico");
        assert_eq!(px(&img, 0, 0), [255, 255, 255, 0]);
        assert_eq!(px(&img, 16, 16), [153, 153, 153, 255]);
        assert_eq!(img.pixels().filter(|p| p.0[3] == 0).count(), 464);
        // 32 bpp: the alpha channel wins over the AND mask.
        let img = decode_rgba("ico/images/bmp-32bpp-conflicting-and-mask.ico");
        assert!(img.pixels().all(|p| p.0 == [0, 0, 255, 128]));
        // A .bmp's DIB copied into an icon, its ICC profile where the mask would be: opaque, the
        // same as the .bmp (Pillow reads the profile as the mask).
        let img = decode_rgba("ico/images/bmp_v5_with_icc.ico");
        let bmp = bmp::decode(&read("bmp/images/rgb24prof.bmp"), u64::MAX).unwrap();
        assert_eq!(img, bmp.to_rgba8());
    }

    #[test]
    fn all_corpus_icons_decode() {
        let sizes = [
            ("bmp-24bpp-mask.ico", 32, 32),
            ("bmp-32bpp-alpha.ico", 32, 32),
            ("bmp-32bpp-conflicting-and-mask.ico", 16, 16),
            ("bmp_v5_with_icc.ico", 127, 64),
            ("lenient-bpp.ico", 256, 256),
            ("multiple_entries_with_different_bit_depth.ico", 48, 48),
            ("png-32bpp-alpha.ico", 32, 32),
            ("png_l8.ico", 32, 32),
            ("png_rgb8.ico", 32, 32),
            ("smile.ico", 32, 32),
            ("truncated_mask_32bpp.ico", 64, 64),
            ("two-entry-order-test.ico", 48, 48),
        ];
        for (name, width, height) in sizes {
            let data = read(&format!("ico/images/{name}"));
            let header = dimensions(&data).unwrap();
            let img = decode(&data, crate::DEFAULT_MAX_PIXELS).unwrap();
            assert_eq!((header.width, header.height), (width, height), "{name}");
            assert_eq!(img.dimensions(), (width, height), "{name}");
            assert_eq!(img.color().has_alpha(), header.has_alpha, "{name}");
        }
    }

    #[test]
    fn refuses_garbage() {
        let mut no_entries = vec![0, 0, 1, 0, 0, 0];
        for data in [&b""[..], &[0, 0, 1], &[0, 0, 3, 0, 1, 0], &no_entries, &[0u8; 64]] {
            assert!(dimensions(data).is_err());
            assert!(decode(data, u64::MAX).is_err());
        }
        // An entry past the end of the file, and one of garbage.
        no_entries[4] = 1;
        no_entries.extend_from_slice(&[16, 16, 0, 0, 1, 0, 32, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
        assert!(matches!(
            decode(&no_entries, u64::MAX),
            Err(Error::MalformedImage(_))
        ));
        assert!(decode(&icon(16, &[0x55; 100]), u64::MAX).is_err());
        assert!(decode(&icon(16, &png_header(16, 16)), u64::MAX).is_err());
        // A directory that claims more entries than it has uses those it has.
        let mut data = read("ico/images/smile.ico");
        data[4] = 200;
        assert_eq!(decode(&data, u64::MAX).unwrap().dimensions(), (32, 32));
    }

    #[test]
    fn refuses_huge_before_allocating() {
        let too_large = Error::TooLarge {
            width: 100_000,
            height: 100_000,
            max_pixels: crate::DEFAULT_MAX_PIXELS,
        };
        let data = icon(0, &dib(100_000, 200_000, 32, &[0; 64]));
        assert_eq!(
            dimensions(&data).unwrap(),
            Header {
                width: 100_000,
                height: 100_000,
                has_alpha: true
            }
        );
        assert_eq!(decode(&data, crate::DEFAULT_MAX_PIXELS).unwrap_err(), too_large);
        let data = icon(0, &png_header(100_000, 100_000));
        assert_eq!(
            dimensions(&data).unwrap(),
            Header {
                width: 100_000,
                height: 100_000,
                has_alpha: true
            }
        );
        assert_eq!(decode(&data, crate::DEFAULT_MAX_PIXELS).unwrap_err(), too_large);
    }

    #[test]
    fn never_panics_on_damaged_files() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in [
            "smile.ico",
            "bmp-24bpp-mask.ico",
            "png_l8.ico",
            "multiple_entries_with_different_bit_depth.ico",
        ] {
            let original = read(&format!("ico/images/{name}"));
            for len in 0..original.len().min(400) {
                let _ = dimensions(&original[..len]);
                let _ = decode(&original[..len], 1 << 20);
            }
            for _ in 0..300 {
                let mut data = original.clone();
                for _ in 0..1 + random() % 8 {
                    let at = (random() % 250) as usize % data.len();
                    data[at] = random() as u8;
                }
                let _ = dimensions(&data);
                let _ = decode(&data, 1 << 20);
            }
        }
    }

    /// An icon whose entries are solid PNGs of (width, height, grey level), in this order.
    fn multi_icon(entries: &[(u32, u32, u8)]) -> Vec<u8> {
        let pngs: Vec<Vec<u8>> = entries
            .iter()
            .map(|&(w, h, level)| {
                // A directory side of 0 means 256.
                let (w, h) = (if w == 0 { 256 } else { w }, if h == 0 { 256 } else { h });
                let mut out = Vec::new();
                DynamicImage::ImageLuma8(image::GrayImage::from_pixel(w, h, image::Luma([level])))
                    .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                    .unwrap();
                out
            })
            .collect();
        let mut data = vec![0, 0, 1, 0, entries.len() as u8, 0];
        let mut offset = 6 + 16 * entries.len();
        for (&(w, h, _), png) in entries.iter().zip(&pngs) {
            data.extend_from_slice(&[w as u8, h as u8, 0, 0, 1, 0, 32, 0]);
            data.extend_from_slice(&(png.len() as u32).to_le_bytes());
            data.extend_from_slice(&(offset as u32).to_le_bytes());
            offset += png.len();
        }
        for png in &pngs {
            data.extend_from_slice(png);
        }
        data
    }

    #[test]
    fn shrink_on_load_decodes_the_smallest_entry_that_covers_the_box() {
        let data = multi_icon(&[
            (16, 16, 10),
            (0, 0, 20),
            (128, 128, 30),
            (32, 32, 40),
            (200, 100, 50),
        ]);
        let level = |img: DynamicImage| (img.width(), img.height(), img.to_luma8().get_pixel(0, 0).0[0]);
        assert_eq!(
            level(decode(&data, u64::MAX).unwrap()),
            (256, 256, 20),
            "plain decode: the largest"
        );
        assert_eq!(
            level(decode_for(&data, u64::MAX, (100, 100)).unwrap()),
            (128, 128, 30)
        );
        assert_eq!(
            level(decode_for(&data, u64::MAX, (32, 20)).unwrap()),
            (32, 32, 40)
        );
        // Nothing covers it: the largest. The 200x100 entry is never taken (another shape).
        assert_eq!(
            level(decode_for(&data, u64::MAX, (300, 300)).unwrap()),
            (256, 256, 20)
        );
        assert_eq!(
            level(decode_for(&data, u64::MAX, (150, 60)).unwrap()),
            (256, 256, 20)
        );
        // The pixel limit applies to the entry decoded.
        assert!(decode_for(&data, 128 * 128, (100, 100)).is_ok());
        assert!(matches!(decode(&data, 128 * 128), Err(Error::TooLarge { .. })));
    }
}
