//! `algo_config.json`: parsing, validation with messages that name the key, and per-call overrides.
//!
//! Unknown keys are errors (a typo must not silently change preprocessing); keys starting with
//! `_` are treated as comments and ignored.

use crate::error::{Error, Result};
use crate::resize::PillowCompat;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where `ji_create_predictor` (and `evsdk_init(NULL)`) look when `$EV_SDK_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/usr/local/ev_sdk/config/algo_config.json";
/// Environment variable that overrides [`DEFAULT_CONFIG_PATH`].
pub const CONFIG_ENV: &str = "EV_SDK_CONFIG";

/// Which device runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// CUDA card 0 when libtorch sees one, otherwise the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Fp16,
    /// bfloat16 weights and activations on the CPU's fast path (opt-in: it changes scores).
    Bf16,
}

/// How the image is brought to `resize_size` before the centre crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// torchvision `Resize([h, w])`: exact size, aspect ratio not kept.
    Stretch,
    /// torchvision `Resize(n)`: the shorter side becomes `n`.
    ShorterSide,
    /// The training write-up's black padding to the target aspect ratio, then `Resize`.
    Letterbox,
    /// Paste centred on a black square of side `max(w, h)` (PIL `Image.paste` at
    /// `((s - w) // 2, (s - h) // 2)`), then `Resize`.
    PadSquare,
}

/// A size in torchvision order: height first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub height: u32,
    pub width: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelOutput {
    /// Raw scores: softmax is applied to get confidences.
    Logits,
    /// Already probabilities: used as they are.
    Probabilities,
}

/// An extra view of test-time augmentation (`"tta"`): the preprocessed tensor flipped along
/// one axis. The probabilities are the mean over the plain view and every extra view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtaView {
    /// Mirrored left to right (the tensor's width axis).
    HFlip,
    /// Mirrored top to bottom (the tensor's height axis).
    VFlip,
}

impl TtaView {
    /// The name in the config (`"hflip"`, `"vflip"`).
    pub fn name(self) -> &'static str {
        match self {
            TtaView::HFlip => "hflip",
            TtaView::VFlip => "vflip",
        }
    }
}

/// The settings a call may override through its `args` JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// `is_alert` when the top-1 confidence is at least this.
    pub thresh: f64,
    /// How many classes to list in `model_data.topk` (listed only when > 1).
    pub topk: usize,
    /// Decimals kept in confidences; `None` keeps full precision.
    pub confidence_decimals: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            thresh: 0.0,
            topk: 1,
            confidence_decimals: Some(3),
        }
    }
}

/// Everything the preprocessing needs, separated so it can be used without a model.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    pub resize_mode: ResizeMode,
    /// For `ShorterSide` only `height` is used (both fields hold `n`).
    pub resize_size: Size,
    /// `None` = no centre crop.
    pub crop_size: Option<Size>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub pillow_compat: PillowCompat,
    pub exif_transpose: bool,
    pub max_image_pixels: u64,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        PreprocessConfig {
            resize_mode: ResizeMode::Stretch,
            resize_size: Size {
                height: 224,
                width: 224,
            },
            crop_size: Some(Size {
                height: 224,
                width: 224,
            }),
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            pillow_compat: PillowCompat::Pillow13,
            exif_transpose: false,
            max_image_pixels: 100_000_000,
        }
    }
}

impl PreprocessConfig {
    /// The preprocessing in the config's own terms, for a person: `resize_mode "stretch" to
    /// [224, 224], crop_size [224, 224], mean [...], std [...]`.
    pub fn describe(&self) -> String {
        let v = self.to_json();
        format!(
            "resize_mode {} to {}, crop_size {}, mean {}, std {}",
            v["resize_mode"], v["resize_size"], v["crop_size"], v["mean"], v["std"]
        )
    }

    /// The preprocessing as config keys and values (`evsdk_model_info`).
    pub fn to_json(&self) -> Value {
        let size = |s: Size| serde_json::json!([s.height, s.width]);
        let round = |v: [f32; 3]| v.map(|x| (x as f64 * 1e6).round() / 1e6);
        serde_json::json!({
            "resize_mode": match self.resize_mode {
                ResizeMode::Stretch => "stretch",
                ResizeMode::ShorterSide => "shorter_side",
                ResizeMode::Letterbox => "letterbox",
                ResizeMode::PadSquare => "pad_square",
            },
            "resize_size": match self.resize_mode {
                ResizeMode::ShorterSide => serde_json::json!(self.resize_size.height),
                _ => size(self.resize_size),
            },
            "crop_size": self.crop_size.map(size),
            "mean": round(self.mean),
            "std": round(self.std),
            "pillow_compat": match self.pillow_compat {
                PillowCompat::Pillow13 => "13",
                PillowCompat::Pillow12 => "12",
            },
            "exif_transpose": self.exif_transpose,
        })
    }

    /// Height and width of the tensor handed to the model.
    pub fn output_size(&self) -> Size {
        match self.crop_size {
            Some(crop) => crop,
            None => match self.resize_mode {
                ResizeMode::Stretch | ResizeMode::Letterbox | ResizeMode::PadSquare => {
                    self.resize_size
                }
                // The shorter-side output depends on each image's aspect ratio.
                ResizeMode::ShorterSide => Size {
                    height: 0,
                    width: 0,
                },
            },
        }
    }
}

