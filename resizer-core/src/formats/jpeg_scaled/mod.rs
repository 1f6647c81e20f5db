//! JPEG at 1/8 or 1/4 scale, straight from the coefficients: the fast path of shrink-on-load.
//!
//! libjpeg decodes at a reduced scale with reduced-size inverse DCTs: at 1/8 each 8x8 block
//! becomes one pixel, its dequantised DC coefficient (`(dc * q + 4) >> 3`, plus 128); at 1/4,
//! 2x2 pixels. Subsampled chroma gets a larger IDCT instead of an upsampling (4x4 for 4:2:0
//! chroma at 1/4), so it keeps the full detail of the scale. At 1/4 this decoder does the
//! same with the same arithmetic ([`idct`]): grey, 4:4:4 and 4:2:0 files decode to libjpeg's
//! pixels exactly, sequential or progressive.
//!
//! At 1/8 it is fast because it decodes only the DC coefficients. The AC coefficients are
//! never materialised: in a sequential (baseline) file each AC symbol is Huffman-decoded only
//! to be skipped, and in a progressive file the AC scans are not decoded at all, just jumped
//! over. The entropy decoding of the AC data, which is most of the work of a full decode,
//! thus shrinks to a table lookup per coefficient (sequential) or nothing (progressive).
//! Subsampled chroma is then upsampled from its DC plane, where libjpeg would run a 2x2 IDCT
//! on it; without subsampling the result is libjpeg's exactly.
//!
//! It is a fast path, not the decoder of record: anything it does not handle exactly (CMYK,
//! 12-bit, arithmetic coding, a truncated or corrupt stream, odd sampling factors) makes
//! [`decode`] return `None`, and the pipeline falls back to the full decoders, which decide
//! how to treat a damaged file. Input is hostile: every read is checked and every loop is
//! bounded by the sizes in the header.

mod entropy;
mod idct;
mod pixels;

use entropy::{BitReader, Huffman, next_marker};
use idct::{NATURAL, idct_1x1, idct_2x2, idct_4x4};
use pixels::{upsample, ycbcr_to_rgb};

/// The scales this decoder offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Eighth,
    Quarter,
}

impl Scale {
    /// Output pixels per block side for a full-resolution component.
    fn block(self) -> usize {
        match self {
            Scale::Eighth => 1,
            Scale::Quarter => 2,
        }
    }
}

/// A decoded image at reduced scale: `channels` is 1 (grey) or 3 (RGB), rows are packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaledImage {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// Decodes `data` at `scale` (`ceil(w * k / 8)` by `ceil(h * k / 8)` for a scale of `k / 8`,
/// as libjpeg sizes it), or `None` when this fast path does not apply. The caller checks the
/// pixel limit first. Memory: 2 bytes per block for components decoded from their DC alone,
/// 128 bytes per block for the others.
pub fn decode(data: &[u8], scale: Scale) -> Option<ScaledImage> {
    Decoder {
        scale: scale.block(),
        ..Decoder::default()
    }
    .run(data)
}

#[derive(Clone, Copy, Default)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// The quantisation table (natural order), latched at the component's first scan (as
    /// libjpeg does).
    quant: Option<[u16; 64]>,
    /// Output pixels per block side: 1, 2 or 4.
    size: usize,
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
    /// Output pixels per block side for components at full resolution.
    scale: usize,
    /// Quantisation tables (natural order).
    quant: [Option<[u16; 64]>; 4],
    restart_interval: usize,
    /// Scans decoded so far (AC scans skipped do not count).
    scans: usize,
    adobe_transform: Option<u8>,
    /// Per component: the DC coefficient of each block (`padded_w * padded_h`), before
    /// dequantisation.
    coefs: Vec<Vec<i32>>,
    /// Per component whose blocks become more than one pixel: every block's coefficients
    /// (natural order, DC left at zero: it is in `coefs`). Empty for the others.
    blocks: Vec<Vec<[i16; 64]>>,
    /// Per component whose blocks become more than one pixel, in a sequential file: its
    /// pixels, made block by block as the scan goes. Empty for the others.
    planes: Vec<Vec<u8>>,
}

