//! Header-only facts: which format a byte string is (sniffed from its magic bytes, never from
//! a name or a declared type) and how many frames or pages it holds, found by walking the
//! container's chunk or block structure without decoding any pixels.
//!
//! Every walker here is bounded by the input length and a step cap, so a hostile file with a
//! cyclic or endless chain costs at most a few thousand cheap steps.

use crate::{Error, ImageFormat};

/// The most container steps a frame count will take; beyond this the count so far stands.
const MAX_STEPS: u32 = 100_000;

/// Names the format of `data` from its leading bytes.
pub fn sniff(data: &[u8]) -> Result<ImageFormat, Error> {
    if data.is_empty() {
        return Err(Error::UnsupportedFormat("the data is empty".into()));
    }
    let fmt = image::guess_format(data).map_err(|_| {
        Error::UnsupportedFormat("the data is not an image in any format this service knows".into())
    })?;
    Ok(match fmt {
        image::ImageFormat::Jpeg => ImageFormat::Jpeg,
        image::ImageFormat::Png => ImageFormat::Png,
        image::ImageFormat::Gif => ImageFormat::Gif,
        image::ImageFormat::Bmp => ImageFormat::Bmp,
        image::ImageFormat::WebP => ImageFormat::Webp,
        image::ImageFormat::Tiff => ImageFormat::Tiff,
        image::ImageFormat::Ico => ImageFormat::Ico,
        other => {
            return Err(Error::UnsupportedFormat(format!(
                "{} images are not supported (supported: JPEG, PNG, GIF, BMP, WebP, TIFF, ICO)",
                other
                    .extensions_str()
                    .first()
                    .unwrap_or(&"this kind of")
                    .to_uppercase()
            )));
        }
    })
}

/// Frames of an animation, pages of a TIFF or entries of an ICO; 1 for anything else or
/// when the structure cannot be walked (the decoder reports real corruption).
/// Whether a JPEG stream ends inside its last scan: reading back from the end, a start-of-scan
/// marker comes before any end-of-image marker. Entropy-coded data stuffs every 0xFF byte, so
/// neither marker appears there by chance. Without either marker the stream is damaged in
/// other ways, which the decoders report.
pub fn jpeg_truncated(data: &[u8]) -> bool {
    let last = data
        .windows(2)
        .rposition(|w| w[0] == 0xFF && matches!(w[1], 0xD9 | 0xDA));
    last.is_some_and(|at| data[at + 1] == 0xDA)
}

pub fn frame_count(format: ImageFormat, data: &[u8]) -> u32 {
    let n = match format {
        ImageFormat::Png => png_frames(data),
        ImageFormat::Gif => gif_frames(data),
        ImageFormat::Webp => webp_frames(data),
        ImageFormat::Tiff => tiff_pages(data),
        ImageFormat::Ico => data.get(4..6).map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
        ImageFormat::Jpeg | ImageFormat::Bmp => None,
    };
    n.unwrap_or(1).max(1)
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// APNG: `num_frames` of the acTL chunk, which must come before the first IDAT.
fn png_frames(d: &[u8]) -> Option<u32> {
    let mut at = 8usize;
    for _ in 0..MAX_STEPS {
        let len = be32(d, at)? as usize;
        let kind = d.get(at + 4..at + 8)?;
        match kind {
            b"acTL" => return be32(d, at + 8),
            b"IDAT" | b"IEND" => return Some(1),
            _ => {}
        }
        at = at.checked_add(12)?.checked_add(len)?;
    }
    None
}

/// GIF: one image descriptor per frame; extension and image data sub-blocks are skipped.
fn gif_frames(d: &[u8]) -> Option<u32> {
    let flags = *d.get(10)?;
    let mut at = 13usize;
    if flags & 0x80 != 0 {
        at += 3 * (1usize << ((flags & 0x07) + 1));
    }
    let skip_sub_blocks = |mut at: usize| -> Option<usize> {
        for _ in 0..MAX_STEPS * 10 {
            let n = *d.get(at)? as usize;
            at += 1;
            if n == 0 {
                return Some(at);
            }
            at += n;
        }
        None
    };
    let mut frames = 0u32;
    for _ in 0..MAX_STEPS {
        match d.get(at) {
            Some(0x2C) => {
                frames += 1;
                let lflags = *d.get(at + 9)?;
                at += 10;
                if lflags & 0x80 != 0 {
                    at += 3 * (1usize << ((lflags & 0x07) + 1));
                }
                at = skip_sub_blocks(at + 1)?;
            }
            Some(0x21) => at = skip_sub_blocks(at + 2)?,
            _ => break,
        }
    }
    Some(frames)
}

/// WebP: one ANMF chunk per frame of an animation.
fn webp_frames(d: &[u8]) -> Option<u32> {
    let mut at = 12usize;
    let mut frames = 0u32;
    for _ in 0..MAX_STEPS {
        let kind = match d.get(at..at + 4) {
            Some(k) => k,
            None => break,
        };
        let len = le32(d, at + 4)? as usize;
        if kind == b"ANMF" {
            frames += 1;
        }
        at = at.checked_add(8)?.checked_add(len)?.checked_add(len & 1)?;
    }
    Some(frames.max(1))
}

/// TIFF: the length of the IFD chain (classic TIFF; BigTIFF counts as one page).
fn tiff_pages(d: &[u8]) -> Option<u32> {
    let little = match d.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = d.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| if little { le32(d, at) } else { be32(d, at) };
    if u16_at(2)? != 42 {
        return Some(1);
    }
    let mut offset = u32_at(4)? as usize;
    let mut pages = 0u32;
    let mut seen = Vec::new();
    while offset != 0 && pages < 10_000 {
        if seen.contains(&offset) {
            break;
        }
        seen.push(offset);
        let entries = u16_at(offset)? as usize;
        pages += 1;
        offset = u32_at(offset + 2 + entries * 12)? as usize;
    }
    Some(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_not_by_name() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest").unwrap(), ImageFormat::Png);
        assert_eq!(sniff(b"\xff\xd8\xff\xe0rest").unwrap(), ImageFormat::Jpeg);
        assert!(matches!(sniff(b""), Err(Error::UnsupportedFormat(_))));
        assert!(matches!(
            sniff(b"hello world, not an image"),
            Err(Error::UnsupportedFormat(_))
        ));
        // A format the image crate knows but we do not decode names itself in the error.
        match sniff(b"qoifxxxxxxxxxxxxxx") {
            Err(Error::UnsupportedFormat(m)) => assert!(m.contains("QOI"), "{m}"),
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn frame_walkers_survive_garbage() {
        for fmt in [
            ImageFormat::Png,
            ImageFormat::Gif,
            ImageFormat::Webp,
            ImageFormat::Tiff,
            ImageFormat::Ico,
        ] {
            for data in [
                &b""[..],
                b"\xff",
                b"II*\x00\x08\x00\x00\x00\xff\xff",
                b"RIFF\xff\xff\xff\xffWEBPANMF\xff\xff\xff\xff",
            ] {
                assert!(frame_count(fmt, data) >= 1);
            }
        }
        // A TIFF whose IFD points at itself is one page, not a loop.
        let cyclic = b"II*\x00\x08\x00\x00\x00\x00\x00\x08\x00\x00\x00";
        assert_eq!(frame_count(ImageFormat::Tiff, cyclic), 1);
    }
}