/// A parsed, validated `algo_config.json` with paths resolved.
///
/// The model fields (`model_path`, the class names' sources, `model_output`, `preprocess`,
/// `keys_from_model`, `override_model_metadata`) describe the one model of a `"model_path"`
/// config, or the first member of a `"models"` ensemble; [`Config::models`] lists every model
/// with its own fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub model_path: PathBuf,
    /// The class file, when the config names one (the model's metadata may hold the names).
    pub class_names_path: Option<PathBuf>,
    /// Class names embedded in the model file by tools/export_torchscript.py.
    pub embedded_class_names: Option<Vec<String>>,
    /// Config keys whose values came from the model file's metadata.
    pub keys_from_model: Vec<String>,
    /// Neither the config nor the model's metadata sets a preprocessing key
    /// (`metadata::PREPROCESSING_KEYS`): libji's defaults apply, and init says so.
    pub preprocessing_from_defaults: bool,
    /// `"override_model_metadata": true`: the config's values win over the model's metadata
    /// instead of a disagreement being an error.
    pub override_model_metadata: bool,
    pub device: DeviceSpec,
    pub precision: Precision,
    pub model_output: ModelOutput,
    pub preprocess: PreprocessConfig,
    pub run: RunOptions,
    /// Reported by `ji_get_version` as `algo_version`.
    pub algo_version: String,
    /// Forward passes each batch size the predictor prepares at init gets before create
    /// returns (the load-time probe counted), so the first judged call runs a warmed graph.
    pub warmup: u32,
    /// libtorch intra-op threads for CPU inference; 0 keeps libtorch's default.
    pub num_threads: u32,
    /// The CPU fast path (freeze, zero-pad folding, oneDNN Graph fusion, channels-last),
    /// checked against the plain model at init (`"optimize"`, default true).
    pub optimize: bool,
    /// `"optimize": true` (not the default): on CUDA the model is also frozen
    /// (`torch.jit.freeze`). The GPU default is plain TorchScript + cuDNN autotuning.
    pub cuda_freeze: bool,
    /// `"huge_pages"` (opt-in, default false): on the CPU, the process heap goes to
    /// transparent huge pages at the end of init (see `crate::hugepages`). Process-wide.
    pub huge_pages: bool,
    /// `"cuda_streams"` (off by default until measured on a GPU): on CUDA, each calling
    /// thread runs its forward passes on its own stream from libtorch's pool, with pinned
    /// staging buffers, a non-blocking upload and one synchronisation per call, so threads
    /// and async lanes do not queue behind each other's copies. Changes nothing on the CPU.
    pub cuda_streams: bool,
    /// The 4.x asynchronous mode (`ji_calc_image_asyn`).
    pub asynchronous: AsyncConfig,
    /// `"tta"`: the extra views each image is also classified in (none by default).
    pub tta: Vec<TtaView>,
    /// `"models"`: the members of an ensemble, in config order (empty for `"model_path"`).
    /// Each member's config is the top level with the member's own keys over it, resolved
    /// against its model's metadata as a one-model config is.
    pub ensemble: Vec<Member>,
}

/// One model of a `"models"` ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// `"weight"` (default 1): the member's share of the result is its weight over the sum.
    pub weight: f64,
    /// The member's own config (its `ensemble` is empty).
    pub config: Config,
}

/// Settings of the asynchronous mode (`ji_set_callback` / `ji_calc_image_asyn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncConfig {
    /// Requests that may wait in a predictor's queue; a call that finds it full waits.
    pub queue: u32,
    /// Worker threads ("lanes") that run requests concurrently; callbacks still come one at a
    /// time, in submission order.
    pub workers: u32,
    /// Frames a worker runs as one forward pass, taken from the waiting requests (1 = no
    /// cross-call batching: results bit-identical to synchronous calls).
    pub max_batch: u32,
    /// How long the worker waits for a batch to fill before running what it has (0 = never
    /// waits: it batches only what queued while the previous batch ran).
    pub max_wait_ms: u32,
    /// Hand each one-frame request's input back as `outPic` (a copy the callback frees).
    pub out_frame: bool,
}

/// More lanes than this only adds threads that wait for a core.
pub const MAX_ASYNC_WORKERS: u32 = 64;

impl Default for AsyncConfig {
    fn default() -> Self {
        AsyncConfig {
            queue: 32,
            workers: 2,
            max_batch: 1,
            max_wait_ms: 0,
            out_frame: true,
        }
    }
}

/// Keys earlier versions accepted, with what to do instead: an error that says so beats
/// "unknown key".
const REMOVED_KEYS: &[(&str, &str)] = &[
    (
        "optimize_for_inference",
        "it was folded into \"optimize\": \"optimize\": true also freezes the model on CUDA \
         (absent: the CPU fast path, plain TorchScript on CUDA; false: plain everywhere)",
    ),
    (
        "keep_cpus_awake",
        "the library no longer starts poller threads (a host that sets \
         OMP_WAIT_POLICY=PASSIVE asked for no spinning): delete the key",
    ),
];

const KNOWN_KEYS: &[&str] = &[
    "model_path",
    "class_names_path",
    "device",
    "precision",
    "resize_mode",
    "resize_size",
    "crop_size",
    "mean",
    "std",
    "model_output",
    "thresh",
    "topk",
    "confidence_decimals",
    "pillow_compat",
    "exif_transpose",
    "max_image_pixels",
    "algo_version",
    "warmup",
    "num_threads",
    "optimize",
    "huge_pages",
    "cuda_streams",
    "async_queue",
    "async_workers",
    "async_max_batch",
    "async_max_wait_ms",
    "async_out_frame",
    "override_model_metadata",
    "tta",
    "models",
];