fn be16(data: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]) as usize)
}

impl Decoder {
    fn run(mut self, data: &[u8]) -> Option<ScaledImage> {
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
            c.size = match self.scale {
                // At 1/8 no AC coefficient is decoded, chroma's included: that is most of
                // the speed of this path. Subsampled chroma is upsampled from its DC plane
                // instead. libjpeg's 2x2 chroma IDCT measured 5-8 dB closer in colour on the
                // corpus photos, and 1-4 dB in RGB after the resize, but made the decode
                // 40% (sequential) to 3.6x (progressive) slower in the sandbox.
                1 => 1,
                _ => idct_size(self.scale, (h_max, v_max), (c.h, c.v))?,
            };
        }
        self.coefs = components
            .iter()
            .map(|c| vec![0; c.padded_w * c.padded_h])
            .collect();
        // A sequential scan holds each block whole, so its pixels can be made at once; a
        // progressive file's blocks are complete only after the last scan.
        self.blocks = components
            .iter()
            .map(|c| match c.size {
                1 => Vec::new(),
                _ if !progressive => Vec::new(),
                _ => vec![[0; 64]; c.padded_w * c.padded_h],
            })
            .collect();
        self.planes = components
            .iter()
            .map(|c| match c.size {
                1 => Vec::new(),
                _ if progressive => Vec::new(),
                size => vec![0; c.blocks_w * size * c.blocks_h * size],
            })
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
            let len = match precision {
                0 => 65,
                1 => 129,
                _ => return None,
            };
            let values = seg.get(1..len)?;
            let mut table = [0u16; 64];
            for (k, &natural) in NATURAL[..64].iter().enumerate() {
                table[natural] = match precision {
                    0 => values[k] as u16,
                    _ => be16(values, 2 * k)? as u16,
                };
            }
            self.quant[id] = Some(table);
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
            // An AC scan covers one component. One whose blocks become single pixels needs
            // nothing from it: jump to the next marker.
            if n != 1 || ss > se || se > 63 || al > 13 {
                return None;
            }
            if frame.components[scan[0].0].size == 1 {
                return next_marker(data, pos, false);
            }
            let band = (ss as usize, se as usize, al);
            if ah == 0 {
                ScanKind::AcFirst(band)
            } else {
                ScanKind::AcRefine(band)
            }
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
            let q = self.quant[c.tq]?;
            c.quant.get_or_insert(q);
        }
        let (components, mcus_x, mcus_y) = (frame.components.clone(), frame.mcus_x, frame.mcus_y);
        if let ScanKind::Sequential = kind {
            for &(index, _, ta) in &scan {
                let table = self.ac_tables.get_mut(ta)?.as_mut()?;
                match frame.components[index].size {
                    1 => table.prepare_skip(),
                    _ => table.prepare_coefficients(),
                }
            }
        }
        let mut tables = Vec::with_capacity(n);
        for &(index, td, ta) in &scan {
            let dc = match kind {
                ScanKind::Sequential | ScanKind::DcFirst { .. } => Some(&**self.dc_tables.get(td)?.as_ref()?),
                _ => None,
            };
            let ac = match kind {
                ScanKind::DcFirst { .. } | ScanKind::DcRefine { .. } => None,
                _ => Some(&**self.ac_tables.get(ta)?.as_ref()?),
            };
            tables.push((index, dc, ac));
        }

        let mut reader = BitReader::new(data, pos);
        let mut state = ScanState::default();
        let order = ScanOrder {
            scan: tables.iter().map(|t| t.0).collect(),
            components: &components,
            mcus: (mcus_x, mcus_y),
            restart_interval: self.restart_interval,
        };
        if components.iter().all(|c| c.size == 1) {
            // Only DC coefficients are kept (every scan at 1/8): the tightest loop.
            let mut sink = DcOnly {
                kind,
                tables: &tables,
                coefs: self.coefs.iter_mut().map(Vec::as_mut_slice).collect(),
            };
            order.walk(&mut reader, &mut state, &mut sink)?;
        } else {
            let sinks: Vec<Target> = components
                .iter()
                .zip(&mut self.coefs)
                .zip(&mut self.blocks)
                .zip(&mut self.planes)
                .map(|(((c, coefs), blocks), plane)| Target {
                    c,
                    coefs,
                    blocks,
                    plane,
                })
                .collect();
            let mut sink = WithAc {
                kind,
                tables: &tables,
                targets: sinks,
            };
            order.walk(&mut reader, &mut state, &mut sink)?;
        }
        if reader.overran() {
            // The data ended (or hit a marker) before the scan did: a damaged file.
            return None;
        }
        next_marker(data, reader.pos, false)
    }

    /// Turns the coefficients into pixels: reduced IDCTs, upsampling where a component still
    /// has fewer pixels than the output, colour conversion.
    fn finish(self) -> Option<ScaledImage> {
        let frame = self.frame?;
        let out_w = (frame.width * self.scale).div_ceil(8);
        let out_h = (frame.height * self.scale).div_ceil(8);
        let mut planes = Vec::with_capacity(frame.components.len());
        let parts = frame.components.iter().zip(&self.coefs).zip(&self.blocks);
        for (((c, coefs), blocks), made) in parts.zip(self.planes) {
            // A component no scan ever covered: the file is incomplete.
            let q = c.quant?;
            let (w, h) = (c.blocks_w * c.size, c.blocks_h * c.size);
            let plane = if !made.is_empty() {
                made
            } else if c.size == 1 {
                let mut plane = vec![0u8; w * h];
                for (row, out) in coefs.chunks_exact(c.padded_w).zip(plane.chunks_exact_mut(w)) {
                    for (&coef, px) in row.iter().zip(out.iter_mut()) {
                        *px = idct_1x1(coef, q[0] as i32);
                    }
                }
                plane
            } else {
                let mut plane = vec![0u8; w * h];
                for by in 0..c.blocks_h {
                    for bx in 0..c.blocks_w {
                        let at = by * c.padded_w + bx;
                        let mut block = blocks[at];
                        block[0] = coefs[at] as i16;
                        put_block(&mut plane, c, (bx, by), &block, true)?;
                    }
                }
                plane
            };
            let fx = frame.h_max * self.scale / (c.h * c.size);
            let fy = frame.v_max * self.scale / (c.v * c.size);
            planes.push(if (fx, fy, w, h) == (1, 1, out_w, out_h) {
                plane
            } else {
                upsample(&plane, w, h, fx, fy, out_w, out_h)
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
        Some(ScaledImage {
            width: out_w as u32,
            height: out_h as u32,
            channels: if frame.components.len() == 1 { 1 } else { 3 },
            pixels,
        })
    }
}

/// Output pixels per block side for a component sampled `(h, v)` of `max`, when full
/// resolution components get `scale`: libjpeg's rule, which doubles the IDCT size while the
/// component is subsampled by at least twice that on both axes, so subsampled chroma comes
/// from its own coefficients rather than an upsampling. `None` beyond 4x4, which this
/// decoder does not do.
fn idct_size(scale: usize, max: (usize, usize), (h, v): (usize, usize)) -> Option<usize> {
    let mut size = scale;
    while size < 8
        && (max.0 * scale).is_multiple_of(h * size * 2)
        && (max.1 * scale).is_multiple_of(v * size * 2)
    {
        size *= 2;
    }
    (size <= 4).then_some(size)
}

/// The blocks a scan covers, in its order.
struct ScanOrder<'a> {
    /// The scan's components, by index into `components`.
    scan: Vec<usize>,
    components: &'a [Component],
    mcus: (usize, usize),
    restart_interval: usize,
}

impl ScanOrder<'_> {
    /// Hands every block the scan covers to `sink`, handling the restart markers between.
    #[inline(always)]
    fn walk<S: BlockSink>(&self, reader: &mut BitReader, state: &mut ScanState, sink: &mut S) -> Option<()> {
        let mut until_restart = self.restart_interval;
        let mut restart = |reader: &mut BitReader, state: &mut ScanState| -> Option<()> {
            if self.restart_interval > 0 {
                if until_restart == 0 {
                    reader.restart()?;
                    *state = ScanState::default();
                    until_restart = self.restart_interval;
                }
                until_restart -= 1;
            }
            Some(())
        };
        if let [index] = self.scan[..] {
            // A single-component scan covers the component's own blocks, not whole MCUs.
            let c = &self.components[index];
            for by in 0..c.blocks_h {
                for bx in 0..c.blocks_w {
                    restart(reader, state)?;
                    sink.block(reader, state, 0, index, by * c.padded_w + bx)?;
                }
            }
            return Some(());
        }
        for my in 0..self.mcus.1 {
            for mx in 0..self.mcus.0 {
                restart(reader, state)?;
                for (k, &index) in self.scan.iter().enumerate() {
                    let c = &self.components[index];
                    for v in 0..c.v {
                        let row = (my * c.v + v) * c.padded_w + mx * c.h;
                        for at in row..row + c.h {
                            sink.block(reader, state, k, index, at)?;
                        }
                    }
                }
            }
        }
        Some(())
    }
}

