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

/// The position of the next marker at or after `pos`: `0xFF` followed by anything but a
/// stuffed zero or a fill byte, and, unless `restarts` is set, not a restart marker either
/// (those sit inside an entropy-coded segment).
fn next_marker(data: &[u8], mut pos: usize, restarts: bool) -> Option<usize> {
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        let mut next = pos + 1;
        while *data.get(next)? == 0xFF {
            next += 1;
        }
        match data[next] {
            0x00 => pos = next + 1,
            0xD0..=0xD7 if !restarts => pos = next + 1,
            _ => return Some(next - 1),
        }
    }
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

/// JFIF's YCbCr to RGB, in 16-bit fixed point.
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let y = (y as i32) << 16;
    let cb = cb as i32 - 128;
    let cr = cr as i32 - 128;
    let round = 1 << 15;
    let r = (y + 91881 * cr + round) >> 16;
    let g = (y - 22554 * cb - 46802 * cr + round) >> 16;
    let b = (y + 116130 * cb + round) >> 16;
    [
        r.clamp(0, 255) as u8,
        g.clamp(0, 255) as u8,
        b.clamp(0, 255) as u8,
    ]
}

/// Bilinear upsampling by whole factors with centred samples (libjpeg's "fancy" upsampling for
/// 2x), cropped to `out_w` x `out_h`.
fn upsample(src: &[u8], w: usize, h: usize, fx: usize, fy: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    // For output i, the source position is (i + 0.5) / f - 0.5: in units of 1/(2f),
    // (2i + 1 - f) / (2f).
    let taps = |i: usize, f: usize, len: usize| -> (usize, usize, u32) {
        let num = (2 * i + 1) as isize - f as isize;
        let den = (2 * f) as isize;
        if num < 0 {
            return (0, 0, 0);
        }
        let lo = (num / den) as usize;
        // Weight of the upper tap in 1/256.
        let frac = ((num % den) * 256 / den) as u32;
        (lo.min(len - 1), (lo + 1).min(len - 1), frac)
    };
    let cols: Vec<_> = (0..out_w).map(|x| taps(x, fx, w)).collect();
    let mut rows_h = vec![0u16; out_w * h];
    for (row, dst) in src.chunks_exact(w).zip(rows_h.chunks_exact_mut(out_w)) {
        for (d, &(lo, hi, f)) in dst.iter_mut().zip(&cols) {
            *d = (row[lo] as u32 * (256 - f) + row[hi] as u32 * f) as u16;
        }
    }
    let mut out = vec![0u8; out_w * out_h];
    for (y, dst) in out.chunks_exact_mut(out_w).enumerate() {
        let (lo, hi, f) = taps(y, fy, h);
        let (a, b) = (&rows_h[lo * out_w..][..out_w], &rows_h[hi * out_w..][..out_w]);
        for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
            *d = ((a as u32 * (256 - f) + b as u32 * f + (1 << 15)) >> 16) as u8;
        }
    }
    out
}

