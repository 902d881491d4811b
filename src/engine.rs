//! The engine ties config, class names, decoding, preprocessing, the model and the JSON
//! together. It is `Send + Sync`: calls on one engine may run concurrently from any thread
//! (libtorch's TorchScript forward is re-entrant); per-call scratch buffers are pooled.

use crate::config::{Config, ModelOutput, PreprocessConfig, RunOptions, Size};
use crate::decode::{decode_image, decode_image_window, DecodeOptions};
use crate::error::{Error, Result};
use crate::frame::RawFrame;
use crate::image::RgbImage;
use crate::model::{self, softmax, Model};
use crate::output::{self, Classification, Rendered};
use crate::preprocess::{append_view, source_window, Preprocessor};
use crate::resize::Roi;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// One caller's scratch: the decoded pixels' buffer, resize buffers and the batch's input
/// tensor (reused by each model of an ensemble in turn).
#[derive(Default)]
struct Work {
    decoded: Vec<u8>,
    pre: Preprocessor,
    input: Vec<f32>,
}

/// One part of a batch preprocessed on its own thread: its size and scratch, once done.
type PartSlot = Mutex<Option<Result<(Size, Work)>>>;

/// A caller's scratch holding more than this is dropped when its call ends instead of being
/// pooled: one burst of huge images must not pin their buffers for the life of the process.
/// (A 20-megapixel photo's buffers fit.)
pub const MAX_POOLED_WORK_BYTES: usize = 96 << 20;
/// The whole pool holds at most this many bytes, and at most `MAX_POOLED_WORKS` scratches.
pub const MAX_POOL_BYTES: usize = 256 << 20;
const MAX_POOLED_WORKS: usize = 8;

impl Work {
    fn retained_bytes(&self) -> usize {
        self.decoded.capacity()
            + self.input.capacity() * std::mem::size_of::<f32>()
            + self.pre.retained_bytes()
    }
}

/// Shared across threads by both C APIs (one handle or predictor, concurrent calls): must stay
/// `Send + Sync`. `Model` holds `JitModule`s, which are `Send + Sync` (libtorch's
/// `Module::forward` is safe to call concurrently); everything else is immutable after
/// `new` or behind a lock.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
};

pub struct Engine {
    config: Config,
    names: Vec<String>,
    /// The model, or the members of a `"models"` ensemble in config order.
    members: Vec<Member>,
    device_name: String,
    /// The run options calls start from; `update_config` changes them.
    run_defaults: RwLock<RunOptions>,
    /// Reusable preprocessing buffers, so steady-state calls do not allocate them.
    pool: Mutex<Vec<Work>>,
    /// `"huge_pages"` on a CPU engine: the heap is re-advised when it grows (`hugepages`).
    huge_pages: bool,
}

/// One model of the engine with what it needs of its own config.
struct Member {
    model: Model,
    path: PathBuf,
    preprocess: PreprocessConfig,
    model_output: ModelOutput,
    /// Its weight over the sum of the weights (1 for a single model).
    share: f64,
}

impl Engine {
    /// Loads the config at `path`, or at `$EV_SDK_CONFIG` / the platform default when `None`.
    pub fn from_config_path(path: Option<&Path>) -> Result<Engine> {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(Config::default_path);
        Engine::new(Config::load(&path)?)
    }

    /// Loads class names and the model(s) described by `config`, checks they agree, and warms
    /// up every batch size a call can be known to use (see [`Engine::batch_sizes`]).
    pub fn new(config: Config) -> Result<Engine> {
        let names = config.class_names()?;
        if config.num_threads > 0 {
            // Process-wide: libtorch has one intra-op thread count (stated in ji.h).
            tch::set_num_threads(config.num_threads as i32);
        }
        let device = model::resolve_device(config.device)?;
        let models = config.models();
        let total: f64 = models.iter().map(|(w, _)| w).sum();
        let mut members = Vec::with_capacity(models.len());
        for (weight, m) in models {
            let size = m.preprocess.output_size();
            let mut model = Model::load(
                &m.model_path,
                device,
                config.precision,
                (size.height, size.width),
                config.optimize,
                config.cuda_freeze,
            )?;
            if model.num_classes() != names.len() {
                return Err(Error::ModelLoad(format!(
                    "{} outputs {} scores per image but {} lists {} classes",
                    m.model_path.display(),
                    model.num_classes(),
                    m.class_names_source(),
                    names.len()
                )));
            }
            check_output_kind(m, &model)?;
            model.use_cuda_streams(config.cuda_streams);
            for batch in Engine::batch_sizes(&config) {
                model.prepare_batch(batch, config.warmup)?;
            }
            members.push(Member {
                model,
                path: m.model_path.clone(),
                preprocess: m.preprocess.clone(),
                model_output: m.model_output,
                share: weight / total,
            });
        }
        let huge_pages = device == tch::Device::Cpu && config.huge_pages;
        if huge_pages {
            // The weights and buffers the forward walks are in the heap now; a kernel without
            // THP leaves it as it is (see `hugepages`).
            let _ = crate::hugepages::advise_heap();
        }
        crate::config::announce_default_preprocessing(&config);
        Ok(Engine {
            device_name: model::device_name(device),
            run_defaults: RwLock::new(config.run.clone()),
            config,
            names,
            members,
            pool: Mutex::new(Vec::new()),
            huge_pages,
        })
    }