/// What a scan's blocks are decoded into. A trait rather than a closure, so that each kind
/// of sink gets its own copy of the walk with the block decoding inlined into it.
trait BlockSink {
    /// Decodes block `at` of component `index`, the `place`-th component of the scan.
    fn block(
        &mut self,
        reader: &mut BitReader,
        state: &mut ScanState,
        place: usize,
        index: usize,
        at: usize,
    ) -> Option<()>;
}

/// Every component keeps only its DC coefficients.
struct DcOnly<'a, 't> {
    kind: ScanKind,
    tables: &'a [ScanTables<'t>],
    coefs: Vec<&'a mut [i32]>,
}

/// The Huffman tables of one component of a scan: its index, DC and AC tables.
type ScanTables<'t> = (usize, Option<&'t Huffman>, Option<&'t Huffman>);

impl BlockSink for DcOnly<'_, '_> {
    #[inline(always)]
    fn block(
        &mut self,
        reader: &mut BitReader,
        state: &mut ScanState,
        place: usize,
        index: usize,
        at: usize,
    ) -> Option<()> {
        let (_, dc, ac) = self.tables[place];
        decode_block(
            reader,
            self.kind,
            (dc, ac),
            state,
            place,
            &mut self.coefs[index][at],
            None,
        )
        .map(|_| ())
    }
}

