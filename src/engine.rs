//! The engine ties config, class names, decoding, preprocessing, the model and the JSON
//! together. It is `Send + Sync`: calls on one engine may run concurrently from any thread
//! (libtorch's TorchScript forward is re-entrant); per-call scratch buffers are pooled.

use crate::config::{Config, ModelOutput, RunOptions, Size};
use crate::decode::{decode_image, decode_image_window, DecodeOptions};
use crate::error::{Error, Result};
use crate::frame::RawFrame;
use crate::image::RgbImage;
use crate::model::{self, softmax, Model};
use crate::output::{self, Classification, Rendered};
use crate::preprocess::{source_window, Preprocessor};
use std::path::Path;
use std::sync::{Mutex, RwLock};

/// One caller's scratch: the decoded pixels' buffer, resize buffers and the batch's input
/// tensor.
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
    model: Model,
    device_name: String,
    /// The run options calls start from; `update_config` changes them.
    run_defaults: RwLock<RunOptions>,
    /// Reusable preprocessing buffers, so steady-state calls do not allocate them.
    pool: Mutex<Vec<Work>>,
    /// `"huge_pages"` on a CPU engine: the heap is re-advised when it grows (`hugepages`).
    huge_pages: bool,
}

impl Engine {
    /// Loads the config at `path`, or at `$EV_SDK_CONFIG` / the platform default when `None`.
    pub fn from_config_path(path: Option<&Path>) -> Result<Engine> {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(Config::default_path);
        Engine::new(Config::load(&path)?)
    }

    /// Loads class names and the model described by `config`, checks they agree, and warms
    /// up every batch size a call can be known to use (see [`Engine::batch_sizes`]).
    pub fn new(config: Config) -> Result<Engine> {
        let names = config.class_names()?;
        if config.num_threads > 0 {
            // Process-wide: libtorch has one intra-op thread count (stated in ji.h).
            tch::set_num_threads(config.num_threads as i32);
        }
        let device = model::resolve_device(config.device)?;
        let size = config.preprocess.output_size();
        let mut model = Model::load(
            &config.model_path,
            device,
            config.precision,
            (size.height, size.width),
            config.optimize,
            config.cuda_freeze,
        )?;
        if model.num_classes() != names.len() {
            return Err(Error::ModelLoad(format!(
                "{} outputs {} scores per image but {} lists {} classes",
                config.model_path.display(),
                model.num_classes(),
                config.class_names_source(),
                names.len()
            )));
        }
        check_output_kind(&config, &model)?;
        model.use_cuda_streams(config.cuda_streams);
        for batch in Engine::batch_sizes(&config) {
            model.prepare_batch(batch, config.warmup)?;
        }
        let huge_pages = device == tch::Device::Cpu && config.huge_pages;
        if huge_pages {
            // The weights and buffers the forward walks are in the heap now; a kernel without
            // THP leaves it as it is (see `hugepages`).
            let _ = crate::hugepages::advise_heap();
        }
        Ok(Engine {
            device_name: model::device_name(device),
            run_defaults: RwLock::new(config.run.clone()),
            config,
            names,
            model,
            pool: Mutex::new(Vec::new()),
            huge_pages,
        })
    }

    /// The forward batch sizes known at init, which `new` warms up: 1 (every synchronous
    /// call, and a batch of frames runs image by image on the CPU fast path) and the
    /// asynchronous mode's `async_max_batch`.
    pub fn batch_sizes(config: &Config) -> Vec<usize> {
        let mut sizes = vec![1];
        let async_batch = config.asynchronous.max_batch.max(1) as usize;
        if async_batch > 1 {
            sizes.push(async_batch);
        }
        sizes
    }