/// The model file is checked before anything the model would supply: a missing file, or a
/// checkpoint given as `model_path`, would otherwise surface as the first key the config
/// leaves to the model (`class_names_path`). The export command in the message uses this
/// config (`--config`). Unparsable text is left to `Config::parse` to report.
fn check_model_first(text: &str, base: &Path, config: &Path) -> Result<()> {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else {
        return Ok(());
    };
    // The model, or every member of an ensemble.
    let members = obj.get("models").and_then(Value::as_array);
    let models: Vec<&str> = match members {
        Some(list) => list
            .iter()
            .filter_map(|m| m.get("model_path").and_then(Value::as_str))
            .collect(),
        None => obj
            .get("model_path")
            .and_then(Value::as_str)
            .into_iter()
            .collect(),
    };
    let classes = obj.get("class_names_path").and_then(Value::as_str);
    let hint = crate::metadata::ExportHint {
        config: Some(config.to_path_buf()),
        config_has_classes: classes.is_some(),
        config_has_preprocessing: crate::metadata::PREPROCESSING_KEYS
            .iter()
            .any(|k| obj.contains_key(*k)),
        num_classes: classes
            .and_then(|c| crate::class_names::load(&base.join(c)).ok())
            .map(|n| n.len()),
    };
    for model in models.into_iter().filter(|m| !m.is_empty()) {
        crate::metadata::check_model_file(&base.join(model), &hint)?;
    }
    Ok(())
}

/// Says once per process and model file, at init, that libji applies its default
/// preprocessing because neither the config nor the model's metadata sets any: a model
/// trained with other sizes or normalisation loses accuracy with no other sign.
pub fn announce_default_preprocessing(config: &Config) {
    static SAID: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    if !config.preprocessing_from_defaults {
        return;
    }
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.contains(&config.model_path) {
        return;
    }
    said.push(config.model_path.clone());
    eprintln!(
        "libji: note: neither the config nor {}'s metadata sets the test-time preprocessing, \
         so libji applies its defaults: {}. If your validation code preprocesses otherwise, set \
         \"resize_mode\", \"resize_size\", \"crop_size\", \"mean\" and \"std\" in the config, \
         or export the model with them (tools/export_torchscript.py --resize-mode ... \
         --resize-size ... --crop-size ... --mean ... --std ...)",
        config.model_path.display(),
        config.preprocess.describe()
    );
}

/// The keys a member of `"models"` may set for itself besides those a model's metadata may
/// set ([`crate::metadata::METADATA_KEYS`]); the others apply to every member and are set at
/// the top level.
const MEMBER_KEYS: &[&str] = &["model_path", "weight", "override_model_metadata"];

