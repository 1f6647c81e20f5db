//! What a batch command reads and where it writes: the inputs (files, directories, `-` for
//! stdin) expanded into images, each image's output path, and the one way a thumbnail reaches
//! disk ([`Outputs::write`]), which never writes over an input and never over an existing file
//! without `--overwrite`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use resizer_core::OutputFormat;

/// Extensions a directory walk picks up; files named on the command line are always read.
const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "webp", "bmp", "dib", "tif", "tiff", "ico",
];

/// Every format a thumbnail can come out in: the extensions it may be written under.
const OUTPUT_FORMATS: [OutputFormat; 5] = [
    OutputFormat::Png,
    OutputFormat::Jpeg,
    OutputFormat::Webp,
    OutputFormat::Avif,
    OutputFormat::Gif,
];

/// The default output directory of `thumb` and `batch`, under the working directory.
pub const DEFAULT_OUTPUT_DIR: &str = "thumbs";

/// A mistake in the command line (a missing input, an `-o` naming no format, an output that
/// would write over an input or an existing file): nothing was made, and the exit code is 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns a [`UsageError`] from the enclosing function.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::cli::files::UsageError(format!($($arg)*)).into())
    };
}
pub(crate) use usage;

/// One image to make a thumbnail of.
#[derive(Debug, Clone)]
pub struct Item {
    /// As the user named it (for messages).
    pub label: String,
    pub source: ItemSource,
    /// Its output path under the output directory, without an extension: the file's stem,
    /// under the directories between it and the directory argument it was found in.
    pub relative: PathBuf,
}

#[derive(Debug, Clone)]
pub enum ItemSource {
    Path(PathBuf),
    /// Read from stdin before the work starts.
    Stdin(Vec<u8>),
}

impl Item {
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        match &self.source {
            ItemSource::Path(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
            ItemSource::Stdin(bytes) => Ok(bytes.clone()),
        }
    }

    /// The file name a server sees for it.
    pub fn file_name(&self) -> String {
        match &self.source {
            ItemSource::Path(p) => p
                .file_name()
                .map_or("image".into(), |n| n.to_string_lossy().into_owned()),
            ItemSource::Stdin(_) => "stdin".into(),
        }
    }

    /// Where its thumbnail goes under `dir`, in `format`: the extension is appended, so
    /// `my.photo` becomes `my.photo.jpg` (replacing it would make `my.jpg`, which another
    /// input's thumbnail could also be).
    pub fn output(&self, dir: &Path, format: OutputFormat) -> PathBuf {
        let mut name = self.relative.clone().into_os_string();
        name.push(".");
        name.push(extension(format));
        dir.join(name)
    }
}

/// The extension a thumbnail in `format` is written under (`jpg` for JPEG).
pub fn extension(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Jpeg => "jpg",
        other => other.name(),
    }
}

/// The output extensions, for messages: `.png, .jpg (or .jpeg), .webp, .avif or .gif`.
pub fn extensions_list() -> &'static str {
    ".png, .jpg (or .jpeg), .webp, .avif or .gif"
}

/// Where `thumb` writes: stdout, exactly one file (`-o FILE`, one input), or a directory.
#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    File(PathBuf),
    Dir(PathBuf),
}