    /// One forward pass of every batch size `new` warmed up, on the calling thread: for a
    /// thread that will run calls (an async lane), whose first forward would otherwise pay
    /// for per-thread setup (on a GPU: its cuDNN / cuBLAS handles).
    pub fn warm_thread(&self) -> Result<()> {
        let size = self.config.preprocess.output_size();
        for batch in Engine::batch_sizes(&self.config) {
            let mut probe = vec![0f32; batch * 3 * size.height as usize * size.width as usize];
            self.model
                .forward(&mut probe, batch, size.height, size.width)?;
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

    /// How the model runs: the CPU fast path, or plain and why (see README, "Speed").
    pub fn optimization(&self) -> &model::Optimization {
        self.model.optimization()
    }

    /// Whether calls run on per-thread CUDA streams (`"cuda_streams"` on a CUDA model).
    pub fn cuda_streams(&self) -> bool {
        self.model.cuda_streams()
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

    /// Classifies decoded images in one forward pass; `k` predictions per image.
    pub fn classify_batch(&self, images: &[&RgbImage], k: usize) -> Result<Vec<Classification>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut work = self.take_work();
        let result = self.forward_batch(images, &mut work);
        self.return_work(work);
        self.rank(&result?, images.len(), k)
    }

    /// Turns `batch` rows of model outputs into ranked predictions (`k` per image).
    fn rank(&self, scores: &[f32], batch: usize, k: usize) -> Result<Vec<Classification>> {
        let width = scores.len() / batch;
        if width != self.names.len() {
            return Err(Error::Inference(format!(
                "the model returned {width} scores per image, expected {}",
                self.names.len()
            )));
        }
        Ok(scores
            .chunks_exact(width)
            .map(|row| {
                let probs = match self.config.model_output {
                    ModelOutput::Logits => softmax(row),
                    ModelOutput::Probabilities => row.to_vec(),
                };
                Classification::from_probabilities(&probs, k)
            })
            .collect())
    }

    /// Preprocesses `images` into one tensor and runs the model on it. Batches are
    /// preprocessed in parts on libtorch's intra-op threads (`parallel`, each part with its
    /// own pooled buffers), so a GPU is not left waiting on one CPU core; no thread of our
    /// own is started.
    fn forward_batch(&self, images: &[&RgbImage], work: &mut Work) -> Result<Vec<f32>> {
        work.input.clear();
        let threads = if images.len() > 1 {
            crate::parallel::threads().min(images.len()).min(8)
        } else {
            1
        };
        let size = if threads <= 1 {
            self.append_tensors(images, &mut work.pre, &mut work.input)?
        } else {
            let per = images.len().div_ceil(threads);
            let chunks: Vec<&[&RgbImage]> = images.chunks(per).collect();
            let slots: Vec<PartSlot> = chunks.iter().map(|_| Mutex::new(None)).collect();
            crate::parallel::for_each(chunks.len(), |i| {
                let mut w = self.take_work();
                w.input.clear();
                let mut part = std::mem::take(&mut w.input);
                let r = self.append_tensors(chunks[i], &mut w.pre, &mut part);
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
            size.expect("non-empty batch")
        };
        self.model
            .forward(&mut work.input, images.len(), size.height, size.width)
    }

    /// Appends the tensors of `images` to `out`; all must have the same size.
    fn append_tensors(
        &self,
        images: &[&RgbImage],
        pre: &mut Preprocessor,
        out: &mut Vec<f32>,
    ) -> Result<Size> {
        let mut hw = None;
        for img in images {
            let size = pre.append_tensor(img, &self.config.preprocess, out)?;
            if *hw.get_or_insert(size) != size {
                return Err(different_sizes());
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
        // full decode (see `decode_image_window`).
        let pre = &self.config.preprocess;
        let result = match decode_image_window(
            bytes,
            &self.decode_options(),
            std::mem::take(&mut work.decoded),
            &|w, h| source_window(w, h, pre),
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
        let cls = self.rank(&result?, 1, opts.topk.max(1))?.remove(0);
        Ok(self.render(&cls, &opts))
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
        let cls = self.rank(&result?, 1, opts.topk.max(1))?.remove(0);
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
            "onednn_fusion_pass": self.model.optimization().path == "cpu_fused",
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
    match (config.model_output, distribution) {
        (ModelOutput::Probabilities, false) => Err(Error::ModelLoad(format!(
            "\"model_output\" is \"probabilities\" but {} does not output probabilities: {stats}. \
             It outputs logits: remove \"model_output\" (or set it to \"logits\") so softmax is applied",
            config.model_path.display()
        ))),
        (ModelOutput::Logits, true) => Err(Error::ModelLoad(format!(
            "{} already outputs probabilities ({stats}: the model ends in softmax), but \
             \"model_output\" is \"logits\", which would apply softmax a second time and \
             flatten the confidences: set \"model_output\": \"probabilities\"",
            config.model_path.display()
        ))),
        _ => Ok(()),
    }
}

fn different_sizes() -> Error {
    Error::InvalidArgument("images in a batch preprocess to different sizes (set crop_size)".into())
}
