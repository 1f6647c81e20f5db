//! JPEG at 1/8 scale from the DC coefficients alone: the fast path of shrink-on-load.
//!
//! At 1/8 scale, libjpeg's scaled IDCT turns each 8x8 block into one pixel whose value is the
//! block's dequantised DC coefficient (`(dc * q + 4) >> 3`, plus 128). This decoder computes
//! exactly that, but never materialises the AC coefficients: in a sequential (baseline) file
//! it Huffman-decodes each AC symbol only to skip it, and in a progressive file it does not
//! decode the AC scans at all — it jumps over them to the next marker. The entropy decoding
//! of the AC data, which is most of the work of a full decode, thus shrinks to a table lookup
//! per coefficient (sequential) or nothing (progressive).
//!
//! It is a fast path, not the decoder of record: anything it does not handle exactly (CMYK,
//! 12-bit, arithmetic coding, a truncated or corrupt stream, odd sampling factors) makes
//! [`decode`] return `None`, and the pipeline falls back to the full decoders, which decide
//! how to treat a damaged file. Input is hostile: every read is checked and every loop is
//! bounded by the sizes in the header.

/// A decoded image at 1/8 scale: `channels` is 1 (grey) or 3 (RGB), rows are packed.
mod entropy;
mod pixels;

use entropy::{BitReader, Huffman, next_marker};
use pixels::{upsample, ycbcr_to_rgb};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EighthImage {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// Decodes `data` at 1/8 scale (`ceil(w/8) x ceil(h/8)`, as libjpeg and jpeg-decoder size it),
/// or `None` when this fast path does not apply. The caller checks the pixel limit first; the
/// memory used here is about 2 bytes per 64 source pixels.
pub fn decode(data: &[u8]) -> Option<EighthImage> {
    Decoder::default().run(data)
}

#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// The DC quantiser, latched at the component's first scan (as libjpeg does).
    dc_quant: Option<i32>,
    /// Blocks across and down, padded to whole MCUs (what an interleaved scan covers).
    padded_w: usize,
    padded_h: usize,
    /// Blocks that hold image data (what a single-component scan covers).
    blocks_w: usize,
    blocks_h: usize,
}

#[derive(Default)]
struct Frame {
    width: usize,
    height: usize,
    progressive: bool,
    components: Vec<Component>,
    h_max: usize,
    v_max: usize,
    mcus_x: usize,
    mcus_y: usize,
}

#[derive(Default)]
struct Decoder {
    frame: Option<Frame>,
    dc_tables: [Option<Box<Huffman>>; 4],
    ac_tables: [Option<Box<Huffman>>; 4],
    /// DC quantisers by table (the first coefficient of each DQT table).
    quant_dc: [Option<i32>; 4],
    restart_interval: usize,
    /// Scans decoded so far (AC scans skipped do not count).
    scans: usize,
    adobe_transform: Option<u8>,
    /// Per component: the DC coefficient of each block (`padded_w * padded_h`), before
    /// dequantisation.
    coefs: Vec<Vec<i32>>,
}

fn be16(data: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]) as usize)
}

impl Decoder {
    fn run(mut self, data: &[u8]) -> Option<EighthImage> {
        if data.get(..2)? != [0xFF, 0xD8] {
            return None;
        }
        let mut pos = 2;
        // Each marker segment advances `pos`; the count bounds hostile streams of tiny scans.
        for _ in 0..100_000 {
            // Markers may be preceded by fill bytes.
            while *data.get(pos)? == 0xFF && *data.get(pos + 1)? == 0xFF {
                pos += 1;
            }
            if *data.get(pos)? != 0xFF {
                return None;
            }
            let marker = *data.get(pos + 1)?;
            pos += 2;
            match marker {
                0xD9 => return self.finish(),
                0xD0..=0xD7 | 0x01 => continue,
                _ => {}
            }
            let len = be16(data, pos)?;
            let segment = data.get(pos + 2..pos.checked_add(len)?)?;
            pos += len;
            match marker {
                0xC0..=0xC2 => self.read_frame(segment, marker == 0xC2)?,
                // Lossless, hierarchical and arithmetic-coded frames: not for this path.
                0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
                0xC4 => self.read_huffman(segment)?,
                0xDB => self.read_quant(segment)?,
                0xDD => self.restart_interval = be16(segment, 0)?,
                0xEE if segment.starts_with(b"Adobe") => self.adobe_transform = segment.get(11).copied(),
                0xDA => pos = self.read_scan(data, segment, pos)?,
                // A height given later (DNL) is not supported by the frame set-up above.
                0xDC => return None,
                _ => {}
            }
        }
        None
    }