impl Config {
    /// The config path used when the caller gives none: `$EV_SDK_CONFIG`, else the platform's.
    pub fn default_path() -> PathBuf {
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Reads and validates a config file; relative paths inside resolve against its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        check_model_first(&text, base, path)?;
        Config::parse(&text, base)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), config_message(&e))))
    }

    /// Parses config JSON text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("invalid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| {
            Error::Config(format!(
                "top level must be a JSON object, got {}",
                type_name(&value)
            ))
        })?;
        Config::from_object(obj, base_dir)
    }

    /// [`Config::parse`] of the parsed top-level object.
    fn from_object(obj: &Map<String, Value>, base_dir: &Path) -> Result<Config> {
        for key in obj.keys() {
            if let Some((_, what)) = REMOVED_KEYS.iter().find(|(k, _)| k == key) {
                return Err(Error::Config(format!(
                    "\"{key}\" is no longer a key: {what}"
                )));
            }
            if !key.starts_with('_') && !KNOWN_KEYS.contains(&key.as_str()) {
                return Err(Error::Config(format!(
                    "unknown key \"{key}\" (known keys: {})",
                    KNOWN_KEYS.join(", ")
                )));
            }
        }
        if obj.contains_key("models") {
            return Config::ensemble(obj, base_dir);
        }
        let path_key = |key: &str| -> Result<Option<PathBuf>> {
            let Some(s) = get_str(obj, key)? else {
                return Ok(None);
            };
            if s.is_empty() {
                return Err(Error::Config(format!("\"{key}\" must not be empty")));
            }
            let p = PathBuf::from(s);
            Ok(Some(if p.is_absolute() { p } else { base_dir.join(p) }))
        };
        let model_path = path_key("model_path")?
            .ok_or_else(|| Error::Config("missing required key \"model_path\"".into()))?;
        let class_names_path = path_key("class_names_path")?;
        let override_model_metadata = get_bool(obj, "override_model_metadata", false)?;
        // The model's own description fills the keys the config leaves out; a key set in both
        // must agree (unless overridden), or the model would silently run a pipeline other than
        // the one it was exported with.
        let meta = crate::metadata::read(&model_path).map_err(Error::Config)?;
        let mut merged = obj.clone();
        let mut keys_from_model = Vec::new();
        if let Some(m) = &meta {
            for (key, model_value) in &m.config {
                match obj.get(key) {
                    None => {
                        merged.insert(key.clone(), model_value.clone());
                        keys_from_model.push(key.clone());
                    }
                    Some(ours) if !override_model_metadata => {
                        let model_norm = normalized(key, model_value).map_err(|e| {
                            Error::Config(format!(
                                "{}'s metadata: {}",
                                model_path.display(),
                                config_message(&e)
                            ))
                        })?;
                        if normalized(key, ours)? != model_norm {
                            return Err(Error::Config(format!(
                                "\"{key}\" is {ours} in the config but {model_value} in {}'s \
                                 metadata (written by tools/export_torchscript.py): remove \
                                 \"{key}\" from the config to use the model's value, or set \
                                 \"override_model_metadata\": true to use the config's",
                                model_path.display()
                            )));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        if class_names_path.is_none() && meta.as_ref().is_none_or(|m| m.class_names.is_none()) {
            return Err(Error::Config(format!(
                "missing required key \"class_names_path\" ({} has no embedded class names: \
                 name your class file there, or embed the names in the model with {})",
                model_path.display(),
                crate::metadata::add_class_names_command(
                    &model_path,
                    &meta.map(|m| m.config).unwrap_or_default()
                )
            )));
        }
        let embedded_class_names = meta.and_then(|m| m.class_names);
        let obj = &merged;
        let preprocessing_from_defaults = !crate::metadata::PREPROCESSING_KEYS
            .iter()
            .any(|k| obj.contains_key(*k));
        let defaults = PreprocessConfig::default();
        let device = match get_str(obj, "device")? {
            None => DeviceSpec::Auto,
            Some(s) => parse_device(s)?,
        };
        let precision = match get_str(obj, "precision")? {
            None | Some("fp32") => Precision::Fp32,
            Some("fp16") => Precision::Fp16,
            Some("bf16") => Precision::Bf16,
            Some(other) => {
                return Err(bad_value(
                    "precision",
                    "\"fp32\", \"fp16\" or \"bf16\"",
                    other,
                ))
            }
        };
        if precision == Precision::Bf16 && matches!(device, DeviceSpec::Cuda(_)) {
            return Err(Error::Config(
                "\"precision\": \"bf16\" is for the CPU; on CUDA use \"fp16\"".into(),
            ));
        }
        if precision == Precision::Fp16 && device == DeviceSpec::Cpu {
            return Err(Error::Config(
                "\"precision\": \"fp16\" needs a CUDA device, but \"device\" is \"cpu\"".into(),
            ));
        }
        let resize_mode = match get_str(obj, "resize_mode")? {
            None | Some("stretch") => ResizeMode::Stretch,
            Some("shorter_side") => ResizeMode::ShorterSide,
            Some("letterbox") => ResizeMode::Letterbox,
            Some("pad_square") => ResizeMode::PadSquare,
            Some(other) => {
                return Err(bad_value(
                    "resize_mode",
                    "\"stretch\", \"shorter_side\", \"letterbox\" or \"pad_square\"",
                    other,
                ))
            }
        };
        let resize_size = match obj.get("resize_size") {
            None => defaults.resize_size,
            Some(v) => {
                let size = parse_size("resize_size", v)?;
                if resize_mode == ResizeMode::ShorterSide && size.height != size.width {
                    return Err(Error::Config(format!(
                        "\"resize_size\" must be a single integer when \"resize_mode\" is \"shorter_side\", got {v}"
                    )));
                }
                size
            }
        };
        let crop_size = match obj.get("crop_size") {
            None => defaults.crop_size,
            Some(Value::Null) => None,
            Some(v) => Some(parse_size("crop_size", v)?),
        };
        if crop_size.is_none() && resize_mode == ResizeMode::ShorterSide {
            return Err(Error::Config(
                "\"crop_size\" is required with \"resize_mode\": \"shorter_side\" (the model needs a fixed input size)".into(),
            ));
        }
        let mean = match obj.get("mean") {
            None => defaults.mean,
            Some(v) => parse_triple("mean", v)?,
        };
        let std = match obj.get("std") {
            None => defaults.std,
            Some(v) => parse_triple("std", v)?,
        };
        if let Some(i) = std.iter().position(|s| *s <= 0.0) {
            return Err(Error::Config(format!(
                "\"std\" values must be > 0, got {} at index {i}",
                std[i]
            )));
        }
        check_unit_scale("mean", &mean)?;
        check_unit_scale("std", &std)?;
        let model_output = match get_str(obj, "model_output")? {
            None | Some("logits") => ModelOutput::Logits,
            Some("probabilities") => ModelOutput::Probabilities,
            Some(other) => {
                return Err(bad_value(
                    "model_output",
                    "\"logits\" or \"probabilities\"",
                    other,
                ))
            }
        };
        let pillow_compat = match obj.get("pillow_compat") {
            None => PillowCompat::Pillow13,
            Some(v) => match v
                .as_str()
                .map(str::to_owned)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
            {
                Some(s) if s == "13" => PillowCompat::Pillow13,
                Some(s) if s == "12" => PillowCompat::Pillow12,
                _ => {
                    return Err(bad_value(
                        "pillow_compat",
                        "\"13\" (Pillow >= 13) or \"12\" (Pillow <= 12)",
                        v,
                    ))
                }
            },
        };
        let exif_transpose = get_bool(obj, "exif_transpose", false)?;
        // Absent: the CPU fast path, plain TorchScript on CUDA; true: also frozen on CUDA.
        let (optimize, cuda_freeze) = match obj.get("optimize") {
            None | Some(Value::Null) => (true, false),
            Some(_) => {
                let on = get_bool(obj, "optimize", true)?;
                (on, on)
            }
        };
        let huge_pages = get_bool(obj, "huge_pages", false)?;
        let cuda_streams = get_bool(obj, "cuda_streams", false)?;
        let max_image_pixels = match obj.get("max_image_pixels") {
            None => defaults.max_image_pixels,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => n,
                _ => return Err(bad_value("max_image_pixels", "a positive integer", v)),
            },
        };
        let algo_version = get_str(obj, "algo_version")?.unwrap_or("1.0").to_owned();
        let warmup = get_u32(obj, "warmup", 3, 1..=100)?;
        let num_threads = get_u32(obj, "num_threads", 0, 0..=1024)?;
        let run = RunOptions::default().with_overrides(obj)?;
        let async_defaults = AsyncConfig::default();
        let asynchronous = AsyncConfig {
            queue: get_u32(obj, "async_queue", async_defaults.queue, 1..=1024)?,
            workers: get_u32(
                obj,
                "async_workers",
                async_defaults.workers,
                1..=MAX_ASYNC_WORKERS,
            )?,
            max_batch: get_u32(obj, "async_max_batch", async_defaults.max_batch, 1..=1024)?,
            max_wait_ms: get_u32(
                obj,
                "async_max_wait_ms",
                async_defaults.max_wait_ms,
                0..=10_000,
            )?,
            out_frame: get_bool(obj, "async_out_frame", async_defaults.out_frame)?,
        };
        let tta = parse_tta(obj)?;
        Ok(Config {
            model_path,
            class_names_path,
            embedded_class_names,
            keys_from_model,
            preprocessing_from_defaults,
            override_model_metadata,
            device,
            precision,
            model_output,
            preprocess: PreprocessConfig {
                resize_mode,
                resize_size,
                crop_size,
                mean,
                std,
                pillow_compat,
                exif_transpose,
                max_image_pixels,
            },
            run,
            algo_version,
            warmup,
            num_threads,
            optimize,
            cuda_freeze,
            huge_pages,
            cuda_streams,
            asynchronous,
            tta,
            ensemble: Vec::new(),
        })
    }

    /// A `"models"` config: each member is the top level with the member's own keys over it
    /// (its `model_path`, and what a model's metadata may set), resolved by the one-model rules
    /// against its own model's metadata. The top-level fields describe the first member.
    fn ensemble(obj: &Map<String, Value>, base_dir: &Path) -> Result<Config> {
        if obj.contains_key("model_path") {
            return Err(Error::Config(
                "set either \"model_path\" (one model) or \"models\" (an ensemble), not both"
                    .into(),
            ));
        }
        let expected = "a non-empty list of {\"model_path\": ..., \"weight\": ...} objects";
        let list = match obj.get("models") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(v) => return Err(bad_value("models", expected, v)),
            None => unreachable!("called for a \"models\" config"),
        };
        let mut members = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let at = format!("\"models\"[{i}]");
            let own = item.as_object().ok_or_else(|| {
                Error::Config(format!(
                    "{at}: expected an object {{\"model_path\": ..., \"weight\": ...}}, got {item}"
                ))
            })?;
            for key in own.keys() {
                let allowed = MEMBER_KEYS.contains(&key.as_str())
                    || crate::metadata::METADATA_KEYS.contains(&key.as_str());
                if !key.starts_with('_') && !allowed {
                    return Err(Error::Config(format!(
                        "{at}: \"{key}\" cannot be set per model, only for all of them at the top \
                         level (a member sets {}, {})",
                        MEMBER_KEYS.join(", "),
                        crate::metadata::METADATA_KEYS.join(", ")
                    )));
                }
            }
            let weight = match own.get("weight") {
                None => 1.0,
                Some(v) => v
                    .as_f64()
                    .filter(|w| w.is_finite() && *w > 0.0)
                    .ok_or_else(|| {
                        Error::Config(format!("{at}: \"weight\": expected a number > 0, got {v}"))
                    })?,
            };
            if !own.contains_key("model_path") {
                return Err(Error::Config(format!("{at} has no \"model_path\"")));
            }
            let mut view = obj.clone();
            view.remove("models");
            view.extend(
                own.iter()
                    .filter(|(k, _)| k.as_str() != "weight")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            let config = Config::from_object(&view, base_dir)
                .map_err(|e| Error::Config(format!("{at}: {}", config_message(&e))))?;
            members.push(Member { weight, config });
        }
        // The image is decoded once for every member.
        let exif = |m: &Member| m.config.preprocess.exif_transpose;
        if let Some((i, m)) = members
            .iter()
            .enumerate()
            .find(|(_, m)| exif(m) != exif(&members[0]))
        {
            return Err(Error::Config(format!(
                "\"exif_transpose\" is {} for \"models\"[0] ({}) but {} for \"models\"[{i}] \
                 ({}): the image is decoded once for every member, so they must agree",
                exif(&members[0]),
                members[0].config.model_path.display(),
                exif(m),
                m.config.model_path.display()
            )));
        }
        let mut top = members[0].config.clone();
        top.ensemble = members;
        Ok(top)
    }

    /// Every model the predictor runs with its weight as given: the one model of a
    /// `"model_path"` config (weight 1), or the members of `"models"`.
    pub fn models(&self) -> Vec<(f64, &Config)> {
        if self.ensemble.is_empty() {
            vec![(1.0, self)]
        } else {
            self.ensemble
                .iter()
                .map(|m| (m.weight, &m.config))
                .collect()
        }
    }
}

/// `"tta"`: a list of distinct extra views (`[]` or absent: none).
fn parse_tta(obj: &Map<String, Value>) -> Result<Vec<TtaView>> {
    let expected =
        "a list of extra views: [\"hflip\"], [\"vflip\"] or [\"hflip\", \"vflip\"] ([] for none)";
    let Some(v) = obj.get("tta") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(bad_value("tta", expected, v));
    };
    let mut views = Vec::with_capacity(items.len());
    for item in items {
        let view = match item.as_str() {
            Some("hflip") => TtaView::HFlip,
            Some("vflip") => TtaView::VFlip,
            _ => return Err(bad_value("tta", expected, v)),
        };
        if views.contains(&view) {
            return Err(Error::Config(format!(
                "\"tta\" lists \"{}\" twice",
                view.name()
            )));
        }
        views.push(view);
    }
    Ok(views)
}

impl Config {
    /// The class names: from the class file, from the model's metadata, or from both when
    /// they agree (a disagreement is an error unless `override_model_metadata`).
    /// For `"models"`, every member's names by these rules, which must all be the same.
    pub fn class_names(&self) -> Result<Vec<String>> {
        if !self.ensemble.is_empty() {
            return self.ensemble_class_names();
        }
        let embedded = self.embedded_class_names.as_ref();
        let Some(path) = &self.class_names_path else {
            return embedded
                .cloned()
                .ok_or_else(|| Error::Config("no class names: set \"class_names_path\"".into()));
        };
        let from_file = crate::class_names::load(path)?;
        if let (Some(model), false) = (embedded, self.override_model_metadata) {
            let what = if model.len() != from_file.len() {
                Some(format!(
                    "{} lists {} classes but the model's metadata {}",
                    path.display(),
                    from_file.len(),
                    model.len()
                ))
            } else {
                from_file
                    .iter()
                    .zip(model)
                    .position(|(a, b)| a != b)
                    .map(|i| {
                        format!(
                            "class {i} is \"{}\" in {} but \"{}\" in the model's metadata",
                            from_file[i],
                            path.display(),
                            model[i]
                        )
                    })
            };
            if let Some(what) = what {
                return Err(Error::Config(format!(
                    "{what} ({}): remove \"class_names_path\" to use the model's names, or set \
                     \"override_model_metadata\": true to use the file's",
                    self.model_path.display()
                )));
            }
        }
        Ok(from_file)
    }

    /// The members' class names, which must agree: a member's scores are averaged with the
    /// others' class by class.
    fn ensemble_class_names(&self) -> Result<Vec<String>> {
        let mut first: Option<Vec<String>> = None;
        for (i, m) in self.ensemble.iter().enumerate() {
            let names = m
                .config
                .class_names()
                .map_err(|e| Error::Config(format!("\"models\"[{i}]: {}", config_message(&e))))?;
            let Some(want) = &first else {
                first = Some(names);
                continue;
            };
            let what = if want.len() != names.len() {
                Some(format!("{} classes against {}", want.len(), names.len()))
            } else {
                want.iter()
                    .zip(&names)
                    .position(|(a, b)| a != b)
                    .map(|k| format!("class {k} is \"{}\" against \"{}\"", want[k], names[k]))
            };
            if let Some(what) = what {
                let first = &self.ensemble[0].config;
                return Err(Error::Config(format!(
                    "the members of \"models\" must classify into the same classes, in the same \
                     order, but \"models\"[0] ({}, names from {}) and \"models\"[{i}] ({}, names \
                     from {}) differ: {what}",
                    first.model_path.display(),
                    first.class_names_source(),
                    m.config.model_path.display(),
                    m.config.class_names_source()
                )));
            }
        }
        first.ok_or_else(|| Error::Config("\"models\" is empty".into()))
    }

    /// Where the class names come from, for messages.
    pub fn class_names_source(&self) -> String {
        match &self.class_names_path {
            Some(p) => p.display().to_string(),
            None => format!("{}'s metadata", self.model_path.display()),
        }
    }
}

/// `mean` / `std` apply to `ToTensor()`'s 0..1 pixels; values above 1 are the 0-255 scale
/// (`[123.675, 116.28, 103.53]`), which would run and give wrong confidences.
fn check_unit_scale(key: &str, v: &[f32; 3]) -> Result<()> {
    if v.iter().all(|x| x.abs() <= 1.0) {
        return Ok(());
    }
    let list = |xs: Vec<String>| format!("[{}]", xs.join(", "));
    let given = list(v.iter().map(|x| x.to_string()).collect());
    let scaled = list(
        v.iter()
            .map(|&x| {
                let s = format!("{:.6}", x as f64 / 255.0);
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            })
            .collect(),
    );
    Err(Error::Config(format!(
        "\"{key}\" {given} is on the 0-255 scale, but it applies to pixels that ToTensor() has \
         scaled to 0..1: divide by 255 ({scaled})"
    )))
}

/// A config value in a canonical form, so `224` and `[224, 224]` compare equal.
fn normalized(key: &str, v: &Value) -> Result<Value> {
    Ok(match key {
        "resize_size" => size_value(parse_size(key, v)?),
        "crop_size" if v.is_null() => Value::Null,
        "crop_size" => size_value(parse_size(key, v)?),
        "mean" | "std" => Value::from(parse_triple(key, v)?.map(f64::from).to_vec()),
        "pillow_compat" => Value::from(
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
                .unwrap_or_else(|| v.to_string()),
        ),
        _ => v.clone(),
    })
}

fn size_value(s: Size) -> Value {
    Value::from(vec![s.height, s.width])
}

impl RunOptions {
    /// Applies a call's `args` (NULL/empty = no change). Keys other than `thresh`, `topk`
    /// and `confidence_decimals` are ignored: the platform sends `roi` and friends.
    pub fn with_args(&self, args: Option<&str>) -> Result<RunOptions> {
        let text = match args {
            None => return Ok(self.clone()),
            Some(t) if t.trim().is_empty() => return Ok(self.clone()),
            Some(t) => t,
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("args is not valid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "args must be a JSON object, got {}",
                type_name(&value)
            ))
        })?;
        self.with_overrides(obj).map_err(|e| match e {
            Error::Config(m) => Error::InvalidArgument(format!("args: {m}")),
            other => other,
        })
    }

    fn with_overrides(&self, obj: &Map<String, Value>) -> Result<RunOptions> {
        let mut out = self.clone();
        if let Some(v) = obj.get("thresh") {
            out.thresh = match v.as_f64() {
                Some(t) if t.is_finite() => t,
                _ => return Err(bad_value("thresh", "a number", v)),
            };
        }
        if let Some(v) = obj.get("topk") {
            out.topk = match v.as_u64() {
                Some(k) if k >= 1 => k as usize,
                _ => return Err(bad_value("topk", "an integer >= 1", v)),
            };
        }
        if let Some(v) = obj.get("confidence_decimals") {
            out.confidence_decimals = match v {
                Value::Null => None,
                _ => match v.as_u64() {
                    Some(d) if d <= 15 => Some(d as u32),
                    _ => {
                        return Err(bad_value(
                            "confidence_decimals",
                            "an integer 0..=15 or null",
                            v,
                        ))
                    }
                },
            };
        }
        Ok(out)
    }
}

