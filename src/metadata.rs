//! What a model file says about itself.
//!
//! A TorchScript file is a zip archive; `tools/export_torchscript.py` stores the class names,
//! the preprocessing and the output kind in it as a TorchScript extra file
//! (`<archive>/extra/ji_metadata.json`, `torch.jit.save(..., _extra_files=...)`), so a config
//! can be just `{"model_path": "model.pt"}`. The archive is read here directly, before
//! libtorch sees the file: tch does not expose extra files, reading a zip needs no C++, and the
//! same reading recognises the files that are not TorchScript at all (a training checkpoint,
//! a state dict, a pickled module) so the error can name the fix instead of libtorch's
//! "checkpoint file is corrupted".

use serde_json::{Map, Value};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The extra file's name (`_extra_files` key) written by tools/export_torchscript.py.
pub const METADATA_NAME: &str = "ji_metadata.json";
/// The metadata layout this library reads (`"version"` in the file).
const METADATA_VERSION: u64 = 1;
/// Config keys a model's metadata may set (besides the class names).
pub const METADATA_KEYS: &[&str] = &[
    "resize_mode",
    "resize_size",
    "crop_size",
    "mean",
    "std",
    "pillow_compat",
    "exif_transpose",
    "model_output",
];
/// The metadata keys that describe test-time preprocessing (each has an option of
/// tools/export_torchscript.py); a model and config that set none get libji's defaults.
pub const PREPROCESSING_KEYS: &[&str] = &[
    "resize_mode",
    "resize_size",
    "crop_size",
    "mean",
    "std",
    "pillow_compat",
    "exif_transpose",
];
/// libji's default preprocessing, written as tools/export_torchscript.py's options.
pub const DEFAULT_PREPROCESSING_OPTIONS: &str = "--resize-mode stretch --resize-size 224 \
     --crop-size 224 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225";
/// The exporter as a command run from the ji-rs checkout (the project's Python has torch).
const EXPORTER: &str = ".venv/bin/python tools/export_torchscript.py";
/// Larger metadata is not ours (146 Chinese names take about 6 KB).
const MAX_METADATA_BYTES: u64 = 16 << 20;

/// The description embedded in a model file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelMetadata {
    /// Class names in output order.
    pub class_names: Option<Vec<String>>,
    /// Config keys (a subset of [`METADATA_KEYS`]) with their values, in config syntax.
    pub config: Map<String, Value>,
}

/// What kind of file a `model_path` holds, as far as its first bytes and zip directory tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFileKind {
    /// A TorchScript archive (`code/` and `constants.pkl`).
    TorchScript,
    /// `torch.save(...)` of a state dict or a checkpoint dict (zip format, no code).
    SavedWeights,
    /// `torch.save(model)`: a pickled `nn.Module` (zip format, no TorchScript code).
    SavedModule,
    /// A bare Python pickle (`torch.save(..., _use_new_zipfile_serialization=False)`,
    /// `pickle.dump`): weights or a module.
    Pickle { module: bool },
    /// Neither a zip archive nor a pickle: no PyTorch file at all.
    NotArchive,
    /// Anything else (libtorch gets to say what is wrong).
    Unknown,
}

/// Entry names of a zip archive, or `None` when the file is not one.
fn zip_names(path: &Path) -> Option<(zip::ZipArchive<File>, Vec<String>)> {
    let file = File::open(path).ok()?;
    let archive = zip::ZipArchive::new(file).ok()?;
    let names = archive.file_names().map(str::to_owned).collect();
    Some((archive, names))
}

/// Pickled modules name their classes' modules (`torch.nn.modules.conv`, `torchvision.models`
/// ...) in the pickle; state dicts only name `collections.OrderedDict` and `torch._utils`.
fn pickle_has_module(bytes: &[u8]) -> bool {
    const NEEDLES: &[&[u8]] = &[b"torch.nn.modules", b"torchvision.models", b"timm.models"];
    NEEDLES
        .iter()
        .any(|n| bytes.windows(n.len()).any(|w| w == *n))
}