    fn read_frame(&mut self, seg: &[u8], progressive: bool) -> Option<()> {
        if self.frame.is_some() || *seg.first()? != 8 {
            return None;
        }
        let height = be16(seg, 1)?;
        let width = be16(seg, 3)?;
        let n = *seg.get(5)? as usize;
        if width == 0 || height == 0 || !(n == 1 || n == 3) {
            return None;
        }
        let mut components = Vec::with_capacity(n);
        for i in 0..n {
            let c = seg.get(6 + 3 * i..9 + 3 * i)?;
            let (h, v, tq) = ((c[1] >> 4) as usize, (c[1] & 15) as usize, c[2] as usize);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
                return None;
            }
            if components.iter().any(|o: &Component| o.id == c[0]) {
                return None;
            }
            components.push(Component {
                id: c[0],
                h,
                v,
                tq,
                ..Component::default()
            });
        }
        // A lone component is always one block per MCU, whatever its factors say.
        if n == 1 {
            components[0].h = 1;
            components[0].v = 1;
        }
        let h_max = components.iter().map(|c| c.h).max()?;
        let v_max = components.iter().map(|c| c.v).max()?;
        // Upsampling below needs whole ratios, as libjpeg's does.
        if components.iter().any(|c| h_max % c.h != 0 || v_max % c.v != 0) {
            return None;
        }
        let mcus_x = width.div_ceil(8 * h_max);
        let mcus_y = height.div_ceil(8 * v_max);
        for c in &mut components {
            c.padded_w = mcus_x * c.h;
            c.padded_h = mcus_y * c.v;
            c.blocks_w = (width * c.h).div_ceil(h_max).div_ceil(8);
            c.blocks_h = (height * c.v).div_ceil(v_max).div_ceil(8);
        }
        self.coefs = components
            .iter()
            .map(|c| vec![0; c.padded_w * c.padded_h])
            .collect();
        self.frame = Some(Frame {
            width,
            height,
            progressive,
            components,
            h_max,
            v_max,
            mcus_x,
            mcus_y,
        });
        Some(())
    }

    fn read_huffman(&mut self, mut seg: &[u8]) -> Option<()> {
        while !seg.is_empty() {
            let class = seg[0] >> 4;
            let id = (seg[0] & 15) as usize;
            let counts: [u8; 16] = seg.get(1..17)?.try_into().ok()?;
            let total: usize = counts.iter().map(|&c| c as usize).sum();
            let values = seg.get(17..17 + total)?;
            let table = Box::new(Huffman::new(&counts, values)?);
            match (class, id) {
                (0, 0..=3) => self.dc_tables[id] = Some(table),
                (1, 0..=3) => self.ac_tables[id] = Some(table),
                _ => return None,
            }
            seg = &seg[17 + total..];
        }
        Some(())
    }

    fn read_quant(&mut self, mut seg: &[u8]) -> Option<()> {
        while !seg.is_empty() {
            let precision = seg[0] >> 4;
            let id = (seg[0] & 15) as usize;
            if id > 3 {
                return None;
            }
            let (dc, len) = match precision {
                0 => (*seg.get(1)? as i32, 65),
                1 => (be16(seg, 1)? as i32, 129),
                _ => return None,
            };
            seg.get(..len)?;
            self.quant_dc[id] = Some(dc);
            seg = &seg[len..];
        }
        Some(())
    }

    /// Decodes (or skips) one scan whose header is `seg` and whose entropy-coded data starts
    /// at `pos`; returns the position of the marker after it.
    fn read_scan(&mut self, data: &[u8], seg: &[u8], pos: usize) -> Option<usize> {
        let frame = self.frame.as_mut()?;
        let n = *seg.first()? as usize;
        if n == 0 || n > frame.components.len() {
            return None;
        }
        let mut scan = Vec::with_capacity(n);
        for i in 0..n {
            let s = seg.get(1 + 2 * i..3 + 2 * i)?;
            let index = frame.components.iter().position(|c| c.id == s[0])?;
            if scan.iter().any(|(i, _, _)| *i == index) {
                return None;
            }
            scan.push((index, (s[1] >> 4) as usize, (s[1] & 15) as usize));
        }
        let tail = seg.get(1 + 2 * n..4 + 2 * n)?;
        let (ss, se, ah, al) = (tail[0], tail[1], tail[2] >> 4, tail[2] & 15);

        let kind = if !frame.progressive {
            if ss != 0 || se != 63 || ah != 0 || al != 0 {
                return None;
            }
            ScanKind::Sequential
        } else if ss != 0 {
            // An AC scan: nothing in it changes a DC coefficient.
            return next_marker(data, pos, false);
        } else if se != 0 || al > 13 {
            return None;
        } else if ah == 0 {
            ScanKind::DcFirst { al }
        } else {
            ScanKind::DcRefine { al }
        };
        // Each decoded scan walks every block: bound them, as a hostile file could repeat a
        // refinement scan endlessly. Real files have at most a few per component.
        self.scans += 1;
        if self.scans > MAX_DECODED_SCANS {
            return None;
        }
        for &(index, _, _) in &scan {
            let c = &mut frame.components[index];
            let q = self.quant_dc[c.tq]?;
            c.dc_quant.get_or_insert(q);
        }
        let mut tables = Vec::with_capacity(n);
        for &(index, td, ta) in &scan {
            let dc = match kind {
                ScanKind::DcRefine { .. } => None,
                _ => Some(&**self.dc_tables.get(td)?.as_ref()?),
            };
            let ac = match kind {
                ScanKind::Sequential => Some(&**self.ac_tables.get(ta)?.as_ref()?),
                _ => None,
            };
            tables.push((index, dc, ac));
        }

        let mut reader = BitReader::new(data, pos);
        let mut pred = [0i32; 4];
        let mut until_restart = self.restart_interval;
        let restart = |reader: &mut BitReader, pred: &mut [i32; 4]| -> Option<()> {
            reader.restart()?;
            *pred = [0; 4];
            Some(())
        };
        if n == 1 {
            // A single-component scan covers the component's own blocks, not whole MCUs.
            let (index, dc, ac) = tables[0];
            let c = frame.components[index];
            let coefs = &mut self.coefs[index];
            for by in 0..c.blocks_h {
                for bx in 0..c.blocks_w {
                    if self.restart_interval > 0 {
                        if until_restart == 0 {
                            restart(&mut reader, &mut pred)?;
                            until_restart = self.restart_interval;
                        }
                        until_restart -= 1;
                    }
                    let coef = &mut coefs[by * c.padded_w + bx];
                    decode_block(&mut reader, kind, dc, ac, &mut pred[0], coef)?;
                }
            }
        } else {
            for my in 0..frame.mcus_y {
                for mx in 0..frame.mcus_x {
                    if self.restart_interval > 0 {
                        if until_restart == 0 {
                            restart(&mut reader, &mut pred)?;
                            until_restart = self.restart_interval;
                        }
                        until_restart -= 1;
                    }
                    for (k, &(index, dc, ac)) in tables.iter().enumerate() {
                        let c = frame.components[index];
                        let coefs = &mut self.coefs[index];
                        for v in 0..c.v {
                            let row = (my * c.v + v) * c.padded_w + mx * c.h;
                            for h in 0..c.h {
                                decode_block(&mut reader, kind, dc, ac, &mut pred[k], &mut coefs[row + h])?;
                            }
                        }
                    }
                }
            }
        }
        if reader.overran() {
            // The data ended (or hit a marker) before the scan did: a damaged file.
            return None;
        }
        next_marker(data, reader.pos, false)
    }

    /// Turns the DC coefficients into pixels: dequantise, upsample chroma, convert colours.
    fn finish(self) -> Option<EighthImage> {
        let frame = self.frame?;
        let out_w = frame.width.div_ceil(8);
        let out_h = frame.height.div_ceil(8);
        let mut planes = Vec::with_capacity(frame.components.len());
        for (c, coefs) in frame.components.iter().zip(&self.coefs) {
            // A component no scan ever covered: the file is incomplete.
            let q = c.dc_quant?;
            let mut plane = vec![0u8; c.blocks_w * c.blocks_h];
            for (row, out) in coefs
                .chunks_exact(c.padded_w)
                .zip(plane.chunks_exact_mut(c.blocks_w))
            {
                for (&coef, px) in row.iter().zip(out.iter_mut()) {
                    *px = (((coef as i64 * q as i64 + 4) >> 3) + 128).clamp(0, 255) as u8;
                }
            }
            let (fx, fy) = (frame.h_max / c.h, frame.v_max / c.v);
            planes.push(if fx == 1 && fy == 1 {
                plane
            } else {
                upsample(&plane, c.blocks_w, c.blocks_h, fx, fy, out_w, out_h)
            });
        }
        let pixels = if planes.len() == 1 {
            planes.pop()?
        } else {
            let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
            let rgb = match self.adobe_transform {
                Some(t) => t == 0,
                None => ids == b"RGB",
            };
            let mut out = vec![0u8; out_w * out_h * 3];
            let pixels = out
                .chunks_exact_mut(3)
                .zip(planes[0].iter().zip(&planes[1]).zip(&planes[2]));
            if rgb {
                pixels.for_each(|(o, ((&r, &g), &b))| o.copy_from_slice(&[r, g, b]));
            } else {
                pixels.for_each(|(o, ((&y, &cb), &cr))| o.copy_from_slice(&ycbcr_to_rgb(y, cb, cr)));
            }
            out
        };
        Some(EighthImage {
            width: out_w as u32,
            height: out_h as u32,
            channels: if frame.components.len() == 1 { 1 } else { 3 },
            pixels,
        })
    }
}

