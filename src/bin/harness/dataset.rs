//! Validation inputs: an ImageFolder tree `VAL_DIR/<class name>/*`, a flat folder with a
//! labels CSV (`path,class`), and the deterministic per-class split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    /// Path relative to VAL_DIR, '/'-separated (the key `--compare` matches on).
    pub rel: String,
    /// The class folder's name (or the CSV's class), if the layout has one.
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

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Files in sorted order; images directly in `dir` are unlabelled, those one level down are
/// labelled with their folder's name (deeper files keep the first-level folder as label).
/// The order and the relative paths are those of tools/reference_predict.py.
pub fn scan(dir: &Path) -> std::io::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for entry in sorted_entries(dir)? {
        let name = file_name(&entry);
        if entry.is_dir() {
            walk(&entry, &name, &Some(name.clone()), &mut out)?;
        } else if is_image(&entry) {
            out.push(Sample {
                path: entry,
                rel: name,
                label: None,
            });
        }
    }
    Ok(out)
}

fn walk(
    dir: &Path,
    rel: &str,
    label: &Option<String>,
    out: &mut Vec<Sample>,
) -> std::io::Result<()> {
    for entry in sorted_entries(dir)? {
        let r = format!("{rel}/{}", file_name(&entry));
        if entry.is_dir() {
            walk(&entry, &r, label, out)?;
        } else if is_image(&entry) {
            out.push(Sample {
                path: entry,
                rel: r,
                label: label.clone(),
            });
        }
    }
    Ok(())
}

/// Splits one CSV line into fields (double quotes may enclose a field; `""` is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

const HEADER_WORDS: &[&str] = &[
    "path",
    "file",
    "filename",
    "file_name",
    "image",
    "image_path",
    "img",
    "name",
];

/// Reads a labels CSV (`path,class`, paths relative to `dir`, header optional). Rows keep the
/// file's order; an empty class means unlabelled. Missing files are kept (their calls fail and
/// are reported as errors).
pub fn from_labels(dir: &Path, csv: &Path) -> Result<Vec<Sample>, String> {
    let text = std::fs::read_to_string(csv)
        .map_err(|e| format!("cannot read labels file {}: {e}", csv.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let f = csv_fields(line);
        if f.len() < 2 {
            return Err(format!(
                "{} line {}: expected `path,class`, got {line:?}",
                csv.display(),
                i + 1
            ));
        }
        let rel = f[0].replace('\\', "/");
        if out.is_empty()
            && HEADER_WORDS.contains(&rel.to_ascii_lowercase().as_str())
            && !dir.join(&rel).is_file()
        {
            continue; // header
        }
        let rel = rel.trim_start_matches("./").to_owned();
        out.push(Sample {
            path: dir.join(&rel),
            rel,
            label: (!f[1].is_empty()).then(|| f[1].clone()),
        });
    }
    if out.is_empty() {
        return Err(format!("labels file {} has no rows", csv.display()));
    }
    Ok(out)
}

/// splitmix64: a tiny seeded PRNG (no crate needed), good enough to shuffle file lists.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by rejection (no modulo bias).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// A deterministic `frac` of each class: the class's files sorted by path, shuffled with a
/// Fisher-Yates driven by splitmix64(`seed`), the first ceil(frac * n) taken. Classes are
/// visited in sorted label order (unlabelled files form one group), so the same seed always
/// picks the same files. The result is in sorted label, then path order.
pub fn split(samples: Vec<Sample>, frac: f64, seed: u64) -> Vec<Sample> {
    let mut groups: BTreeMap<Option<String>, Vec<Sample>> = BTreeMap::new();
    for s in samples {
        groups.entry(s.label.clone()).or_default().push(s);
    }
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for (_, mut files) in groups {
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        for i in (1..files.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            files.swap(i, j);
        }
        let take = ((frac * files.len() as f64).ceil() as usize).min(files.len());
        let mut chosen: Vec<Sample> = files.into_iter().take(take).collect();
        chosen.sort_by(|a, b| a.rel.cmp(&b.rel));
        out.extend(chosen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(per_class: usize) -> Vec<Sample> {
        let mut v = Vec::new();
        for c in ["a", "b"] {
            for i in 0..per_class {
                v.push(Sample {
                    path: PathBuf::from(format!("/x/{c}/{i:03}.jpg")),
                    rel: format!("{c}/{i:03}.jpg"),
                    label: Some(c.into()),
                });
            }
        }
        v
    }

    #[test]
    fn split_takes_ceil_per_class_and_is_deterministic() {
        let a = split(samples(11), 0.2, 1);
        assert_eq!(a.len(), 6); // ceil(2.2) = 3 per class
        assert_eq!(
            a.iter().filter(|s| s.label.as_deref() == Some("a")).count(),
            3
        );
        assert_eq!(a, split(samples(11), 0.2, 1));
        // Input order does not matter.
        let mut rev = samples(11);
        rev.reverse();
        assert_eq!(a, split(rev, 0.2, 1));
        let others: Vec<_> = (2..10).map(|s| split(samples(11), 0.2, s)).collect();
        assert!(others.iter().any(|o| *o != a));
        assert_eq!(split(samples(4), 1.0, 7).len(), 8);
    }

    #[test]
    fn csv_quotes_and_header() {
        assert_eq!(csv_fields(r#""a,b.jpg", cls "#), ["a,b.jpg", "cls"]);
        assert_eq!(csv_fields(r#"x""y,z"#), ["xy", "z"]);
        assert_eq!(csv_fields(r#""x""y",z"#), ["x\"y", "z"]);
        let dir = std::env::temp_dir().join(format!("harness-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("labels.csv");
        std::fs::write(&csv, "path,class\n1.jpg,a\n./2.jpg,\n").unwrap();
        let s = from_labels(&dir, &csv).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].rel, "1.jpg");
        assert_eq!(s[0].label.as_deref(), Some("a"));
        assert_eq!(s[1].rel, "2.jpg");
        assert_eq!(s[1].label, None);
        std::fs::write(&csv, "1.jpg\n").unwrap();
        assert!(from_labels(&dir, &csv).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