/// Recognises the file at `path` (never fails: unreadable files are `Unknown`).
pub fn sniff(path: &Path) -> ModelFileKind {
    if let Some((mut archive, names)) = zip_names(path) {
        let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
        if has("/constants.pkl") || names.iter().any(|n| n.contains("/code/")) {
            return ModelFileKind::TorchScript;
        }
        if let Some(pkl) = names.iter().find(|n| n.ends_with("/data.pkl")).cloned() {
            let mut bytes = Vec::new();
            let module = archive
                .by_name(&pkl)
                .ok()
                .and_then(|f| f.take(MAX_METADATA_BYTES).read_to_end(&mut bytes).ok())
                .is_some()
                && pickle_has_module(&bytes);
            return if module {
                ModelFileKind::SavedModule
            } else {
                ModelFileKind::SavedWeights
            };
        }
        return ModelFileKind::Unknown;
    }
    let mut head = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(4 << 20).read_to_end(&mut head);
    }
    // A pickle starts with PROTO (0x80) and a protocol number 2..=5.
    if head.len() > 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return ModelFileKind::Pickle {
            module: pickle_has_module(&head),
        };
    }
    if head.is_empty() || head.starts_with(b"PK") {
        // Empty, unreadable, or a zip that did not open: libtorch's message.
        return ModelFileKind::Unknown;
    }
    ModelFileKind::NotArchive
}

/// What an export command in a hint can be filled in from (see [`export_command`]).
#[derive(Clone, Debug, Default)]
pub struct ExportHint {
    /// The config that names the model: the command takes its class file and preprocessing
    /// with `--config`.
    pub config: Option<PathBuf>,
    /// The config names a class file (`"class_names_path"`).
    pub config_has_classes: bool,
    /// The config sets preprocessing keys ([`PREPROCESSING_KEYS`]).
    pub config_has_preprocessing: bool,
    /// The number of classes, when the class file is known.
    pub num_classes: Option<usize>,
}