fn parse_device(s: &str) -> Result<DeviceSpec> {
    match s {
        "auto" => Ok(DeviceSpec::Auto),
        "cpu" => Ok(DeviceSpec::Cpu),
        "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(DeviceSpec::Cuda)
            .ok_or_else(|| bad_value("device", "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"", s)),
    }
}

/// `[h, w]` or a single integer (square).
fn parse_size(key: &str, v: &Value) -> Result<Size> {
    let positive = |x: &Value| {
        x.as_u64()
            .filter(|n| *n > 0 && *n <= 65_535)
            .map(|n| n as u32)
    };
    let expected = "a positive integer or [height, width]";
    match v {
        Value::Number(_) => positive(v)
            .map(|n| Size {
                height: n,
                width: n,
            })
            .ok_or_else(|| bad_value(key, expected, v)),
        Value::Array(a) if a.len() == 1 => positive(&a[0])
            .map(|n| Size {
                height: n,
                width: n,
            })
            .ok_or_else(|| bad_value(key, expected, v)),
        Value::Array(a) if a.len() == 2 => match (positive(&a[0]), positive(&a[1])) {
            (Some(height), Some(width)) => Ok(Size { height, width }),
            _ => Err(bad_value(key, expected, v)),
        },
        _ => Err(bad_value(key, expected, v)),
    }
}

fn parse_triple(key: &str, v: &Value) -> Result<[f32; 3]> {
    let expected = "an array of 3 numbers (or one number for all channels)";
    let num = |x: &Value| x.as_f64().filter(|f| f.is_finite()).map(|f| f as f32);
    match v {
        Value::Number(_) => num(v)
            .map(|f| [f; 3])
            .ok_or_else(|| bad_value(key, expected, v)),
        Value::Array(a) if a.len() == 1 => num(&a[0])
            .map(|f| [f; 3])
            .ok_or_else(|| bad_value(key, expected, v)),
        Value::Array(a) if a.len() == 3 => match (num(&a[0]), num(&a[1]), num(&a[2])) {
            (Some(x), Some(y), Some(z)) => Ok([x, y, z]),
            _ => Err(bad_value(key, expected, v)),
        },
        _ => Err(bad_value(key, expected, v)),
    }
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(v) => Err(bad_value(key, "a string", v)),
    }
}

fn get_bool(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match obj.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(bad_value(key, "true or false", v)),
    }
}