/// Some component keeps its AC coefficients too.
struct WithAc<'a, 't> {
    kind: ScanKind,
    tables: &'a [ScanTables<'t>],
    targets: Vec<Target<'a>>,
}

impl BlockSink for WithAc<'_, '_> {
    #[inline(always)]
    fn block(
        &mut self,
        reader: &mut BitReader,
        state: &mut ScanState,
        place: usize,
        index: usize,
        at: usize,
    ) -> Option<()> {
        let (_, dc, ac) = self.tables[place];
        decode_into(
            reader,
            self.kind,
            (dc, ac),
            state,
            place,
            &mut self.targets[index],
            at,
        )
    }
}

/// Where one component's share of a scan goes.
struct Target<'a> {
    c: &'a Component,
    coefs: &'a mut Vec<i32>,
    blocks: &'a mut Vec<[i16; 64]>,
    plane: &'a mut Vec<u8>,
}

/// Decodes block `at` of a component; in a sequential file whose component keeps its AC
/// coefficients, makes its pixels at once.
#[inline(always)]
fn decode_into(
    reader: &mut BitReader,
    kind: ScanKind,
    tables: (Option<&Huffman>, Option<&Huffman>),
    state: &mut ScanState,
    place: usize,
    target: &mut Target,
    at: usize,
) -> Option<()> {
    if target.plane.is_empty() {
        let block = target.blocks.get_mut(at);
        return decode_block(reader, kind, tables, state, place, &mut target.coefs[at], block).map(|_| ());
    }
    decode_to_pixels(reader, kind, tables, state, place, target, at)
}