/// Reads the entropy-coded segment MSB first, unstuffing `FF 00` and stopping at markers;
/// past a marker (or the end) it feeds zeros and remembers it did.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Bits left-aligned: the next bit is bit 63.
    buf: u64,
    count: u32,
    /// Zero bits fed past the end of the segment.
    padding: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            buf: 0,
            count: 0,
            padding: 0,
        }
    }

    /// Tops the buffer up to at least 57 bits: enough for a Huffman code (16 bits) and its
    /// extra bits (up to 16), twice over.
    #[inline(always)]
    fn fill(&mut self) {
        if self.count > 56 {
            return;
        }
        // Fast path: the next 8 bytes hold no 0xFF (so no stuffing and no marker), and as
        // many whole bytes as fit go in at once.
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(chunk.try_into().unwrap_or_default());
            let inverted = !word;
            let has_ff =
                inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080 != 0;
            if !has_ff {
                let n = (64 - self.count) / 8;
                self.buf |= (word >> (64 - 8 * n)) << (64 - self.count - 8 * n);
                self.pos += n as usize;
                self.count += 8 * n;
                return;
            }
        }
        self.fill_bytewise();
    }

    #[cold]
    fn fill_bytewise(&mut self) {
        while self.count <= 56 {
            let byte = match self.data.get(self.pos) {
                Some(0xFF) => match self.data.get(self.pos + 1) {
                    Some(0x00) => {
                        self.pos += 2;
                        0xFF
                    }
                    _ => {
                        self.padding += 8;
                        0
                    }
                },
                Some(&b) => {
                    self.pos += 1;
                    b
                }
                None => {
                    self.padding += 8;
                    0
                }
            };
            self.buf |= (byte as u64) << (56 - self.count);
            self.count += 8;
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.buf >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.count -= n;
    }

    /// `n` (1..=16) bits; the buffer must hold them.
    #[inline(always)]
    fn bits(&mut self, n: u32) -> u32 {
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// The `s`-bit signed value of JPEG's EXTEND procedure.
    #[inline(always)]
    fn receive_extend(&mut self, s: u8) -> Option<i32> {
        match s {
            0 => Some(0),
            1..=16 => {
                let s = s as u32;
                if self.count < s {
                    self.fill();
                }
                let v = self.bits(s) as i32;
                Some(if v < 1 << (s - 1) { v - (1 << s) + 1 } else { v })
            }
            _ => None,
        }
    }

    /// True if any zero bit fed past the data was consumed.
    fn overran(&self) -> bool {
        self.padding > self.count
    }

    /// Handles a restart marker: drop the buffered bits, expect `RSTn` next.
    fn restart(&mut self) -> Option<()> {
        if self.overran() {
            return None;
        }
        self.buf = 0;
        self.count = 0;
        self.padding = 0;
        let at = next_marker(self.data, self.pos, true)?;
        match self.data.get(at + 1)? {
            0xD0..=0xD7 => {
                self.pos = at + 2;
                Some(())
            }
            _ => None,
        }
    }
}

/// More DC scans than any encoder writes (libjpeg: one per component and refinement bit).
const MAX_DECODED_SCANS: usize = 64;

/// How many bits the lookup tables resolve at once; longer codes take the slow path.
const LOOKUP_BITS: u32 = 11;

/// Applies one non-zero `Huffman::skip` entry: the pair only if the first symbol leaves the
/// block unfinished (otherwise the second belongs to the next block).
#[inline(always)]
fn skip_step(e: u32, buf: &mut u64, count: &mut u32, k: &mut u32) {
    let (bits, step) = if *k + Skip::first_step(e) < 64 {
        Skip::both(e)
    } else {
        Skip::first(e)
    };
    *buf <<= bits;
    *count -= bits;
    *k += step;
}

/// Packing of a `Huffman::skip` entry: bits and zig-zag step of the first symbol, then of
/// the first two together (the same as the first when the second does not fit).
struct Skip;

impl Skip {
    fn pack(len1: u32, step1: u32, len2: u32, step2: u32) -> u32 {
        len1 << 24 | step1 << 16 | len2 << 8 | step2
    }

    #[inline(always)]
    fn first_step(e: u32) -> u32 {
        (e >> 16) & 0xFF
    }

    #[inline(always)]
    fn first(e: u32) -> (u32, u32) {
        (e >> 24, (e >> 16) & 0xFF)
    }

    #[inline(always)]
    fn both(e: u32) -> (u32, u32) {
        ((e >> 8) & 0xFF, e & 0xFF)
    }
}

/// A Huffman table with a direct lookup for short codes.
struct Huffman {
    /// For each `LOOKUP_BITS`-bit prefix: code length (0 if longer) << 8 | symbol.
    lookup: [u16; 1 << LOOKUP_BITS],
    /// For AC tables, what skipping the next one or two coefficients takes, for each prefix:
    /// a [`Skip`] packed in a u32, or 0 when even the first symbol and its extra bits do not
    /// fit in the prefix. Two at a time halves the serial chain of lookups, which is what
    /// bounds the speed of this loop.
    skip: Box<[u32; 1 << LOOKUP_BITS]>,
    /// Canonical decoding of longer codes: for each length, the largest code (or -1) and
    /// the offset from a code to its index in `values`.
    max_code: [i32; 18],
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: &[u8]) -> Option<Huffman> {
        let mut lookup = [0u16; 1 << LOOKUP_BITS];
        // First for one symbol: (bits, zig-zag step) packed as bits << 8 | step.
        let mut single = [0u16; 1 << LOOKUP_BITS];
        let mut max_code = [-1i32; 18];
        let mut offset = [0i32; 17];
        let mut code = 0u32;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as usize;
            offset[len as usize] = k as i32 - code as i32;
            for _ in 0..n {
                let symbol = *values.get(k)?;
                if code >= 1 << len {
                    return None;
                }
                if len <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len;
                    let (run, size) = (symbol >> 4, symbol & 15);
                    for fill in 0..1u32 << shift {
                        let i = ((code << shift) | fill) as usize;
                        lookup[i] = (len as u16) << 8 | symbol as u16;
                        let total = len + size as u32;
                        let step = match (run, size) {
                            (0, 0) => Some(64),
                            (15, 0) => Some(16),
                            // Other runs without a value are not valid AC symbols.
                            (_, 0) => None,
                            _ => Some(run as u16 + 1),
                        };
                        if let Some(step) = step.filter(|_| total <= LOOKUP_BITS) {
                            single[i] = (total as u16) << 8 | step;
                        }
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                max_code[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        max_code[17] = i32::MAX;
        // Then pairs: after the first symbol, the prefix's remaining bits may hold the whole
        // second one too. Its lookup with zero-filled low bits is valid only if its length
        // fits in what is known.
        let mut skip = Box::new([0u32; 1 << LOOKUP_BITS]);
        for (i, &first) in single.iter().enumerate() {
            if first == 0 {
                continue;
            }
            let (len1, step1) = ((first >> 8) as u32, (first & 0xFF) as u32);
            let mut total = (len1, step1);
            if step1 != 64 && len1 < LOOKUP_BITS {
                let rest = (i << len1) & ((1 << LOOKUP_BITS) - 1);
                let second = single[rest];
                let len2 = (second >> 8) as u32;
                if second != 0 && len2 <= LOOKUP_BITS - len1 {
                    total = (len1 + len2, step1 + (second & 0xFF) as u32);
                }
            }
            skip[i] = Skip::pack(len1, step1, total.0, total.1);
        }
        Some(Huffman {
            lookup,
            skip,
            max_code,
            offset,
            values: values[..k].to_vec(),
        })
    }

    /// The next symbol; the buffer must hold at least 16 bits.
    #[inline(always)]
    fn decode(&self, reader: &mut BitReader) -> Option<u8> {
        let e = self.lookup[reader.peek(LOOKUP_BITS) as usize];
        if e >> 8 != 0 {
            reader.consume((e >> 8) as u32);
            return Some(e as u8);
        }
        self.decode_slow(reader)
    }

    #[cold]
    fn decode_slow(&self, reader: &mut BitReader) -> Option<u8> {
        for len in LOOKUP_BITS + 1..=16 {
            let code = reader.peek(len) as i32;
            if code <= self.max_code[len as usize] {
                reader.consume(len);
                return self
                    .values
                    .get((code + self.offset[len as usize]) as usize)
                    .copied();
            }
        }
        None
    }

    /// Skips the 63 AC coefficients of one block. This loop is most of the work for a
    /// sequential file, so the bit buffer lives in locals (registers) while it runs.
    #[inline(never)]
    fn skip_ac(&self, reader: &mut BitReader) -> Option<()> {
        let mut k = 1u32;
        let (mut buf, mut count) = (reader.buf, reader.count);
        // Up to two table steps per turn of the loop: wasmtime checks the epoch on every loop
        // back-edge, so fewer turns means fewer checks. A table step takes at most 11 bits,
        // so 32 buffered bits cover two of them.
        while k < 64 {
            if count < 32 {
                (reader.buf, reader.count) = (buf, count);
                reader.fill();
                (buf, count) = (reader.buf, reader.count);
            }
            let mut e = self.skip[(buf >> (64 - LOOKUP_BITS)) as usize];
            if e != 0 {
                skip_step(e, &mut buf, &mut count, &mut k);
                if k >= 64 {
                    break;
                }
                e = self.skip[(buf >> (64 - LOOKUP_BITS)) as usize];
                if e != 0 {
                    skip_step(e, &mut buf, &mut count, &mut k);
                    continue;
                }
            }
            // A symbol and its extra bits longer than the table: up to 31 bits.
            (reader.buf, reader.count) = (buf, count);
            if reader.count < 32 {
                reader.fill();
            }
            let rs = self.decode(reader)?;
            let (run, size) = ((rs >> 4) as u32, (rs & 15) as u32);
            match (run, size) {
                (0, 0) => return Some(()),
                (_, 0) if run != 15 => return None,
                _ => {
                    reader.consume(size);
                    k += run + 1;
                }
            }
            (buf, count) = (reader.buf, reader.count);
        }
        (reader.buf, reader.count) = (buf, count);
        // A run past the end of the block is tolerated, as libjpeg does.
        Some(())
    }
}

#[cfg(test)]
mod tests {
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
}