impl Target {
    /// `-o` as given, for `single` (one input file) or not. A usage error for stdout with
    /// several inputs, and for a file whose extension names no output format.
    pub fn new(output: &Path, single: bool) -> anyhow::Result<Target> {
        if output.as_os_str() == "-" {
            if !single {
                usage!("-o - (stdout) takes one input file, not several or a directory");
            }
            return Ok(Target::Stdout);
        }
        let text = output.as_os_str().to_string_lossy();
        let dir_name = text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR);
        if !single || dir_name || output.is_dir() {
            return Ok(Target::Dir(output.to_path_buf()));
        }
        if format_of(output).is_none() {
            match output.extension() {
                Some(ext) => usage!(
                    "-o {}: .{} is not an output format; use {} (or, for a directory, end the name with /)",
                    output.display(),
                    ext.to_string_lossy(),
                    extensions_list()
                ),
                None => usage!(
                    "-o {}: no extension naming an output format; use {} (or, for a directory, end the name with /)",
                    output.display(),
                    extensions_list()
                ),
            }
        }
        Ok(Target::File(output.to_path_buf()))
    }

    /// The directory to leave out of directory walks.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Target::Dir(dir) => Some(dir),
            _ => None,
        }
    }

    /// The path a thumbnail of `item` in `format` goes to (`None`: stdout); an error when
    /// `-o FILE`'s extension names another format than the one made.
    pub fn path(&self, item: &Item, format: OutputFormat) -> anyhow::Result<Option<PathBuf>> {
        match self {
            Target::Stdout => Ok(None),
            Target::Dir(dir) => Ok(Some(item.output(dir, format))),
            Target::File(path) => {
                let named = format_of(path);
                if named != Some(format) {
                    let why = if format == OutputFormat::Gif {
                        " (an animation kept by --animated)"
                    } else {
                        ""
                    };
                    anyhow::bail!(
                        "not writing {}: its extension says {} but the thumbnail of {} is {}{why}; \
                         name it {}",
                        path.display(),
                        named.map_or("no format", OutputFormat::name),
                        item.label,
                        format.name(),
                        path.with_extension(extension(format)).display()
                    );
                }
                Ok(Some(path.clone()))
            }
        }
    }

    /// Before any work: what this target would write over (see [`Outputs`]).
    pub fn check(&self, outputs: &Outputs, items: &[Item]) -> anyhow::Result<()> {
        match self {
            Target::Stdout => Ok(()),
            Target::File(path) => outputs.check_file(path),
            Target::Dir(dir) => outputs.check_dir(items, dir),
        }
    }
}

/// Refuses (as a usage error) an input path that does not exist, before anything is read.
pub fn check_inputs(inputs: &[PathBuf]) -> anyhow::Result<()> {
    for input in inputs {
        if input.as_os_str() != "-" && std::fs::metadata(input).is_err() {
            usage!("input {} does not exist", input.display());
        }
    }
    Ok(())
}

/// Expands the command line's inputs. A directory walk skips `exclude` (the output
/// directory, so a second `--recursive` run does not make thumbnails of thumbnails).
pub fn collect(inputs: &[PathBuf], recursive: bool, exclude: Option<&Path>) -> anyhow::Result<Vec<Item>> {
    let exclude = exclude.and_then(|p| std::fs::canonicalize(p).ok());
    let mut items = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            items.push(Item {
                label: "-".into(),
                source: ItemSource::Stdin(bytes),
                relative: PathBuf::from("stdin"),
            });
        } else if input.is_dir() {
            let depth = if recursive { usize::MAX } else { 1 };
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(input)
                .max_depth(depth)
                .into_iter()
                .filter_entry(|e| {
                    e.depth() == 0
                        || !e.file_type().is_dir()
                        || exclude.is_none()
                        || std::fs::canonicalize(e.path()).ok() != exclude
                })
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() && is_image_name(e.path()))
                .map(walkdir::DirEntry::into_path)
                .collect();
            found.sort();
            items.extend(found.into_iter().map(|path| {
                let relative = path.strip_prefix(input).unwrap_or(&path).with_extension("");
                Item {
                    label: path.display().to_string(),
                    source: ItemSource::Path(path),
                    relative,
                }
            }));
        } else {
            let stem = input.file_stem().map_or_else(|| "image".into(), PathBuf::from);
            items.push(Item {
                label: input.display().to_string(),
                source: ItemSource::Path(input.clone()),
                relative: stem,
            });
        }
    }
    dedupe_outputs(&mut items);
    Ok(items)
}

fn is_image_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    !hidden && ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// `a.jpg` and `a.png` side by side would write the same thumbnail: later ones get `-2`, `-3`.
fn dedupe_outputs(items: &mut [Item]) {
    let mut seen = std::collections::HashSet::new();
    for item in items {
        let base = item.relative.clone();
        let mut n = 1;
        while !seen.insert(item.relative.clone()) {
            n += 1;
            let name = format!("{}-{n}", base.file_name().unwrap_or_default().to_string_lossy());
            item.relative = base.with_file_name(name);
        }
    }
}

/// The format an output file name asks for, from its extension.
pub fn format_of(path: &Path) -> Option<OutputFormat> {
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    OutputFormat::parse(if ext == "jpg" { "jpeg" } else { &ext })
}