#[derive(Clone, Copy)]
enum ScanKind {
    Sequential,
    DcFirst { al: u8 },
    DcRefine { al: u8 },
}

/// Decodes one block's share of a scan into its DC coefficient, skipping any AC data.
#[inline(always)]
fn decode_block(
    reader: &mut BitReader,
    kind: ScanKind,
    dc: Option<&Huffman>,
    ac: Option<&Huffman>,
    pred: &mut i32,
    coef: &mut i32,
) -> Option<()> {
    match kind {
        ScanKind::Sequential => {
            reader.fill();
            let s = dc?.decode(reader)?;
            *pred = pred.wrapping_add(reader.receive_extend(s)?);
            *coef = *pred;
            ac?.skip_ac(reader)
        }
        ScanKind::DcFirst { al } => {
            reader.fill();
            let s = dc?.decode(reader)?;
            *pred = pred.wrapping_add(reader.receive_extend(s)?);
            *coef = pred.wrapping_shl(al as u32);
            Some(())
        }
        ScanKind::DcRefine { al } => {
            reader.fill();
            if reader.bits(1) != 0 {
                *coef |= 1 << al;
            }
            Some(())
        }
    }
}

/// More DC scans than any encoder writes (libjpeg: one per component and refinement bit).
const MAX_DECODED_SCANS: usize = 64;

#[cfg(test)]
mod tests;
