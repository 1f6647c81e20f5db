//! From coefficients to pixels: upsampling and colour conversion.

/// JFIF's YCbCr to RGB, in 16-bit fixed point.
pub(super) fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
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
pub(super) fn upsample(
    src: &[u8],
    w: usize,
    h: usize,
    fx: usize,
    fy: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
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
