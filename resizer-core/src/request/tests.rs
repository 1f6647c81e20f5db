use super::*;
use crate::{ImageFormat, ImageInfo};

fn parse(pairs: &[(&str, &str)]) -> Result<Request, OptionError> {
    Raw::from_pairs(pairs.iter().copied()).parse()
}

#[test]
fn nothing_given_is_the_default_box_and_auto() {
    let r = parse(&[]).unwrap();
    assert_eq!(r, Request::default());
    assert_eq!((r.width, r.height, r.format), (100, 100, Format::Auto));
    assert!(r.canonical().is_empty());
}

#[test]
fn one_side_given_makes_the_other_automatic() {
    assert_eq!(
        parse(&[("width", "400")]).map(|r| (r.width, r.height)),
        Ok((400, 0))
    );
    assert_eq!(
        parse(&[("height", " 30 ")]).map(|r| (r.width, r.height)),
        Ok((0, 30))
    );
    let err = parse(&[("width", "0"), ("height", "0")]).unwrap_err();
    assert_eq!(err.name, "height");
    assert!(err.to_string().contains("both automatic"), "{err}");
}

#[test]
fn each_bad_value_names_its_option() {
    for (name, bad) in [
        ("width", "4097"),
        ("width", "-1"),
        ("height", "1.5"),
        ("fit", "squash"),
        ("format", "tiff"),
        ("quality", "0"),
        ("quality", "101"),
        ("enlarge", "yes"),
        ("dpr", "0.5"),
        ("dpr", "4.5"),
        ("gravity", "focus:2,0"),
        ("animated", "maybe"),
    ] {
        let err = parse(&[(name, bad)]).unwrap_err();
        assert_eq!((err.name, err.got.as_str()), (name, bad), "{err}");
        assert!(err.to_string().starts_with(&format!("{name} must be ")), "{err}");
    }
}

#[test]
fn the_box_times_dpr_stays_within_the_limit() {
    let err = parse(&[("width", "2000"), ("dpr", "3")]).unwrap_err();
    assert_eq!(err.name, "width");
    assert!(err.expected.contains("1365"), "{err}");
    assert!(parse(&[("width", "1024"), ("dpr", "4")]).is_ok());
}

#[test]
fn later_sources_win() {
    let query = Raw::from_pairs([("width", "300"), ("format", "png")]);
    let mut body = Raw::default();
    assert!(body.set("width", "120"));
    assert!(!body.set("widht", "120"));
    let r = body.over(query).parse().unwrap();
    assert_eq!((r.width, r.format), (120, Format::Png));
}

#[test]
fn the_canonical_form_reads_back_to_the_same_request() {
    let cases: &[&[(&str, &str)]] = &[
        &[("width", "400")],
        &[("height", "250"), ("dpr", "1.5"), ("enlarge", "true")],
        &[
            ("width", "120"),
            ("height", "80"),
            ("fit", "cover"),
            ("gravity", "focus:0.25,0.75"),
        ],
        &[
            ("format", "jpg"),
            ("quality", "55"),
            ("animated", "true"),
            ("gravity", "NE"),
        ],
        &[("width", "100"), ("height", "100"), ("fit", "fill")],
    ];
    for pairs in cases {
        let r = parse(pairs).unwrap();
        let canonical = r.canonical();
        let again = Raw::from_pairs(canonical.iter().map(|(n, v)| (*n, v.as_str())))
            .parse()
            .unwrap();
        assert_eq!(again, r, "{pairs:?} -> {canonical:?}");
        assert_eq!(again.canonical(), canonical);
    }
    let r = parse(&[("gravity", "focus:0.5,0.25"), ("fit", "cover")]).unwrap();
    assert_eq!(r.canonical_query(), "fit=cover&gravity=focus%3A0.5%2C0.25");
}

#[test]
fn accept_names_formats_exactly_and_with_nonzero_quality() {
    let a = Accepts::from_header(Some("image/avif,image/webp;q=0.9,*/*;q=0.8"));
    assert_eq!(
        a,
        Accepts {
            webp: true,
            avif: true
        }
    );
    assert_eq!(Accepts::from_header(Some("image/*")), Accepts::default());
    assert_eq!(Accepts::from_header(Some("image/webp;q=0")), Accepts::default());
    assert_eq!(Accepts::from_header(None), Accepts::default());
    assert_eq!(a.for_format(Format::Png), Accepts::default());
}

fn info(format: ImageFormat, has_alpha: bool, frame_count: u32) -> ImageInfo {
    ImageInfo {
        format,
        width: 4000,
        height: 3000,
        has_alpha,
        frame_count,
        orientation: 1,
    }
}

#[test]
fn auto_never_picks_a_format_that_would_fail() {
    use make::choose_format;
    let auto = Request::default();
    let avif_only = Accepts {
        webp: false,
        avif: true,
    };
    let photo = info(ImageFormat::Jpeg, false, 1);
    assert_eq!(
        choose_format(&auto, avif_only, Some(&photo), Some((400, 300))),
        OutputFormat::Avif
    );
    // Over AVIF's 2 MP limit: the next format that fits, never a refusal.
    assert_eq!(
        choose_format(&auto, avif_only, Some(&photo), Some((2000, 1500))),
        OutputFormat::Jpeg
    );
    let logo = info(ImageFormat::Png, true, 1);
    assert_eq!(
        choose_format(&auto, avif_only, Some(&logo), Some((2000, 1500))),
        OutputFormat::Png
    );
    let both = Accepts {
        webp: true,
        avif: true,
    };
    assert_eq!(
        choose_format(&auto, both, Some(&photo), Some((2000, 1500))),
        OutputFormat::Webp
    );
    assert_eq!(
        choose_format(&auto, Accepts::default(), None, None),
        OutputFormat::Jpeg
    );
    // Animations: WebP where read, else GIF; without animated=true, a still.
    let anim = info(ImageFormat::Gif, true, 12);
    let animated = Request {
        animated: true,
        ..auto
    };
    assert_eq!(
        choose_format(&animated, both, Some(&anim), Some((100, 75))),
        OutputFormat::Webp
    );
    assert_eq!(
        choose_format(&animated, avif_only, Some(&anim), Some((100, 75))),
        OutputFormat::Gif
    );
    assert_eq!(
        choose_format(&auto, Accepts::default(), Some(&anim), Some((100, 75))),
        OutputFormat::Png
    );
    // An explicit format is what is made.
    let webp = Request {
        format: Format::Webp,
        ..animated
    };
    assert_eq!(
        choose_format(&webp, Accepts::default(), Some(&anim), None),
        OutputFormat::Webp
    );
}