/// The format a `Content-Type` names (`image/jpeg`, parameters ignored).
pub fn format_of_mime(content_type: &str) -> Option<OutputFormat> {
    let mime = content_type.split(';').next()?.trim();
    OUTPUT_FORMATS
        .into_iter()
        .find(|f| f.mime_type().eq_ignore_ascii_case(mime))
}

/// The format encoded bytes are, from their magic numbers; `None` when they are none of the
/// output formats (or an AVIF whose `ftyp` brand is not `avif`/`avis`).
pub fn sniff(bytes: &[u8]) -> Option<OutputFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(OutputFormat::Png)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(OutputFormat::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(OutputFormat::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(OutputFormat::Webp)
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" && matches!(&bytes[8..12], b"avif" | b"avis") {
        Some(OutputFormat::Avif)
    } else {
        None
    }
}

/// The format of a produced thumbnail as its maker says, checked against its bytes where
/// they are recognisable: the extension it is written under must be what it is.
pub fn produced_format(said: OutputFormat, bytes: &[u8]) -> anyhow::Result<OutputFormat> {
    match sniff(bytes) {
        Some(seen) if seen != said => anyhow::bail!(
            "the thumbnail was reported as {} but its bytes are {}; not written",
            said.name(),
            seen.name()
        ),
        _ => Ok(said),
    }
}

/// Where a run's thumbnails may go: never over one of its inputs, and over an existing file
/// only with `--overwrite`.
#[derive(Debug)]
pub struct Outputs {
    /// The inputs read from files, canonicalized.
    inputs: HashSet<PathBuf>,
    overwrite: bool,
}

impl Outputs {
    pub fn new(items: &[Item], overwrite: bool) -> Self {
        let inputs = items
            .iter()
            .filter_map(|item| match &item.source {
                ItemSource::Path(p) => std::fs::canonicalize(p).ok(),
                ItemSource::Stdin(_) => None,
            })
            .collect();
        Outputs { inputs, overwrite }
    }

    /// Whether `path` is (through `.`, `..` or symlinks) one of the run's inputs.
    pub fn is_input(&self, path: &Path) -> bool {
        std::fs::canonicalize(path).is_ok_and(|c| self.inputs.contains(&c))
    }

    /// Before any work: `-o FILE` must not be an input, nor an existing file without
    /// `--overwrite`.
    pub fn check_file(&self, path: &Path) -> anyhow::Result<()> {
        if self.is_input(path) {
            usage!(
                "the output {} is an input of this run; it is never written over, even with --overwrite",
                path.display()
            );
        }
        if !self.overwrite && path.symlink_metadata().is_ok() {
            usage!(
                "the output {} already exists; give --overwrite to replace it",
                path.display()
            );
        }
        Ok(())
    }

    /// Before any work: no thumbnail written into `dir` may land on an input, whatever
    /// format it comes out in (that is known only once it is made, so every output
    /// extension counts).
    pub fn check_dir(&self, items: &[Item], dir: &Path) -> anyhow::Result<()> {
        if dir.exists() && !dir.is_dir() {
            usage!(
                "the output directory {} exists and is not a directory",
                dir.display()
            );
        }
        for item in items {
            for format in OUTPUT_FORMATS {
                let out = item.output(dir, format);
                if self.is_input(&out) {
                    usage!(
                        "the thumbnail of {} could be written to {}, which is an input of this run; \
                         choose an -o directory that holds no inputs",
                        item.label,
                        out.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// Writes `bytes` to `path`: into a temporary file beside it, then moved into place.
    /// Without `--overwrite` the move is a hard link, which fails if `path` exists by then
    /// (so a file that appears meanwhile is not clobbered either); with it, a rename. An
    /// input of the run is never written over.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        if self.is_input(path) {
            anyhow::bail!(
                "{} is an input of this run; not writing over it, even with --overwrite",
                path.display()
            );
        }
        if !self.overwrite && path.symlink_metadata().is_ok() {
            anyhow::bail!(
                "{} already exists; give --overwrite to replace it",
                path.display()
            );
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let (tmp, mut file) = temp_file(parent, path)?;
        let placed = file
            .write_all(bytes)
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", tmp.display()))
            .and_then(|()| {
                drop(file);
                self.place(&tmp, path, bytes)
            });
        if !(placed.is_ok() && self.overwrite) {
            // Linked (or failed): the temporary name goes; a rename has already moved it.
            let _ = std::fs::remove_file(&tmp);
        }
        placed
    }

    fn place(&self, tmp: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        if self.overwrite {
            return std::fs::rename(tmp, path).with_context(|| format!("writing {}", path.display()));
        }
        match std::fs::hard_link(tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "{} already exists; give --overwrite to replace it",
                path.display()
            ),
            // A file system without hard links: create the file only if it is still absent.
            Err(_) => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                            "{} already exists; give --overwrite to replace it",
                            path.display()
                        ),
                        _ => anyhow::Error::new(e).context(format!("writing {}", path.display())),
                    })?;
                f.write_all(bytes)
                    .with_context(|| format!("writing {}", path.display()))
            }
        }
    }
}

