//! Reduced-size inverse DCTs: a block's 8x8 coefficients straight to 1x1, 2x2 or 4x4 pixels.
//!
//! These are the IJG's `jidctred.c` algorithms (as libjpeg-turbo still ships them), with the
//! same fixed-point constants, rounding and order of operations, so a decode at 1/8 or 1/4
//! scale gives libjpeg's pixels to the last bit. The differences only corrupt data reaches:
//! libjpeg wraps values far outside the sample range through a mask where this clamps them,
//! and it computes in 64 bits where this wraps at 32.

/// Natural (row-major) position of each zig-zag index, with 16 extra entries so that a run
/// past the end of a corrupt block lands on the last coefficient instead of out of bounds,
/// as libjpeg's table does.
pub(super) const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
    14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39,
    46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
const FIX_0_211164243: i32 = 1730;
const FIX_0_509795579: i32 = 4176;
const FIX_0_601344887: i32 = 4926;
const FIX_0_720959822: i32 = 5906;
const FIX_0_765366865: i32 = 6270;
const FIX_0_850430095: i32 = 6967;
const FIX_0_899976223: i32 = 7373;
const FIX_1_061594337: i32 = 8697;
const FIX_1_272758580: i32 = 10426;
const FIX_1_451774981: i32 = 11893;
const FIX_1_847759065: i32 = 15137;
const FIX_2_172734803: i32 = 17799;
const FIX_2_562915447: i32 = 20995;
const FIX_3_624509785: i32 = 29692;

// 32-bit arithmetic, as libjpeg-turbo's SIMD versions of these use: a valid 8-bit stream's
// dequantised coefficients stay within 16 bits, so nothing overflows. A corrupt one may
// wrap, which only garbles its own pixels.

fn descale(x: i32, n: u32) -> i32 {
    x.wrapping_add(1 << (n - 1)) >> n
}

fn sample(x: i32) -> u8 {
    x.wrapping_add(128).clamp(0, 255) as u8
}

fn mul(a: i32, b: i32) -> i32 {
    a.wrapping_mul(b)
}

/// One pixel: the dequantised DC coefficient over 8.
pub(super) fn idct_1x1(dc: i32, q: i32) -> u8 {
    sample(descale(mul(dc, q), 3))
}

/// The odd part of the 2-point reduced IDCT, from inputs 7, 5, 3 and 1.
fn odd2(z7: i32, z5: i32, z3: i32, z1: i32) -> i32 {
    mul(z7, -FIX_0_720959822)
        .wrapping_add(mul(z5, FIX_0_850430095))
        .wrapping_add(mul(z3, -FIX_1_272758580))
        .wrapping_add(mul(z1, FIX_3_624509785))
}

/// 2x2 pixels from `coef` (natural order, quantised) and the table `q`, into `out` (rows
/// `stride` apart).
pub(super) fn idct_2x2(coef: &[i16; 64], q: &[u16; 64], out: &mut [u8], stride: usize) {
    let deq = |i: usize| mul(coef[i] as i32, q[i] as i32);
    let mut ws = [0i32; 16];
    // Columns 0, 1, 3, 5 and 7: the even ones cancel out at two points.
    for col in [0, 1, 3, 5, 7] {
        if coef[8 + col] == 0 && coef[24 + col] == 0 && coef[40 + col] == 0 && coef[56 + col] == 0 {
            let dc = deq(col) << PASS1_BITS;
            ws[col] = dc;
            ws[8 + col] = dc;
            continue;
        }
        let tmp10 = deq(col) << (CONST_BITS + 2);
        let tmp0 = odd2(deq(56 + col), deq(40 + col), deq(24 + col), deq(8 + col));
        ws[col] = descale(tmp10.wrapping_add(tmp0), CONST_BITS - PASS1_BITS + 2);
        ws[8 + col] = descale(tmp10.wrapping_sub(tmp0), CONST_BITS - PASS1_BITS + 2);
    }
    for row in 0..2 {
        let w = &ws[row * 8..row * 8 + 8];
        let px = &mut out[row * stride..row * stride + 2];
        if w[1] == 0 && w[3] == 0 && w[5] == 0 && w[7] == 0 {
            px.fill(sample(descale(w[0], PASS1_BITS + 3)));
            continue;
        }
        let tmp10 = w[0] << (CONST_BITS + 2);
        let tmp0 = odd2(w[7], w[5], w[3], w[1]);
        let n = CONST_BITS + PASS1_BITS + 3 + 2;
        px[0] = sample(descale(tmp10.wrapping_add(tmp0), n));
        px[1] = sample(descale(tmp10.wrapping_sub(tmp0), n));
    }
}

