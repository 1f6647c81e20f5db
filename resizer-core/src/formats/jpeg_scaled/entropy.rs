//! Entropy-coded data: the bit reader and the Huffman tables.

use super::idct::NATURAL;

/// The position of the next marker at or after `pos`: `0xFF` followed by anything but a
/// stuffed zero or a fill byte, and, unless `restarts` is set, not a restart marker either
/// (those sit inside an entropy-coded segment).
pub(super) fn next_marker(data: &[u8], mut pos: usize, restarts: bool) -> Option<usize> {
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

/// Reads the entropy-coded segment MSB first, unstuffing `FF 00` and stopping at markers;
/// past a marker (or the end) it feeds zeros and remembers it did.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pub(super) pos: usize,
    /// Bits left-aligned: the next bit is bit 63.
    buf: u64,
    count: u32,
    /// Zero bits fed past the end of the segment.
    padding: u32,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
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
    pub(super) fn fill(&mut self) {
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
    pub(super) fn fill_bytewise(&mut self) {
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
    pub(super) fn peek(&self, n: u32) -> u32 {
        (self.buf >> (64 - n)) as u32
    }

    #[inline(always)]
    pub(super) fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.count -= n;
    }

    /// `n` (1..=16) bits; the buffer must hold them.
    #[inline(always)]
    pub(super) fn bits(&mut self, n: u32) -> u32 {
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// `n` (0..=16) bits, topping the buffer up first if it holds fewer.
    #[inline(always)]
    pub(super) fn get(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.fill();
        }
        self.bits(n)
    }

    /// The `s`-bit signed value of JPEG's EXTEND procedure.
    #[inline(always)]
    pub(super) fn receive_extend(&mut self, s: u8) -> Option<i32> {
        match s {
            0 => Some(0),
            1..=16 => {
                let s = s as u32;
                if self.count < s {
                    self.fill();
                }
                Some(extend(self.bits(s) as i32, s))
            }
            _ => None,
        }
    }

    /// True if any zero bit fed past the data was consumed.
    pub(super) fn overran(&self) -> bool {
        self.padding > self.count
    }

    /// Handles a restart marker: drop the buffered bits, expect `RSTn` next.
    pub(super) fn restart(&mut self) -> Option<()> {
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
    pub(super) fn pack(len1: u32, step1: u32, len2: u32, step2: u32) -> u32 {
        len1 << 24 | step1 << 16 | len2 << 8 | step2
    }

    #[inline(always)]
    pub(super) fn first_step(e: u32) -> u32 {
        (e >> 16) & 0xFF
    }

    #[inline(always)]
    pub(super) fn first(e: u32) -> (u32, u32) {
        (e >> 24, (e >> 16) & 0xFF)
    }

    #[inline(always)]
    pub(super) fn both(e: u32) -> (u32, u32) {
        ((e >> 8) & 0xFF, e & 0xFF)
    }
}

/// A Huffman table with a direct lookup for short codes.
pub(super) struct Huffman {
    /// For each `LOOKUP_BITS`-bit prefix: code length (0 if longer) << 8 | symbol.
    lookup: [u16; 1 << LOOKUP_BITS],
    /// For AC tables, what skipping the next one or two coefficients takes, for each prefix:
    /// a [`Skip`] packed in a u32, or 0 when even the first symbol and its extra bits do not
    /// fit in the prefix. Two at a time halves the serial chain of lookups, which is what
    /// bounds the speed of this loop.
    skip: Option<Box<[u32; 1 << LOOKUP_BITS]>>,
    /// For AC tables, a whole coefficient for each prefix that holds its symbol and extra
    /// bits: value << 16 | run << 8 | bits taken, or 0 (then the symbol is decoded alone).
    coefficient: Option<Box<[i32; 1 << LOOKUP_BITS]>>,
    /// Canonical decoding of longer codes: for each length, the largest code (or -1) and
    /// the offset from a code to its index in `values`.
    max_code: [i32; 18],
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    pub(super) fn new(counts: &[u8; 16], values: &[u8]) -> Option<Huffman> {
        let mut lookup = [0u16; 1 << LOOKUP_BITS];
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
                    let first = (code << shift) as usize;
                    lookup[first..first + (1 << shift)].fill((len as u16) << 8 | symbol as u16);
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
        Some(Huffman {
            lookup,
            skip: None,
            coefficient: None,
            max_code,
            offset,
            values: values[..k].to_vec(),
        })
    }

    /// Builds the table [`Huffman::skip_ac`] needs (once). Only an AC table of a sequential
    /// scan needs it, and a progressive file brings a table per scan, so it is made on demand.
    pub(super) fn prepare_skip(&mut self) {
        if self.skip.is_some() {
            return;
        }
        // First for one symbol: (bits, zig-zag step) packed as bits << 8 | step.
        let single = self.lookup.map(|e| {
            let (len, run, size) = ((e >> 8) as u32, e >> 4 & 15, e & 15);
            let step = match (run, size) {
                _ if len == 0 || len + size as u32 > LOOKUP_BITS => return 0,
                (0, 0) => 64,
                (15, 0) => 16,
                // Other runs without a value are not valid AC symbols.
                (_, 0) => return 0,
                _ => run + 1,
            };
            ((len + size as u32) as u16) << 8 | step
        });
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
        self.skip = Some(skip);
    }

    /// Builds the table [`Huffman::decode_ac`] needs (once).
    pub(super) fn prepare_coefficients(&mut self) {
        if self.coefficient.is_some() {
            return;
        }
        let mut coefficient = Box::new([0i32; 1 << LOOKUP_BITS]);
        for (i, &e) in self.lookup.iter().enumerate() {
            let (len, run, size) = ((e >> 8) as u32, (e >> 4) as u32 & 15, e as u32 & 15);
            if len == 0 || size == 0 || len + size > LOOKUP_BITS {
                continue;
            }
            let bits = (i as u32 >> (LOOKUP_BITS - len - size)) & ((1 << size) - 1);
            let value = extend(bits as i32, size);
            coefficient[i] = value << 16 | (run << 8 | (len + size)) as i32;
        }
        self.coefficient = Some(coefficient);
    }

    /// The next symbol; the buffer must hold at least 16 bits.
    #[inline(always)]
    pub(super) fn decode(&self, reader: &mut BitReader) -> Option<u8> {
        let e = self.lookup[reader.peek(LOOKUP_BITS) as usize];
        if e >> 8 != 0 {
            reader.consume((e >> 8) as u32);
            return Some(e as u8);
        }
        self.decode_slow(reader)
    }

    #[cold]
    pub(super) fn decode_slow(&self, reader: &mut BitReader) -> Option<u8> {
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

    /// Decodes the 63 AC coefficients of one block of a sequential scan into `block`
    /// (natural order), as libjpeg's `decode_mcu` does.
    /// Returns whether any of them is non-zero.
    pub(super) fn decode_ac(&self, reader: &mut BitReader, block: &mut [i16; 64]) -> Option<bool> {
        let coefficient = self.coefficient.as_deref()?;
        let mut k = 1;
        while k < 64 {
            reader.fill();
            // Up to five whole coefficients from one refill (a table step takes at most 11
            // of the 57 or more bits buffered), before the general case below.
            let mut e = coefficient[reader.peek(LOOKUP_BITS) as usize];
            let mut steps = 0;
            while e != 0 && steps < 5 {
                reader.consume(e as u32 & 0xFF);
                k += (e as usize >> 8) & 0xFF;
                block[NATURAL[k]] = (e >> 16) as i16;
                k += 1;
                if k >= 64 {
                    return Some(true);
                }
                steps += 1;
                e = coefficient[reader.peek(LOOKUP_BITS) as usize];
            }
            if steps > 0 {
                continue;
            }
            let rs = self.decode(reader)?;
            let (run, size) = ((rs >> 4) as usize, rs & 15);
            if size == 0 {
                if run != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += run;
            block[NATURAL[k]] = reader.receive_extend(size)? as i16;
            k += 1;
        }
        Some(k > 1)
    }

    /// A progressive scan's first pass over coefficients `ss..=se` of one block, each shifted
    /// up by `al` (libjpeg's `decode_mcu_AC_first`). `eobrun` carries end-of-band runs over
    /// blocks.
    pub(super) fn decode_ac_first(
        &self,
        reader: &mut BitReader,
        block: &mut [i16; 64],
        (ss, se, al): (usize, usize, u8),
        eobrun: &mut u32,
    ) -> Option<()> {
        if *eobrun > 0 {
            *eobrun -= 1;
            return Some(());
        }
        let mut k = ss;
        while k <= se {
            reader.fill();
            let rs = self.decode(reader)?;
            let (run, size) = ((rs >> 4) as u32, rs & 15);
            if size != 0 {
                k += run as usize;
                let v = reader.receive_extend(size)?;
                block[NATURAL[k]] = v.wrapping_shl(al as u32) as i16;
            } else if run == 15 {
                k += 15;
            } else {
                *eobrun = (1 << run) + reader.get(run) - 1;
                break;
            }
            k += 1;
        }
        Some(())
    }

    /// A progressive scan's refinement pass over coefficients `ss..=se` of one block: one
    /// more bit of each coefficient already non-zero, and newly non-zero ones
    /// (libjpeg's `decode_mcu_AC_refine`).
    pub(super) fn decode_ac_refine(
        &self,
        reader: &mut BitReader,
        block: &mut [i16; 64],
        (ss, se, al): (usize, usize, u8),
        eobrun: &mut u32,
    ) -> Option<()> {
        let (p1, m1) = (1i16 << al, (-1i16).wrapping_shl(al as u32));
        let mut k = ss;
        if *eobrun == 0 {
            while k <= se {
                reader.fill();
                let rs = self.decode(reader)?;
                let (mut run, size) = ((rs >> 4) as i32, rs & 15);
                let mut value = 0;
                if size != 0 {
                    value = if reader.get(1) != 0 { p1 } else { m1 };
                } else if run != 15 {
                    *eobrun = (1 << run) + reader.get(run as u32);
                    break;
                }
                // Past the coefficients already non-zero (each takes a correction bit) and
                // `run` zero ones, to where the new value goes.
                while k <= se {
                    let coef = &mut block[NATURAL[k]];
                    if *coef != 0 {
                        refine(coef, reader.get(1), p1, m1);
                    } else {
                        run -= 1;
                        if run < 0 {
                            break;
                        }
                    }
                    k += 1;
                }
                if value != 0 {
                    block[NATURAL[k]] = value;
                }
                k += 1;
            }
        }
        if *eobrun > 0 {
            while k <= se {
                let coef = &mut block[NATURAL[k]];
                if *coef != 0 {
                    refine(coef, reader.get(1), p1, m1);
                }
                k += 1;
            }
            *eobrun -= 1;
        }
        Some(())
    }

    /// Skips the 63 AC coefficients of one block. This loop is most of the work for a
    /// sequential file, so the bit buffer lives in locals (registers) while it runs.
    #[inline(never)]
    pub(super) fn skip_ac(&self, reader: &mut BitReader) -> Option<()> {
        let skip = self.skip.as_deref()?;
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
            let mut e = skip[(buf >> (64 - LOOKUP_BITS)) as usize];
            if e != 0 {
                skip_step(e, &mut buf, &mut count, &mut k);
                if k >= 64 {
                    break;
                }
                e = skip[(buf >> (64 - LOOKUP_BITS)) as usize];
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

/// Applies a correction bit to a coefficient already non-zero: it grows away from zero by
/// `p1` unless that bit is already set.
fn refine(coef: &mut i16, bit: u32, p1: i16, m1: i16) {
    if bit != 0 && *coef & p1 == 0 {
        *coef = coef.wrapping_add(if *coef >= 0 { p1 } else { m1 });
    }
}

/// JPEG's EXTEND: the signed value of `s` (1..=16) magnitude bits `v`.
#[inline(always)]
fn extend(v: i32, s: u32) -> i32 {
    if v < 1 << (s - 1) { v - (1 << s) + 1 } else { v }
}