/// A new, hidden temporary file in `dir` named after `path`.
fn temp_file(dir: &Path, path: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "thumbnail".into(), |n| n.to_string_lossy().into_owned());
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.edgethumb-tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating a file in {}", dir.display())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_keep_their_structure_and_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        for name in [
            "a.jpg",
            "a.png",
            "notes.txt",
            ".hidden.png",
            "sub/b.gif",
            "my.photo.png",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let flat = collect(&[dir.path().to_path_buf()], false, None).unwrap();
        let names: Vec<_> = flat.iter().map(|i| i.relative.clone()).collect();
        assert_eq!(
            names,
            [
                PathBuf::from("a"),
                PathBuf::from("a-2"),
                PathBuf::from("my.photo")
            ]
        );
        assert_eq!(
            flat[2].output(Path::new("out"), OutputFormat::Jpeg),
            Path::new("out/my.photo.jpg")
        );
        let deep = collect(&[dir.path().to_path_buf()], true, None).unwrap();
        let out = deep[3].output(Path::new("out"), OutputFormat::Png);
        assert_eq!(out, Path::new("out/sub/b.png"));
        // The output directory is not walked.
        let skipped = collect(&[dir.path().to_path_buf()], true, Some(&dir.path().join("sub"))).unwrap();
        assert_eq!(skipped.len(), 3);
    }

    #[test]
    fn formats_come_from_extensions_mime_types_and_bytes() {
        assert_eq!(format_of(Path::new("x.JPG")), Some(OutputFormat::Jpeg));
        assert_eq!(format_of(Path::new("x.webp")), Some(OutputFormat::Webp));
        assert_eq!(format_of(Path::new("x.tiff")), None);
        assert_eq!(format_of(Path::new("x")), None);
        assert_eq!(format_of_mime("image/gif"), Some(OutputFormat::Gif));
        assert_eq!(format_of_mime("image/jpeg; q=1"), Some(OutputFormat::Jpeg));
        assert_eq!(format_of_mime("application/json"), None);
        assert_eq!(sniff(b"GIF89a...."), Some(OutputFormat::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(OutputFormat::Webp));
        assert_eq!(sniff(b"\0\0\0\x1cftypavif"), Some(OutputFormat::Avif));
        assert_eq!(sniff(b"hello"), None);
        assert!(produced_format(OutputFormat::Png, b"GIF89a").is_err());
        assert_eq!(extension(OutputFormat::Jpeg), "jpg");
    }

    #[test]
    fn writes_never_replace_inputs_or_existing_files_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.png");
        std::fs::write(&input, b"input").unwrap();
        let items = collect(std::slice::from_ref(&input), false, None).unwrap();
        let outputs = Outputs::new(&items, false);
        let dotted = dir.path().join(".").join("in.png");
        assert!(outputs.write(&dotted, b"thumb").is_err());
        assert!(outputs.check_file(&dotted).is_err());
        let out = dir.path().join("t/out.png");
        outputs.write(&out, b"one").unwrap();
        assert!(outputs.write(&out, b"two").is_err());
        assert_eq!(std::fs::read(&out).unwrap(), b"one");

        let overwriting = Outputs::new(&items, true);
        overwriting.write(&out, b"two").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        assert!(overwriting.write(&input, b"thumb").is_err());
        assert_eq!(std::fs::read(&input).unwrap(), b"input");
        assert!(overwriting.check_dir(&items, dir.path()).is_err());
        assert!(overwriting.check_dir(&items, &dir.path().join("t")).is_ok());
        // No temporary files are left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("t")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
