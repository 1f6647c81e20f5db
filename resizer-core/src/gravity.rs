//! Where a `cover` crop is taken: a compass point, a focus point, or `smart`, which finds the
//! part of the picture with the most going on ([`crate::smartcrop`]).
//!
//! Every placement but `smart` is a focus point in fractions of the displayed picture: the
//! compass points are its edges and corners, so `west` is (0, ½). The crop is centred on the
//! point as far as the picture allows, as imgproxy's `fp` and thumbor's focal points do.

use image::metadata::Orientation;

/// Where a `cover` crop is taken from; other fits ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Gravity {
    #[default]
    Center,
    North,
    NorthEast,
    East,
    SouthEast,
    South,
    SouthWest,
    West,
    NorthWest,
    /// A point of the displayed picture, as fractions (0 to 1) of its width and height.
    Focus {
        x: f32,
        y: f32,
    },
    /// The crop that keeps the most detail, colour and skin tone.
    Smart,
}

const COMPASS: [(&str, Gravity); 9] = [
    ("center", Gravity::Center),
    ("north", Gravity::North),
    ("north-east", Gravity::NorthEast),
    ("east", Gravity::East),
    ("south-east", Gravity::SouthEast),
    ("south", Gravity::South),
    ("south-west", Gravity::SouthWest),
    ("west", Gravity::West),
    ("north-west", Gravity::NorthWest),
];

impl Gravity {
    /// `center`, a compass point (`north`, `north-east`, ... or `n`, `ne`, ...), `smart`, or
    /// `focus:x,y` with fractions from 0 to 1. `None` for anything else.
    pub fn parse(text: &str) -> Option<Gravity> {
        let text = text.trim().to_ascii_lowercase();
        if let Some(point) = text.strip_prefix("focus:") {
            let (x, y) = point.split_once(',')?;
            let fraction = |s: &str| s.trim().parse::<f32>().ok().filter(|v| (0.0..=1.0).contains(v));
            return Some(Gravity::Focus {
                x: fraction(x)?,
                y: fraction(y)?,
            });
        }
        let text = match text.as_str() {
            "centre" | "c" => "center",
            "n" => "north",
            "ne" | "northeast" => "north-east",
            "e" => "east",
            "se" | "southeast" => "south-east",
            "s" => "south",
            "sw" | "southwest" => "south-west",
            "w" => "west",
            "nw" | "northwest" => "north-west",
            other => other,
        };
        if text == "smart" {
            return Some(Gravity::Smart);
        }
        COMPASS.iter().find(|(name, _)| *name == text).map(|&(_, g)| g)
    }

    /// The canonical text, which [`Gravity::parse`] reads back.
    pub fn name(self) -> String {
        match self {
            Gravity::Focus { x, y } => format!("focus:{x},{y}"),
            Gravity::Smart => "smart".into(),
            compass => COMPASS
                .iter()
                .find(|(_, g)| *g == compass)
                .map_or("center", |(name, _)| name)
                .into(),
        }
    }

    /// The focus point in fractions of the displayed picture; `None` for `smart`.
    pub fn focus(self) -> Option<(f64, f64)> {
        Some(match self {
            Gravity::Center => (0.5, 0.5),
            Gravity::North => (0.5, 0.0),
            Gravity::NorthEast => (1.0, 0.0),
            Gravity::East => (1.0, 0.5),
            Gravity::SouthEast => (1.0, 1.0),
            Gravity::South => (0.5, 1.0),
            Gravity::SouthWest => (0.0, 1.0),
            Gravity::West => (0.0, 0.5),
            Gravity::NorthWest => (0.0, 0.0),
            Gravity::Focus { x, y } => (x.clamp(0.0, 1.0) as f64, y.clamp(0.0, 1.0) as f64),
            Gravity::Smart => return None,
        })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Gravity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Gravity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Gravity::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown gravity {text:?}")))
    }
}

impl Gravity {
    pub fn is_center(&self) -> bool {
        *self == Gravity::Center
    }
}

/// A point of the displayed picture, in fractions, as a point of the stored one: the crop is
/// taken before the small result is turned.
pub fn to_stored(orientation: Orientation, (x, y): (f64, f64)) -> (f64, f64) {
    use Orientation as O;
    match orientation {
        O::NoTransforms => (x, y),
        O::Rotate90 => (y, 1.0 - x),
        O::Rotate180 => (1.0 - x, 1.0 - y),
        O::Rotate270 => (1.0 - y, x),
        O::FlipHorizontal => (1.0 - x, y),
        O::FlipVertical => (x, 1.0 - y),
        O::Rotate90FlipH => (y, x),
        O::Rotate270FlipH => (1.0 - y, 1.0 - x),
    }
}

/// The start of a crop of length `crop` out of `extent`, centred on `focus` (a fraction of
/// `extent`) as far as the picture allows.
pub fn place(extent: f64, crop: f64, focus: f64) -> f64 {
    (focus * extent - crop / 2.0).clamp(0.0, (extent - crop).max(0.0))
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, GenericImageView, RgbImage};

    use super::*;

    #[test]
    fn every_value_parses_back_from_its_name() {
        let all = COMPASS
            .iter()
            .map(|&(_, g)| g)
            .chain([Gravity::Smart, Gravity::Focus { x: 0.25, y: 1.0 }]);
        for g in all {
            assert_eq!(Gravity::parse(&g.name()), Some(g), "{}", g.name());
        }
        assert_eq!(Gravity::parse("NE"), Some(Gravity::NorthEast));
        assert_eq!(Gravity::parse("centre"), Some(Gravity::Center));
        for bad in [
            "",
            "up",
            "focus:",
            "focus:0.5",
            "focus:2,0",
            "focus:x,y",
            "focus:-0.1,0.5",
        ] {
            assert_eq!(Gravity::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn placement_is_centred_on_the_focus_and_stays_inside() {
        assert_eq!(place(300.0, 100.0, 0.5), 100.0);
        assert_eq!(place(300.0, 100.0, 0.0), 0.0);
        assert_eq!(place(300.0, 100.0, 1.0), 200.0);
        assert_eq!(place(300.0, 100.0, 0.3), 40.0);
        assert_eq!(place(100.0, 100.0, 0.9), 0.0);
    }

    #[test]
    fn stored_points_follow_every_orientation() {
        // A stored 40x20 image, black but for one white pixel; turning it must put the pixel
        // where to_stored says the displayed point came from.
        let (sx, sy) = (30u32, 5u32);
        let mut stored = RgbImage::new(40, 20);
        stored.put_pixel(sx, sy, image::Rgb([255, 255, 255]));
        for exif in 1..=8 {
            let o = Orientation::from_exif(exif).unwrap();
            let mut shown = DynamicImage::ImageRgb8(stored.clone());
            shown.apply_orientation(o);
            let (w, h) = shown.dimensions();
            let (dx, dy) = (0..w)
                .flat_map(|x| (0..h).map(move |y| (x, y)))
                .find(|&(x, y)| shown.get_pixel(x, y)[0] == 255)
                .unwrap();
            // Pixel centres as fractions.
            let centre = |p: u32, len: u32| (p as f64 + 0.5) / len as f64;
            let (fx, fy) = to_stored(o, (centre(dx, w), centre(dy, h)));
            assert!(
                (fx - centre(sx, 40)).abs() < 1e-9 && (fy - centre(sy, 20)).abs() < 1e-9,
                "{o:?}"
            );
        }
    }
}