/// [`decode_into`] for a block whose pixels are made at once.
#[inline(never)]
fn decode_to_pixels(
    reader: &mut BitReader,
    kind: ScanKind,
    tables: (Option<&Huffman>, Option<&Huffman>),
    state: &mut ScanState,
    place: usize,
    target: &mut Target,
    at: usize,
) -> Option<()> {
    let Target { c, coefs, plane, .. } = target;
    let mut block = [0i16; 64];
    let ac = decode_block(
        reader,
        kind,
        tables,
        state,
        place,
        &mut coefs[at],
        Some(&mut block),
    )?;
    let (bx, by) = (at % c.padded_w, at / c.padded_w);
    // Interleaved scans also cover the padding blocks of partial MCUs, which hold no image.
    if bx < c.blocks_w && by < c.blocks_h {
        block[0] = coefs[at] as i16;
        put_block(plane, c, (bx, by), &block, ac)?;
    }
    Some(())
}

/// The pixels of block `(bx, by)` of a component with a 2x2 or 4x4 IDCT, into its plane.
/// Without AC coefficients (`ac` false) the block is flat, the value of its 1x1 IDCT, which
/// is what the larger IDCTs give too.
fn put_block(
    plane: &mut [u8],
    c: &Component,
    (bx, by): (usize, usize),
    block: &[i16; 64],
    ac: bool,
) -> Option<()> {
    let q = c.quant.as_ref()?;
    let w = c.blocks_w * c.size;
    let out = &mut plane[by * c.size * w + bx * c.size..];
    match (ac, c.size) {
        (false, size) => {
            let flat = idct_1x1(block[0] as i32, q[0] as i32);
            for row in out.chunks_mut(w).take(size) {
                row[..size].fill(flat);
            }
        }
        (true, 2) => idct_2x2(block, q, out, w),
        (true, _) => idct_4x4(block, q, out, w),
    }
    Some(())
}

#[derive(Clone, Copy)]
enum ScanKind {
    Sequential,
    DcFirst {
        al: u8,
    },
    DcRefine {
        al: u8,
    },
    /// A progressive AC scan: the band `ss..=se` and the bit position `al`.
    AcFirst((usize, usize, u8)),
    AcRefine((usize, usize, u8)),
}

/// What carries from block to block within a scan, until a restart marker.
#[derive(Default)]
struct ScanState {
    /// DC predictors by the component's place in the scan.
    pred: [i32; 4],
    /// Blocks left in the current end-of-band run (progressive AC scans).
    eobrun: u32,
}

/// Decodes one block's share of a scan: its DC coefficient into `coef`, and its AC
/// coefficients into `block` when the component keeps them (skipped otherwise). Returns
/// whether any AC coefficient may be non-zero.
#[inline(always)]
fn decode_block(
    reader: &mut BitReader,
    kind: ScanKind,
    (dc, ac): (Option<&Huffman>, Option<&Huffman>),
    state: &mut ScanState,
    place: usize,
    coef: &mut i32,
    block: Option<&mut [i16; 64]>,
) -> Option<bool> {
    let pred = &mut state.pred[place];
    match kind {
        ScanKind::Sequential => {
            reader.fill();
            let s = dc?.decode(reader)?;
            *pred = pred.wrapping_add(reader.receive_extend(s)?);
            *coef = *pred;
            match block {
                Some(block) => ac?.decode_ac(reader, block),
                None => ac?.skip_ac(reader).map(|_| false),
            }
        }
        ScanKind::DcFirst { al } => {
            reader.fill();
            let s = dc?.decode(reader)?;
            *pred = pred.wrapping_add(reader.receive_extend(s)?);
            *coef = pred.wrapping_shl(al as u32);
            Some(false)
        }
        ScanKind::DcRefine { al } => {
            reader.fill();
            if reader.bits(1) != 0 {
                *coef |= 1 << al;
            }
            Some(false)
        }
        ScanKind::AcFirst(band) => ac?
            .decode_ac_first(reader, block?, band, &mut state.eobrun)
            .map(|_| true),
        ScanKind::AcRefine(band) => ac?
            .decode_ac_refine(reader, block?, band, &mut state.eobrun)
            .map(|_| true),
    }
}

/// More DC scans than any encoder writes (libjpeg: one per component and refinement bit).
const MAX_DECODED_SCANS: usize = 64;

#[cfg(test)]
mod tests;
