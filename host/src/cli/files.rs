//! What a batch command reads and where it writes: the inputs (files, directories, `-` for
//! stdin) expanded into images, and each image's output path under `-o DIR`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use resizer_core::OutputFormat;

/// Extensions a directory walk picks up; files named on the command line are always read.
const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "apng", "gif", "webp", "bmp", "dib", "tif", "tiff", "ico",
];

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

    /// Where its thumbnail goes under `dir`, in `format`.
    pub fn output(&self, dir: &Path, format: OutputFormat) -> PathBuf {
        dir.join(self.relative.with_extension(format.name()))
    }
}

/// Expands the command line's inputs. A path that does not exist becomes an item that fails
/// when read, so one bad argument does not stop the rest.
pub fn collect(inputs: &[PathBuf], recursive: bool) -> anyhow::Result<Vec<Item>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_keep_their_structure_and_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        for name in ["a.jpg", "a.png", "notes.txt", ".hidden.png", "sub/b.gif"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let flat = collect(&[dir.path().to_path_buf()], false).unwrap();
        let names: Vec<_> = flat.iter().map(|i| i.relative.clone()).collect();
        assert_eq!(names, [PathBuf::from("a"), PathBuf::from("a-2")]);
        let deep = collect(&[dir.path().to_path_buf()], true).unwrap();
        let out = deep[2].output(Path::new("out"), OutputFormat::Png);
        assert_eq!(out, Path::new("out/sub/b.png"));
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(format_of(Path::new("x.JPG")), Some(OutputFormat::Jpeg));
        assert_eq!(format_of(Path::new("x.webp")), Some(OutputFormat::Webp));
        assert_eq!(format_of(Path::new("x.tiff")), None);
        assert_eq!(format_of(Path::new("x")), None);
    }
}