    /// The forward batch sizes known at init, which `new` warms up: one image's views (1, or
    /// 1 + the `"tta"` views: every synchronous call, and a batch of frames runs image by
    /// image on the CPU fast path) and the asynchronous mode's `async_max_batch` images'
    /// views.
    pub fn batch_sizes(config: &Config) -> Vec<usize> {
        let views = 1 + config.tta.len();
        let mut sizes = vec![views];
        let async_batch = config.asynchronous.max_batch.max(1) as usize;
        if async_batch > 1 {
            sizes.push(async_batch * views);
        }
        sizes
    }

    /// One forward pass of every batch size `new` warmed up, on the calling thread: for a
    /// thread that will run calls (an async lane), whose first forward would otherwise pay
    /// for per-thread setup (on a GPU: its cuDNN / cuBLAS handles).
    pub fn warm_thread(&self) -> Result<()> {
        for m in &self.members {
            let size = m.preprocess.output_size();
            for batch in Engine::batch_sizes(&self.config) {
                let mut probe = vec![0f32; batch * 3 * size.height as usize * size.width as usize];
                m.model
                    .forward(&mut probe, batch, size.height, size.width)?;
            }
        }
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config's `max_image_pixels`: larger images and frames are refused.
    pub fn max_image_pixels(&self) -> u64 {
        self.config.preprocess.max_image_pixels
    }

    /// The number of classes (the model's output width).
    pub fn num_classes(&self) -> usize {
        self.names.len()
    }

    /// How the model (an ensemble's first member) runs: the CPU fast path, or plain and why
    /// (see README, "Speed"); [`Engine::models_json`] has every model's.
    pub fn optimization(&self) -> &model::Optimization {
        self.members[0].model.optimization()
    }

    /// Every model with its path, its share of the result (its weight over the sum), the
    /// tensor size its preprocessing gives, its output kind and how it runs
    /// (`evsdk_model_info`'s `"models"`).
    pub fn models_json(&self) -> serde_json::Value {
        self.members
            .iter()
            .map(|m| {
                let size = m.preprocess.output_size();
                serde_json::json!({
                    "model_path": m.path.display().to_string(),
                    "weight": m.share,
                    "input_size": [size.height, size.width],
                    "model_output": match m.model_output {
                        ModelOutput::Logits => "logits",
                        ModelOutput::Probabilities => "probabilities",
                    },
                    "optimization": m.model.optimization().to_json(),
                })
            })
            .collect()
    }

    /// Whether calls run on per-thread CUDA streams (`"cuda_streams"` on a CUDA model).
    pub fn cuda_streams(&self) -> bool {
        self.members[0].model.cuda_streams()
    }

    /// "cpu" or "cuda:N".
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Why `"device": "auto"` runs on the CPU ([`crate::cuda::devices`]); `None` when it runs
    /// on CUDA or the config asked for a device.
    pub fn cpu_fallback(&self) -> Option<&'static str> {
        if self.config.device == crate::config::DeviceSpec::Auto && self.device_name == "cpu" {
            crate::cuda::devices().err()
        } else {
            None
        }
    }

    /// The run options a call with no `args` uses.
    pub fn run_defaults(&self) -> RunOptions {
        self.run_defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the defaults for later calls (`ji_update_config`); same keys as `args`.
    /// The read, the merge and the write happen under one write lock, so concurrent updates
    /// of different keys are all kept.
    pub fn update_config(&self, args: Option<&str>) -> Result<()> {
        let mut defaults = self.run_defaults.write().unwrap_or_else(|e| e.into_inner());
        *defaults = defaults.with_args(args)?;
        Ok(())
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            exif_transpose: self.config.preprocess.exif_transpose,
            max_pixels: self.config.preprocess.max_image_pixels,
        }
    }

