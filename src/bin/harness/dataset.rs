//! Validation inputs: an ImageFolder tree `VAL_DIR/<class name>/*` or a flat folder.

use std::path::{Path, PathBuf};

pub struct Sample {
    pub path: PathBuf,
    /// The class folder's name, if the layout has one.
    pub label: Option<String>,
}

const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Files in sorted order; images directly in `dir` are unlabelled, those one level down are
/// labelled with their folder's name (deeper files keep the first-level folder as label).
pub fn scan(dir: &Path) -> std::io::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            let label = entry.file_name().map(|n| n.to_string_lossy().into_owned());
            walk(&entry, &label, &mut out)?;
        } else if is_image(&entry) {
            out.push(Sample {
                path: entry,
                label: None,
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, label: &Option<String>, out: &mut Vec<Sample>) -> std::io::Result<()> {
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            walk(&entry, label, out)?;
        } else if is_image(&entry) {
            out.push(Sample {
                path: entry,
                label: label.clone(),
            });
        }
    }
    Ok(())
}