/// An absolute path for a command (a relative one would depend on where it is run).
fn shown(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// The export command for `source` (`--arch ARCH ... --weights FILE` or `--pickled FILE`)
/// writing `out`, with every option the export and the model's use need: the class names
/// (`--config`, else `--classes CLASS_FILE`) and the preprocessing (the config's, else
/// libji's defaults written out, which the exporter requires); then what the placeholders
/// mean. Run from the ji-rs checkout.
pub fn export_command(source: &str, out: &Path, hint: &ExportHint) -> String {
    let mut cmd = format!("{EXPORTER} {source}");
    let mut notes = Vec::new();
    if source.contains("ARCH") {
        notes.push(
            "ARCH: a torchvision name such as resnet50, timm:NAME, or \
             path/to/your_model.py:factory for your own model code"
                .to_owned(),
        );
    }
    if source.contains(" N ") {
        notes.push("N: the number of classes".into());
    }
    if let Some(c) = &hint.config {
        cmd.push_str(&format!(" --config {}", shown(c)));
    }
    if hint.config.is_none() || !hint.config_has_classes {
        cmd.push_str(" --classes CLASS_FILE");
        notes.push(
            "CLASS_FILE: your class file (the training code's {'name': 0, ...} dict works)".into(),
        );
    }
    if hint.config.is_none() || !hint.config_has_preprocessing {
        cmd.push(' ');
        cmd.push_str(DEFAULT_PREPROCESSING_OPTIONS);
        notes.push(
            "the preprocessing options are libji's defaults: change them to what your \
             validation code does"
                .into(),
        );
    }
    cmd.push_str(&format!(" --out {}", out.display()));
    if notes.is_empty() {
        format!("`{cmd}` (from the ji-rs checkout)")
    } else {
        format!("`{cmd}` (from the ji-rs checkout; {})", notes.join("; "))
    }
}

/// The command that re-exports the TorchScript `model` with its class names embedded,
/// keeping the preprocessing its metadata records (`config`), or stating libji's defaults.
pub fn add_class_names_command(model: &Path, config: &Map<String, Value>) -> String {
    let out = model.with_file_name("model_with_classes.pt");
    let mut options = Vec::new();
    for key in PREPROCESSING_KEYS {
        let Some(v) = config.get(*key) else { continue };
        let value = match v {
            Value::Null => "none".to_owned(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.to_string().trim_matches('"').to_owned())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string().trim_matches('"').to_owned(),
        };
        options.push(format!("--{} {value}", key.replace('_', "-")));
    }
    let hint = ExportHint::default();
    if options.is_empty() {
        return export_command(&format!("--pickled {}", shown(model)), &out, &hint);
    }
    let cmd = format!(
        "{EXPORTER} --pickled {} --classes CLASS_FILE {} --out {}",
        shown(model),
        options.join(" "),
        out.display()
    );
    format!("`{cmd}` (from the ji-rs checkout; CLASS_FILE: your class file)")
}

/// For a file that is not TorchScript but something `tools/export_torchscript.py` turns into
/// TorchScript, the message that says so with the command to run; `None` otherwise.
pub fn not_torchscript_message(path: &Path) -> Option<String> {
    not_torchscript_message_with(path, &ExportHint::default())
}

/// [`not_torchscript_message`] with the command filled in from `hint`.
pub fn not_torchscript_message_with(path: &Path, hint: &ExportHint) -> Option<String> {
    let p = path.display();
    let out = path.with_file_name("model.pt");
    let weights_source = format!(
        "--arch ARCH --num-classes {} --weights {}",
        hint.num_classes.map_or("N".to_owned(), |n| n.to_string()),
        shown(path)
    );
    let weights = format!(
        "export it first: {}, then set \"model_path\" to {}",
        export_command(&weights_source, &out, hint),
        out.display()
    );
    let module = format!(
        "export it first: {} (your model's code must be importable: the file's folder is \
         added to the import path), then set \"model_path\" to {}",
        export_command(&format!("--pickled {}", shown(path)), &out, hint),
        out.display()
    );
    match sniff(path) {
        ModelFileKind::TorchScript | ModelFileKind::Unknown => None,
        ModelFileKind::SavedWeights => Some(format!(
            "{p} is a PyTorch checkpoint or state dict (torch.save of the weights), not a \
             TorchScript model: {weights}"
        )),
        ModelFileKind::SavedModule | ModelFileKind::Pickle { module: true } => Some(format!(
            "{p} is a pickled PyTorch model (torch.save(model)), not a TorchScript model: {module}"
        )),
        ModelFileKind::NotArchive => Some(format!(
            "{p} is not a loadable TorchScript model: TorchScript files are zip archives \
             written by torch.jit.save (or tools/export_torchscript.py), and this file is \
             neither that nor a PyTorch checkpoint (is \"model_path\" the right file?)"
        )),
        ModelFileKind::Pickle { module: false } => Some(format!(
            "{p} is a Python pickle (a checkpoint or state dict in torch's legacy format), not a \
             TorchScript model: {weights}"
        )),
    }
}

/// The model file's own problems, which come before anything read from it: a missing file,
/// or a checkpoint / state dict / pickled model where TorchScript belongs (with the export
/// command, filled in from `hint`).
pub fn check_model_file(path: &Path, hint: &ExportHint) -> crate::Result<()> {
    if !path.is_file() {
        return Err(crate::Error::ModelLoad(format!(
            "model file {} does not exist",
            path.display()
        )));
    }
    match not_torchscript_message_with(path, hint) {
        Some(msg) => Err(crate::Error::ModelLoad(msg)),
        None => Ok(()),
    }
}

/// Reads the metadata embedded in a TorchScript file. `Ok(None)`: the file is missing, is not
/// a zip archive, or has no metadata (the model load reports the first two). An error means
/// the metadata is present but unusable.
pub fn read(path: &Path) -> Result<Option<ModelMetadata>, String> {
    let Some((mut archive, names)) = zip_names(path) else {
        return Ok(None);
    };
    let wanted = format!("/extra/{METADATA_NAME}");
    let Some(entry) = names.iter().find(|n| n.ends_with(&wanted)) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    archive
        .by_name(entry)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            f.take(MAX_METADATA_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("cannot read {entry} in {}: {e}", path.display()))?;
    parse(&bytes)
        .map_err(|e| format!("{}: metadata {METADATA_NAME}: {e}", path.display()))
        .map(Some)
}

/// Parses the metadata JSON (see tools/export_torchscript.py).
pub fn parse(bytes: &[u8]) -> Result<ModelMetadata, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    match obj.get("version").and_then(Value::as_u64) {
        Some(METADATA_VERSION) => {}
        Some(n) => {
            return Err(format!(
                "version {n} is newer than this libji reads ({METADATA_VERSION}): update libji"
            ))
        }
        None => return Err("no \"version\" number".into()),
    }
    let class_names = match obj.get("class_names") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .enumerate()
                .map(|(i, n)| {
                    n.as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| format!("class_names[{i}] is not a non-empty string"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => return Err(format!("\"class_names\" is not an array: {other}")),
    };
    let mut config = Map::new();
    if let Some(c) = obj.get("config") {
        let c = c.as_object().ok_or("\"config\" is not an object")?;
        for (k, v) in c {
            if !METADATA_KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "unknown key \"{k}\" in \"config\" (this libji knows {})",
                    METADATA_KEYS.join(", ")
                ));
            }
            config.insert(k.clone(), v.clone());
        }
    }
    Ok(ModelMetadata {
        class_names,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let m = parse(
            r#"{"version": 1, "class_names": ["猫", "狗"], "config": {"mean": [0.5], "resize_mode": "pad_square"}}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.class_names.unwrap(), ["猫", "狗"]);
        assert_eq!(m.config["resize_mode"], "pad_square");
        assert!(parse(b"{}").unwrap_err().contains("version"));
        assert!(parse(br#"{"version": 9}"#)
            .unwrap_err()
            .contains("update libji"));
        assert!(parse(br#"{"version": 1, "config": {"thresh": 1}}"#)
            .unwrap_err()
            .contains("unknown key \"thresh\""));
        assert!(parse(br#"{"version": 1, "class_names": ["a", ""]}"#)
            .unwrap_err()
            .contains("class_names[1]"));
    }

    #[test]
    fn pickles_are_recognised() {
        let dir = std::env::temp_dir().join(format!("ji-sniff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("legacy.pth");
        std::fs::write(&p, b"\x80\x02\x8a\x0alegacy...collections\nOrderedDict\n").unwrap();
        assert_eq!(sniff(&p), ModelFileKind::Pickle { module: false });
        assert!(not_torchscript_message(&p).unwrap().contains("--weights"));
        std::fs::write(&p, b"\x80\x02ctorch.nn.modules.conv\nConv2d\n").unwrap();
        assert_eq!(sniff(&p), ModelFileKind::Pickle { module: true });
        assert!(not_torchscript_message(&p).unwrap().contains("--pickled"));
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(sniff(&p), ModelFileKind::NotArchive);
        assert!(not_torchscript_message(&p)
            .unwrap()
            .contains("is not a loadable TorchScript model: TorchScript files are zip archives"));
        std::fs::write(&p, b"").unwrap();
        assert_eq!(sniff(&p), ModelFileKind::Unknown);
        assert_eq!(not_torchscript_message(&p), None);
        assert_eq!(read(&p), Ok(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
