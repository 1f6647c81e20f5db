//! The box a request asks for, as imgproxy and Pillow's `thumbnail` size it: a missing side
//! follows the aspect ratio, the device pixel ratio multiplies the box, and a source smaller
//! than the box keeps its size unless enlarging is asked for.
//!
//! The component contract (WIT 1.0) takes a concrete box, so this resolves requests into one.
//! Most of it needs no knowledge of the source: an automatic side is a `contain` box whose
//! other side is the largest allowed. Only "do not enlarge" depends on the source's size,
//! which [`Request::settle`] applies once that size is known.

use crate::request::OptionError;
use crate::{Fit, MAX_OUTPUT_SIDE};

/// The sizing part of a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Box width; 0 means automatic (from the aspect ratio).
    pub width: u32,
    /// Box height; 0 means automatic.
    pub height: u32,
    pub fit: Fit,
    /// Whether a source smaller than the box may be scaled up.
    pub enlarge: bool,
    /// Device pixel ratio, 1 to 4: multiplies the box.
    pub dpr: f32,
}

/// Neither side given: the service's default box.
pub const DEFAULT_SIDE: u32 = 100;

/// The largest device pixel ratio; as imgproxy's, enough for every phone screen.
pub const MAX_DPR: f32 = 4.0;

impl Request {
    /// Checks `dpr`'s range and that the box times `dpr` stays within the output limit,
    /// naming the option at fault as the request's other checks do.
    pub fn validate(&self) -> Result<(), OptionError> {
        if !(1.0..=MAX_DPR).contains(&self.dpr) {
            let dpr = crate::request::options::find("dpr").expect("dpr is an option");
            return Err(dpr.error(&self.dpr.to_string()));
        }
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if self.scaled(side) > MAX_OUTPUT_SIDE {
                return Err(OptionError {
                    name,
                    got: side.to_string(),
                    expected: format!(
                        "at most {} at dpr {} (the box times dpr must stay within {MAX_OUTPUT_SIDE} \
                         pixels)",
                        (MAX_OUTPUT_SIDE as f64 / self.dpr as f64).floor(),
                        self.dpr
                    ),
                });
            }
        }
        Ok(())
    }

    fn scaled(&self, side: u32) -> u32 {
        (side as f64 * self.dpr as f64).round().min(u32::MAX as f64) as u32
    }

    /// The box and fit to ask the resizer for before the source's size is known. With an
    /// automatic side the picture keeps its aspect ratio, so every fit is `contain`, with
    /// the automatic side as large as allowed.
    pub fn initial_box(&self) -> (u32, u32, Fit) {
        let (w, h) = (self.scaled(self.width), self.scaled(self.height));
        match (w, h) {
            (0, 0) => (self.scaled(DEFAULT_SIDE), self.scaled(DEFAULT_SIDE), self.fit),
            (0, h) => (MAX_OUTPUT_SIDE, h, Fit::Contain),
            (w, 0) => (w, MAX_OUTPUT_SIDE, Fit::Contain),
            (w, h) => (w, h, self.fit),
        }
    }

    /// The box for when there is no source to take a shape from (a placeholder): an
    /// automatic side copies the other.
    pub fn shapeless_box(&self) -> (u32, u32) {
        let (w, h, _) = self.initial_box();
        match (self.width, self.height) {
            (0, h) if h > 0 => (self.scaled(h), self.scaled(h)),
            (w, 0) if w > 0 => (self.scaled(w), self.scaled(w)),
            _ => (w, h),
        }
    }

    /// The longest side the request names, after `dpr`; automatic sides aside.
    pub fn longest_given_side(&self) -> u32 {
        match (self.width, self.height) {
            (0, 0) => self.scaled(DEFAULT_SIDE),
            (w, h) => self.scaled(w.max(h)),
        }
    }

    /// The box to use for a `src_w` x `src_h` (displayed) source instead of the initial one,
    /// or `None` when the initial box is right: enlarging was allowed, or the initial box
    /// does not scale the source up.
    pub fn settle(&self, src_w: u32, src_h: u32) -> Option<(u32, u32, Fit)> {
        let (w, h, fit) = self.initial_box();
        if self.enlarge || src_w == 0 || src_h == 0 {
            return None;
        }
        let (sx, sy) = (w as f64 / src_w as f64, h as f64 / src_h as f64);
        match fit {
            // The picture keeps its size when the box would scale it up.
            Fit::Contain => (sx.min(sy) > 1.0).then_some((src_w, src_h, Fit::Contain)),
            // The box keeps its shape, shrunk until the crop is the source's own pixels.
            Fit::Cover => {
                let scale = sx.max(sy);
                let shrink = |side: u32| ((side as f64 / scale).round() as u32).max(1);
                (scale > 1.0).then(|| (shrink(w), shrink(h), Fit::Cover))
            }
            // Stretching: each side no larger than the source's.
            Fit::Fill => (w > src_w || h > src_h).then_some((w.min(src_w), h.min(src_h), Fit::Fill)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(width: u32, height: u32, fit: Fit, enlarge: bool, dpr: f32) -> Request {
        Request {
            width,
            height,
            fit,
            enlarge,
            dpr,
        }
    }

    #[test]
    fn automatic_sides_follow_the_aspect_ratio() {
        let r = req(400, 0, Fit::Cover, false, 1.0);
        assert_eq!(r.initial_box(), (400, MAX_OUTPUT_SIDE, Fit::Contain));
        let r = req(0, 300, Fit::Fill, false, 1.0);
        assert_eq!(r.initial_box(), (MAX_OUTPUT_SIDE, 300, Fit::Contain));
        let r = req(0, 0, Fit::Cover, false, 1.0);
        assert_eq!(r.initial_box(), (100, 100, Fit::Cover));
    }

    #[test]
    fn dpr_multiplies_the_box_within_the_limit() {
        assert_eq!(
            req(150, 100, Fit::Cover, true, 2.0).initial_box(),
            (300, 200, Fit::Cover)
        );
        assert_eq!(
            req(0, 0, Fit::Contain, true, 1.5).initial_box(),
            (150, 150, Fit::Contain)
        );
        assert_eq!(req(0, 300, Fit::Contain, true, 2.0).longest_given_side(), 600);
        assert_eq!(req(0, 300, Fit::Contain, true, 2.0).shapeless_box(), (600, 600));
        assert_eq!(req(120, 80, Fit::Cover, true, 1.0).shapeless_box(), (120, 80));
        assert!(req(100, 100, Fit::Contain, true, 4.0).validate().is_ok());
        assert!(req(100, 100, Fit::Contain, true, 4.5).validate().is_err());
        assert!(req(100, 100, Fit::Contain, true, 0.5).validate().is_err());
        assert!(req(2000, 0, Fit::Contain, true, 3.0).validate().is_err());
    }

    #[test]
    fn small_sources_keep_their_size_unless_enlarging() {
        // contain: 1000x1000 into 2000x2000 stays 1000x1000.
        let r = req(2000, 2000, Fit::Contain, false, 1.0);
        assert_eq!(r.settle(1000, 1000), Some((1000, 1000, Fit::Contain)));
        assert_eq!(req(2000, 2000, Fit::Contain, true, 1.0).settle(1000, 1000), None);
        // A large source is untouched.
        assert_eq!(r.settle(4000, 3000), None);
        // cover keeps the box's shape at the source's resolution.
        let r = req(400, 200, Fit::Cover, false, 1.0);
        assert_eq!(r.settle(300, 300), Some((300, 150, Fit::Cover)));
        assert_eq!(r.settle(800, 300), None);
        // fill clamps each side.
        let r = req(400, 200, Fit::Fill, false, 1.0);
        assert_eq!(r.settle(300, 300), Some((300, 200, Fit::Fill)));
        // An automatic side never enlarges either.
        let r = req(400, 0, Fit::Contain, false, 1.0);
        assert_eq!(r.settle(200, 100), Some((200, 100, Fit::Contain)));
        assert_eq!(r.settle(800, 100), None);
    }
}