/// An integer key in `range` (one message per key, naming the range).
fn get_u32(
    obj: &Map<String, Value>,
    key: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32> {
    match obj.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                bad_value(
                    key,
                    &format!("an integer {}..={}", range.start(), range.end()),
                    v,
                )
            }),
    }
}

fn bad_value(key: &str, expected: &str, got: impl std::fmt::Display) -> Error {
    Error::Config(format!("\"{key}\": expected {expected}, got {got}"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The message of a config error without its "config error:" prefix (other kinds as they are).
fn config_message(e: &Error) -> String {
    match e {
        Error::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/cfg"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolved_paths() {
        let c = parse(r#"{"model_path": "../model/m.pt", "class_names_path": "/abs/class.txt"}"#)
            .unwrap();
        assert_eq!(c.model_path, PathBuf::from("/cfg/../model/m.pt"));
        assert_eq!(c.class_names_path, Some(PathBuf::from("/abs/class.txt")));
        assert_eq!(c.embedded_class_names, None);
        assert_eq!(c.device, DeviceSpec::Auto);
        assert_eq!(c.preprocess, PreprocessConfig::default());
        assert_eq!(c.run, RunOptions::default());
        assert!(!c.huge_pages, "the host's heap is left alone unless asked");
        assert_eq!((c.optimize, c.cuda_freeze, c.warmup), (true, false, 3));
    }

    #[test]
    fn removed_keys_say_what_replaced_them() {
        let m = r#""model_path": "m.pt", "class_names_path": "c.txt""#;
        for (key, needle) in [
            ("optimize_for_inference", "\"optimize\": true also freezes"),
            ("keep_cpus_awake", "no longer starts poller threads"),
        ] {
            let e = parse(&format!("{{{m}, \"{key}\": true}}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains(needle), "{e}");
        }
        let opt = |v: &str| {
            parse(&format!("{{{m}, \"optimize\": {v}}}")).map(|c| (c.optimize, c.cuda_freeze))
        };
        assert_eq!(opt("true").unwrap(), (true, true));
        assert_eq!(opt("false").unwrap(), (false, false));
        assert_eq!(opt("null").unwrap(), (true, false));
        assert!(opt("1").unwrap_err().to_string().contains("optimize"));
    }

    #[test]
    fn integer_keys_name_their_one_range() {
        let m = r#""model_path": "m.pt", "class_names_path": "c.txt""#;
        for (key, bad, range) in [
            ("warmup", "0", "1..=100"),
            ("num_threads", "2000", "0..=1024"),
            ("async_queue", "0", "1..=1024"),
            ("async_workers", "65", "1..=64"),
            ("async_max_wait_ms", "-1", "0..=10000"),
            ("warmup", "4294967297", "1..=100"),
        ] {
            let e = parse(&format!("{{{m}, \"{key}\": {bad}}}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!(
                    "\"{key}\": expected an integer {range}, got {bad}"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn cuda_streams_is_an_opt_in_bool() {
        let m = r#""model_path": "m", "class_names_path": "c""#;
        assert!(!parse(&format!("{{{m}}}")).unwrap().cuda_streams);
        assert!(
            parse(&format!("{{{m}, \"cuda_streams\": true}}"))
                .unwrap()
                .cuda_streams
        );
        let e = parse(&format!("{{{m}, \"cuda_streams\": \"on\"}}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cuda_streams") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn huge_pages_is_an_opt_in_bool() {
        let m = r#""model_path": "m.pt", "class_names_path": "c.txt""#;
        assert!(
            !parse(&format!("{{{m}, \"huge_pages\": false}}"))
                .unwrap()
                .huge_pages
        );
        assert!(
            parse(&format!("{{{m}, \"huge_pages\": true}}"))
                .unwrap()
                .huge_pages
        );
        let e = parse(&format!("{{{m}, \"huge_pages\": 1}}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("huge_pages"), "{e}");
    }

    #[test]
    fn the_shipped_template_holds_only_what_a_contestant_sets() {
        let text = include_str!("../config/algo_config.json");
        let keys: Vec<String> = serde_json::from_str::<Map<String, Value>>(text)
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('_'))
            .cloned()
            .collect();
        assert_eq!(keys, ["model_path", "device", "thresh", "topk"]);
        // Valid as it is once the model names its classes (here: a class file beside it).
        let c = parse(&text.replace("\"device\"", "\"class_names_path\": \"c.txt\", \"device\""))
            .unwrap();
        assert_eq!(c.preprocess, PreprocessConfig::default());
        assert_eq!(c.run, RunOptions::default());
        assert_eq!(c.device, DeviceSpec::Auto);
    }

    #[test]
    fn async_settings_parse_and_reject() {
        let c = parse(
            r#"{"model_path": "m", "class_names_path": "c", "async_queue": 4, "async_max_batch": 3,
                "async_workers": 3, "async_max_wait_ms": 5, "async_out_frame": false}"#,
        )
        .unwrap();
        assert_eq!(
            c.asynchronous,
            AsyncConfig {
                queue: 4,
                workers: 3,
                max_batch: 3,
                max_wait_ms: 5,
                out_frame: false
            }
        );
        for (text, key) in [
            (r#""async_queue": 0"#, "async_queue"),
            (r#""async_max_batch": 0"#, "async_max_batch"),
            (r#""async_max_batch": 5000"#, "async_max_batch"),
            (r#""async_workers": 0"#, "async_workers"),
            (r#""async_workers": 65"#, "async_workers"),
            (r#""async_max_wait_ms": -1"#, "async_max_wait_ms"),
            (r#""async_out_frame": 1"#, "async_out_frame"),
        ] {
            let err = parse(&format!(
                r#"{{"model_path": "m", "class_names_path": "c", {text}}}"#
            ))
            .unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn sizes_are_height_width() {
        let c = parse(
            r#"{"model_path": "m", "class_names_path": "c", "resize_size": [256, 320], "crop_size": 224}"#,
        )
        .unwrap();
        assert_eq!(
            c.preprocess.resize_size,
            Size {
                height: 256,
                width: 320
            }
        );
        assert_eq!(
            c.preprocess.crop_size,
            Some(Size {
                height: 224,
                width: 224
            })
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                r#"{"model_path": "m", "class_names_path": "c", "resize_mod": "stretch"}"#,
                "resize_mod",
            ),
            (r#"{"class_names_path": "c"}"#, "model_path"),
            (
                r#"{"model_path": "m", "class_names_path": "c", "device": "tpu"}"#,
                "device",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "std": [1, 0, 1]}"#,
                "std",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "mean": [1, 2]}"#,
                "mean",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "topk": 0}"#,
                "topk",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "thresh": "high"}"#,
                "thresh",
            ),
            (
                r#"{"model_path": 3, "class_names_path": "c"}"#,
                "model_path",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "device": "cpu", "precision": "fp16"}"#,
                "fp16",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "resize_mode": "shorter_side", "resize_size": [1, 2]}"#,
                "resize_size",
            ),
            (r#"{"model_path": "m"}"#, "class_names_path"),
            (
                r#"{"model_path": "m", "class_names_path": "c", "mean": [123.675, 116.28, 103.53]}"#,
                "\"mean\" [123.675, 116.28, 103.53] is on the 0-255 scale",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "std": [58.395, 57.12, 57.375]}"#,
                "divide by 255 ([0.229, 0.224, 0.225])",
            ),
            (
                r#"{"model_path": "m", "class_names_path": "c", "resize_mode": "pad"}"#,
                "\"pad_square\"",
            ),
            (r#"[1]"#, "object"),
            (r#"{"model_path": "m""#, "invalid JSON"),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{text}: {err}");
            assert!(
                err.to_string().contains(needle),
                "{text}: {err} lacks {needle}"
            );
        }
    }

    #[test]
    fn args_override_and_reject() {
        let base = RunOptions::default();
        assert_eq!(base.with_args(None).unwrap(), base);
        assert_eq!(base.with_args(Some("  ")).unwrap(), base);
        let o = base
            .with_args(Some(
                r#"{"thresh": 0.5, "topk": 5, "confidence_decimals": null, "roi": ["x"]}"#,
            ))
            .unwrap();
        assert_eq!(o.thresh, 0.5);
        assert_eq!(o.topk, 5);
        assert_eq!(o.confidence_decimals, None);
        assert!(matches!(
            base.with_args(Some("{")),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            base.with_args(Some("[1]")),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            base.with_args(Some(r#"{"topk": -1}"#)),
            Err(Error::InvalidArgument(_))
        ));
    }
}