    /// Decodes an encoded image file's bytes as `PIL.Image.open(...).convert('RGB')` would.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage> {
        decode_image(bytes, &self.decode_options())
    }

    /// Converts a raw BGR/BGRA/gray frame.
    pub fn frame_to_rgb(&self, frame: &RawFrame) -> Result<RgbImage> {
        frame.to_rgb(self.config.preprocess.max_image_pixels)
    }

    /// Classifies decoded images in one forward pass per model; `k` predictions per image.
    pub fn classify_batch(&self, images: &[&RgbImage], k: usize) -> Result<Vec<Classification>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut work = self.take_work();
        let result = self.forward_batch(images, &mut work);
        self.return_work(work);
        Ok(self.rank(&result?, k))
    }

    /// Turns rows of probabilities (one per image) into ranked predictions (`k` per image).
    fn rank(&self, probs: &[f32], k: usize) -> Vec<Classification> {
        probs
            .chunks_exact(self.names.len())
            .map(|row| Classification::from_probabilities(row, k))
            .collect()
    }

    /// The probabilities of `images`, one row per image: for every model, each image and its
    /// `"tta"` views go through one forward pass (image by image, the views after their
    /// image); each view's scores become probabilities (softmax for a logits model), the
    /// views' mean is the model's, and the models' weighted mean is the result. One model
    /// without views gives its probabilities exactly as they are.
    fn forward_batch(&self, images: &[&RgbImage], work: &mut Work) -> Result<Vec<f32>> {
        let views = 1 + self.config.tta.len();
        let classes = self.names.len();
        let n = images.len();
        let mut sum = vec![0f64; n * classes];
        for m in &self.members {
            let size = self.tensors(images, &m.preprocess, work)?;
            let scores = m.model.forward_grouped(
                &mut work.input,
                n * views,
                views,
                size.height,
                size.width,
            )?;
            if scores.len() != n * views * classes {
                return Err(Error::Inference(format!(
                    "{} returned {} scores per image, expected {classes}",
                    m.path.display(),
                    scores.len() / (n * views)
                )));
            }
            for (i, image) in scores.chunks_exact(views * classes).enumerate() {
                let mut mean = vec![0f64; classes];
                for row in image.chunks_exact(classes) {
                    let probs = match m.model_output {
                        ModelOutput::Logits => softmax(row),
                        ModelOutput::Probabilities => row.to_vec(),
                    };
                    for (a, p) in mean.iter_mut().zip(&probs) {
                        *a += *p as f64;
                    }
                }
                for (s, a) in sum[i * classes..(i + 1) * classes].iter_mut().zip(&mean) {
                    *s += a / views as f64 * m.share;
                }
            }
        }
        Ok(sum.into_iter().map(|p| p as f32).collect())
    }

    /// Preprocesses `images` with `pre` into `work.input`, each image followed by its
    /// `"tta"` views. Batches are preprocessed in parts on libtorch's intra-op threads
    /// (`parallel`, each part with its own pooled buffers), so a GPU is not left waiting on one
    /// CPU core; no thread of our own is started.
    fn tensors(
        &self,
        images: &[&RgbImage],
        pre: &PreprocessConfig,
        work: &mut Work,
    ) -> Result<Size> {
        work.input.clear();
        let threads = if images.len() > 1 {
            crate::parallel::threads().min(images.len()).min(8)
        } else {
            1
        };
        if threads <= 1 {
            return self.append_tensors(images, pre, &mut work.pre, &mut work.input);
        }
        let per = images.len().div_ceil(threads);
        let chunks: Vec<&[&RgbImage]> = images.chunks(per).collect();
        let slots: Vec<PartSlot> = chunks.iter().map(|_| Mutex::new(None)).collect();
        crate::parallel::for_each(chunks.len(), |i| {
            let mut w = self.take_work();
            w.input.clear();
            let mut part = std::mem::take(&mut w.input);
            let r = self.append_tensors(chunks[i], pre, &mut w.pre, &mut part);
            w.input = part;
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r.map(|s| (s, w)));
        });
        let parts = slots.into_iter().map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("for_each runs every part")
        });
        let mut size = None;
        let mut result = Ok(());
        for part in parts {
            match part {
                Ok((s, w)) => {
                    if *size.get_or_insert(s) != s {
                        result = Err(different_sizes());
                    }
                    work.input.extend_from_slice(&w.input);
                    self.return_work(w);
                }
                Err(e) => result = result.and(Err(e)),
            }
        }
        result?;
        Ok(size.expect("non-empty batch"))
    }

    /// Appends the tensors of `images` (each followed by its `"tta"` views) to `out`; all
    /// must have the same size.
    fn append_tensors(
        &self,
        images: &[&RgbImage],
        cfg: &PreprocessConfig,
        pre: &mut Preprocessor,
        out: &mut Vec<f32>,
    ) -> Result<Size> {
        let mut hw = None;
        for img in images {
            let start = out.len();
            let size = pre.append_tensor(img, cfg, out)?;
            if *hw.get_or_insert(size) != size {
                return Err(different_sizes());
            }
            for view in &self.config.tta {
                append_view(out, start, size, *view);
            }
        }
        Ok(hw.expect("non-empty batch"))
    }

    /// Classifies one decoded image.
    pub fn classify(&self, img: &RgbImage, k: usize) -> Result<Classification> {
        Ok(self.classify_batch(&[img], k)?.remove(0))
    }

    /// Decodes an encoded image and classifies it, reusing this engine's buffers (the hot
    /// path of `evsdk_process_image/file` and `ji_calc_buffer/file`). `path`, if given, is
    /// named in decode errors.
    pub fn run_encoded_json(
        &self,
        bytes: &[u8],
        path: Option<&Path>,
        args: Option<&str>,
    ) -> Result<Rendered> {
        let opts = self.run_defaults().with_args(args)?;
        let mut work = self.take_work();
        // Only the pixels the preprocessing reads are decoded (JPEG): the same tensor as a
        // full decode (see `decode_image_window`); for an ensemble, the pixels any member
        // reads.
        let result = match decode_image_window(
            bytes,
            &self.decode_options(),
            std::mem::take(&mut work.decoded),
            &|w, h| self.source_window(w, h),
        ) {
            Ok((img, _)) => {
                let r = self.forward_batch(&[&img], &mut work);
                work.decoded = img.data;
                r
            }
            Err(Error::Decode(m)) => Err(Error::Decode(match path {
                Some(p) => format!("{}: {m}", p.display()),
                None => m,
            })),
            Err(e) => Err(e),
        };
        self.return_work(work);
        let cls = self.rank(&result?, opts.topk.max(1)).remove(0);
        Ok(self.render(&cls, &opts))
    }

    /// The pixels of a `width x height` image that some model's preprocessing reads (see
    /// [`source_window`]): the smallest rectangle holding every member's window, or `None`
    /// when one of them reads the whole image.
    fn source_window(&self, width: u32, height: u32) -> Option<Roi> {
        let mut union: Option<Roi> = None;
        for m in &self.members {
            let w = source_window(width, height, &m.preprocess)?;
            union = Some(match union {
                None => w,
                Some(u) => {
                    let (x0, y0) = (u.x.min(w.x), u.y.min(w.y));
                    let x1 = (u.x + u.width).max(w.x + w.width);
                    let y1 = (u.y + u.height).max(w.y + w.height);
                    Roi {
                        x: x0,
                        y: y0,
                        width: x1 - x0,
                        height: y1 - y0,
                    }
                }
            });
        }
        union
    }

    /// Converts a raw frame into this engine's pooled buffer, classifies it and renders the
    /// result JSON (the path of `ji_calc_frame`, `evsdk_process_bgr` and one-frame
    /// `ji_calc_image`): no per-call allocation for the RGB copy.
    pub fn run_frame_json(&self, frame: &RawFrame, args: Option<&str>) -> Result<Rendered> {
        let opts = self.run_defaults().with_args(args)?;
        let mut work = self.take_work();
        let result = match frame.to_rgb_reusing(
            self.config.preprocess.max_image_pixels,
            std::mem::take(&mut work.decoded),
        ) {
            Ok(img) => {
                let r = self.forward_batch(&[&img], &mut work);
                work.decoded = img.data;
                r
            }
            Err(e) => Err(e),
        };
        self.return_work(work);
        let cls = self.rank(&result?, opts.topk.max(1)).remove(0);
        Ok(self.render(&cls, &opts))
    }

    /// Classifies and renders the result JSON object for one image with the call's `args`.
    pub fn run_json(&self, img: &RgbImage, args: Option<&str>) -> Result<Rendered> {
        let opts = self.run_defaults().with_args(args)?;
        let cls = self.classify(img, opts.topk.max(1))?;
        Ok(self.render(&cls, &opts))
    }

    /// Classifies a batch and renders one JSON object per image.
    pub fn run_batch_json(
        &self,
        images: &[&RgbImage],
        args: Option<&str>,
    ) -> Result<Vec<Rendered>> {
        let opts = self.run_defaults().with_args(args)?;
        let results = self.classify_batch(images, opts.topk.max(1))?;
        Ok(results.iter().map(|c| self.render(c, &opts)).collect())
    }

    pub fn render(&self, cls: &Classification, opts: &RunOptions) -> Rendered {
        output::render(cls, &self.names, opts, &self.device_name)
    }

    /// What this engine changed, or may change, for the whole process (`evsdk_model_info`'s
    /// `"process_wide"`).
    pub fn process_wide(&self) -> serde_json::Value {
        serde_json::json!({
            "intra_op_threads": tch::get_num_threads(),
            "num_threads_set": self.config.num_threads > 0,
            "cudnn_benchmark": self.device_name != "cpu",
            "cuda_empty_cache": self.device_name != "cpu",
            "huge_pages": self.huge_pages,
            "onednn_fusion_pass": self
                .members
                .iter()
                .any(|m| m.model.optimization().path == "cpu_fused"),
        })
    }

    fn take_work(&self) -> Work {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Pools `work` for the next call, within the pool's bounds (count and bytes); what does
    /// not fit is freed now.
    fn return_work(&self, work: Work) {
        if self.huge_pages {
            crate::hugepages::advise_heap_growth();
        }
        let bytes = work.retained_bytes();
        if bytes > MAX_POOLED_WORK_BYTES {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let pooled: usize = pool.iter().map(Work::retained_bytes).sum();
        if pool.len() < MAX_POOLED_WORKS && pooled + bytes <= MAX_POOL_BYTES {
            pool.push(work);
        }
    }

    /// Bytes the buffer pool holds between calls (at most `MAX_POOL_BYTES`).
    pub fn pooled_bytes(&self) -> usize {
        let pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.iter().map(Work::retained_bytes).sum()
    }
}

/// `"probabilities"` on a model that outputs logits would report raw scores as confidences
/// (3.6 and worse); `"logits"` on a model that ends in softmax would flatten them. The probe's
/// outputs (zeros in, at load) tell which the model gives.
fn check_output_kind(config: &Config, model: &Model) -> Result<()> {
    let p = model.probe_scores();
    if p.len() < 2 {
        return Ok(());
    }
    let sum: f64 = p.iter().map(|&x| x as f64).sum();
    let (lo, hi) = p
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    // fp16 outputs round to about 1e-3.
    // Reduced precisions (fp16, bf16) round a distribution's sum more coarsely.
    let tol = if model.optimization().precision == "fp32" {
        1e-4
    } else {
        1e-2
    };
    let distribution = lo >= -(tol as f32) && hi <= 1.0 + tol as f32 && (sum - 1.0).abs() <= tol;
    let stats = format!(
        "on {} its {} outputs range from {lo} to {hi} and sum to {sum:.6}",
        model.probe_input(),
        p.len()
    );
    // When the model's own metadata states the wrong kind, the config's fix must also
    // override it (it would otherwise be an error of its own: the two disagree).
    let from_metadata = !config.override_model_metadata
        && crate::metadata::read(&config.model_path)
            .ok()
            .flatten()
            .is_some_and(|m| m.config.contains_key("model_output"));
    let fix = |kind: &str| {
        if from_metadata {
            format!(
                "set \"model_output\": \"{kind}\" and \"override_model_metadata\": true (the \
                 model's metadata says otherwise), or export the model again without \
                 --model-output"
            )
        } else {
            format!("set \"model_output\": \"{kind}\"")
        }
    };
    match (config.model_output, distribution) {
        (ModelOutput::Probabilities, false) => Err(Error::ModelLoad(format!(
            "\"model_output\" is \"probabilities\" but {} does not output probabilities: {stats}. \
             It outputs logits, so softmax must be applied: {}",
            config.model_path.display(),
            fix("logits")
        ))),
        (ModelOutput::Logits, true) => Err(Error::ModelLoad(format!(
            "{} already outputs probabilities ({stats}: the model ends in softmax), but \
             \"model_output\" is \"logits\", which would apply softmax a second time and \
             flatten the confidences: {}",
            config.model_path.display(),
            fix("probabilities")
        ))),
        _ => Ok(()),
    }
}

fn different_sizes() -> Error {
    Error::InvalidArgument("images in a batch preprocess to different sizes (set crop_size)".into())
}