/// The odd part of the 4-point reduced IDCT, from inputs 7, 5, 3 and 1.
fn odd4(z1: i32, z2: i32, z3: i32, z4: i32) -> (i32, i32) {
    let tmp0 = mul(z1, -FIX_0_211164243)
        .wrapping_add(mul(z2, FIX_1_451774981))
        .wrapping_add(mul(z3, -FIX_2_172734803))
        .wrapping_add(mul(z4, FIX_1_061594337));
    let tmp2 = mul(z1, -FIX_0_509795579)
        .wrapping_add(mul(z2, -FIX_0_601344887))
        .wrapping_add(mul(z3, FIX_0_899976223))
        .wrapping_add(mul(z4, FIX_2_562915447));
    (tmp0, tmp2)
}

/// The even part of the 4-point reduced IDCT, from inputs 0, 2 and 6.
fn even4(z0: i32, z2: i32, z6: i32) -> (i32, i32) {
    let tmp0 = z0 << (CONST_BITS + 1);
    let tmp2 = mul(z2, FIX_1_847759065).wrapping_add(mul(z6, -FIX_0_765366865));
    (tmp0.wrapping_add(tmp2), tmp0.wrapping_sub(tmp2))
}

/// 4x4 pixels from `coef` (natural order, quantised) and the table `q`, into `out` (rows
/// `stride` apart).
pub(super) fn idct_4x4(coef: &[i16; 64], q: &[u16; 64], out: &mut [u8], stride: usize) {
    let deq = |i: usize| mul(coef[i] as i32, q[i] as i32);
    let mut ws = [0i32; 32];
    // Column 4 is left out: the second pass does not use it.
    for col in [0, 1, 2, 3, 5, 6, 7] {
        let at = |row: usize| deq(row * 8 + col);
        if [1, 2, 3, 5, 6, 7].iter().all(|&row| coef[row * 8 + col] == 0) {
            let dc = at(0) << PASS1_BITS;
            for row in 0..4 {
                ws[row * 8 + col] = dc;
            }
            continue;
        }
        let (tmp10, tmp12) = even4(at(0), at(2), at(6));
        let (tmp0, tmp2) = odd4(at(7), at(5), at(3), at(1));
        let n = CONST_BITS - PASS1_BITS + 1;
        ws[col] = descale(tmp10.wrapping_add(tmp2), n);
        ws[24 + col] = descale(tmp10.wrapping_sub(tmp2), n);
        ws[8 + col] = descale(tmp12.wrapping_add(tmp0), n);
        ws[16 + col] = descale(tmp12.wrapping_sub(tmp0), n);
    }
    for row in 0..4 {
        let w = &ws[row * 8..row * 8 + 8];
        let px = &mut out[row * stride..row * stride + 4];
        if [1, 2, 3, 5, 6, 7].iter().all(|&i| w[i] == 0) {
            px.fill(sample(descale(w[0], PASS1_BITS + 3)));
            continue;
        }
        let (tmp10, tmp12) = even4(w[0], w[2], w[6]);
        let (tmp0, tmp2) = odd4(w[7], w[5], w[3], w[1]);
        let n = CONST_BITS + PASS1_BITS + 3 + 1;
        px[0] = sample(descale(tmp10.wrapping_add(tmp2), n));
        px[3] = sample(descale(tmp10.wrapping_sub(tmp2), n));
        px[1] = sample(descale(tmp12.wrapping_add(tmp0), n));
        px[2] = sample(descale(tmp12.wrapping_sub(tmp0), n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_block_is_its_dc_at_every_size() {
        let mut coef = [0i16; 64];
        coef[0] = -37;
        let q = [3u16; 64];
        let expected = idct_1x1(-37, 3);
        let mut out = [0u8; 16];
        idct_2x2(&coef, &q, &mut out, 2);
        assert_eq!(&out[..4], &[expected; 4]);
        idct_4x4(&coef, &q, &mut out, 4);
        assert_eq!(out, [expected; 16]);
    }

    #[test]
    fn a_horizontal_cosine_ramps_left_to_right() {
        // The first horizontal AC coefficient alone: brighter on the left, symmetric about
        // the DC level, and constant down each column.
        let mut coef = [0i16; 64];
        coef[1] = 40;
        let q = [1u16; 64];
        let mut out = [0u8; 16];
        idct_4x4(&coef, &q, &mut out, 4);
        for row in out.chunks(4) {
            assert_eq!(row, &out[..4]);
            assert!(row[0] > row[1] && row[1] > row[2] && row[2] > row[3], "{row:?}");
            assert!((row[0] as i32 + row[3] as i32 - 256).abs() <= 1, "{row:?}");
        }
    }
}
