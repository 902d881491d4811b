//! The TorchScript model through tch: loading on the configured device, forward passes,
//! and reading the scores back. Errors come back as `Result` (tch's `f_*` forms).

use crate::config::{DeviceSpec, Precision};
use crate::error::{Error, Result};
use crate::jit::{c_path, JitModule};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tch::{Device, Kind, Tensor};

pub struct Model {
    runner: Runner,
    num_classes: usize,
    /// The outputs of the load-time probe, for checks on the output kind.
    probe_scores: Vec<f32>,
    report: Optimization,
    /// The input size the model was prepared for (height, width).
    hw: (u32, u32),
}

enum Runner {
    /// The TorchScript module as loaded (or frozen on CUDA), run as it is.
    Plain {
        module: JitModule,
        device: Device,
        kind: Kind,
        /// Forward passes each batch size has had at init (see `Model::prepare_batch`).
        warmed: Mutex<HashMap<usize, u32>>,
    },
    /// The CPU fast path (see `FastModel`), shared with every model of the same file (see
    /// `fast_model`).
    Fast(Arc<FastModel>),
}

/// How the model runs, for the init log and reports (`Engine::optimization`).
#[derive(Clone, Debug, PartialEq)]
pub struct Optimization {
    /// "cpu_fused" (the fast path), "plain" or "cuda_frozen".
    pub path: &'static str,
    /// Why the fast path is not used, when it was asked for and failed or did not match.
    pub fallback_reason: Option<String>,
    /// Zero pads moved into the convolutions that follow them.
    pub pads_folded: u32,
    /// oneDNN Graph fusion groups in the batch-1 graph after warm-up.
    pub fusion_groups: u32,
    pub channels_last: bool,
    /// "fp32", "fp16" or "bf16".
    pub precision: &'static str,
    /// Largest |logit difference| from the plain model on the probe inputs, and the limit.
    pub probe_max_abs_diff: Option<f64>,
    pub probe_tolerance: Option<f64>,
}

impl Optimization {
    /// The report as JSON (`evsdk_model_info`), field names as in the struct.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "fallback_reason": self.fallback_reason,
            "pads_folded": self.pads_folded,
            "fusion_groups": self.fusion_groups,
            "channels_last": self.channels_last,
            "precision": self.precision,
            "probe_max_abs_diff": self.probe_max_abs_diff,
            "probe_tolerance": self.probe_tolerance,
        })
    }

    fn plain(path: &'static str, precision: &'static str, reason: Option<String>) -> Self {
        Optimization {
            path,
            fallback_reason: reason,
            pads_folded: 0,
            fusion_groups: 0,
            channels_last: false,
            precision,
            probe_max_abs_diff: None,
            probe_tolerance: None,
        }
    }
}

/// The device libtorch will use for a spec. `auto` and `cuda` first load libtorch's CUDA
/// backend at run time ([`crate::cuda`]); `auto` falls back to the CPU when CUDA cannot be
/// used and says why on stderr, `cuda` is then a config error with the same reason.
pub fn resolve_device(spec: DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => Ok(crate::cuda::auto_device()),
        DeviceSpec::Cuda(n) => {
            let count = crate::cuda::devices().map_err(|reason| {
                Error::Config(format!(
                    "\"device\" asks for cuda:{n} but CUDA cannot be used: {reason}"
                ))
            })?;
            if n < count {
                Ok(Device::Cuda(n))
            } else {
                Err(Error::Config(format!(
                    "\"device\" asks for cuda:{n} but only {count} CUDA device(s) exist"
                )))
            }
        }
    }
}

/// A human-readable device name for JSON and reports ("cpu", "cuda:0").
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_owned(),
    }
}

extern "C" {
    // src/optimize.cpp. The module-returning functions give a new `torch::jit::Module*`, or
    // NULL with `err` set.
    fn ji_optimize_torchscript(
        path: *const c_char,
        device: c_int,
        half: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn ji_fast_prepare(
        path: *const c_char,
        channels_last: c_int,
        bf16: c_int,
        stats: *mut c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn ji_fusion_on_this_thread(on: c_int, err: *mut c_char, err_len: usize) -> c_int;
    fn ji_last_graph_stats(stats: *mut c_int);
}

/// The model at `path` after `torch.jit.freeze`, loaded on the CUDA `device`, in fp16 when
/// `half` (`"optimize": true` on CUDA).
fn load_frozen_cuda(path: &Path, device: Device, half: bool) -> Result<JitModule> {
    let c_path = c_path(path).map_err(Error::ModelLoad)?;
    let index = match device {
        Device::Cuda(n) => n as c_int,
        _ => -1,
    };
    // SAFETY: valid C string; the C++ side catches every exception and writes at most
    // err_len bytes, NUL-terminated, into err.
    JitModule::from_new(|err, len| unsafe {
        ji_optimize_torchscript(c_path.as_ptr(), index, half as c_int, err, len)
    })
    .map_err(|msg| {
        Error::ModelLoad(format!(
            "freezing {} failed (remove \"optimize\" or set it to false to use the model as \
             it is): {msg}",
            path.display()
        ))
    })
}

/// Warm-up calls that let the profiling executor fuse a new instance's graph (the first call
/// profiles, the second optimises, the third runs the fused graph).
const FUSION_WARMUP_CALLS: u32 = 3;
/// At most this many batch shapes get their own fused instance; other batch sizes run image
/// by image through the batch-1 instance.
const MAX_FUSED_SHAPES: usize = 16;
/// The fast path must match the plain model within this much, relative to the logits' scale
/// (max(1, largest |logit|)).
const PROBE_TOLERANCE: f64 = 1e-4;

/// The CPU fast path: the model frozen with its zero pads folded into the convolutions
/// (`base`), and per batch size a copy of it whose graph oneDNN Graph fused while warming up
/// on that shape (a fused graph is specialised to the shape it saw: another batch size would
/// run unfused). Copies are made at init for the batch sizes a predictor can know then
/// (`Model::prepare_batch`) and checked against the batch-1 results of the probe input before
/// they serve; a judged call never builds one: other batch sizes run image by image.
struct FastModel {
    base: JitModule,
    channels_last: bool,
    kind: Kind,
    hw: (u32, u32),
    /// One probe image (CHW) and the batch-1 instance's outputs for it.
    probe: Vec<f32>,
    probe_out: Vec<f32>,
    tolerance: f64,
    /// Batch size -> its fused instance, or None when its check failed (then that batch size
    /// runs image by image through the batch-1 instance). A cell is filled once, by the first
    /// predictor that prepares that batch size, without holding up the others.
    instances: Mutex<HashMap<usize, Arc<Instance>>>,
    /// Forward passes each batch size's instance has had at init.
    warmed: Mutex<HashMap<usize, u32>>,
}

type Instance = OnceLock<Option<Arc<JitModule>>>;

/// oneDNN Graph fusion on for graphs the calling thread optimises, until dropped (also when
/// what runs meanwhile fails or panics).
struct FusionOn(());

impl FusionOn {
    fn new() -> std::result::Result<FusionOn, String> {
        let mut err = vec![0 as c_char; 512];
        // SAFETY: the C++ side catches every exception and writes at most err.len() bytes.
        if unsafe { ji_fusion_on_this_thread(1, err.as_mut_ptr(), err.len()) } != 0 {
            // SAFETY: NUL-terminated by the C++ side.
            let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
            return Err(format!("oneDNN Graph fusion unavailable: {msg}"));
        }
        Ok(FusionOn(()))
    }
}

impl Drop for FusionOn {
    fn drop(&mut self) {
        let mut err = [0 as c_char; 64];
        // SAFETY: as in `new`; turning it off cannot fail once it could be turned on.
        unsafe { ji_fusion_on_this_thread(0, err.as_mut_ptr(), err.len()) };
    }
}

impl FastModel {
    /// The input tensor for the fast path: channels-last and in its precision.
    fn input(&self, x: Tensor) -> std::result::Result<Tensor, tch::TchError> {
        let x = if self.channels_last {
            // NHWC in memory, NCHW in shape: what channels-last weights want.
            x.f_permute([0, 2, 3, 1])?
                .f_contiguous()?
                .f_permute([0, 3, 1, 2])?
        } else {
            x
        };
        if self.kind == Kind::Float {
            Ok(x)
        } else {
            x.f_to_kind(self.kind)
        }
    }

    fn run(&self, m: &JitModule, input: &mut [f32], batch: usize) -> Result<Vec<f32>> {
        let (h, w) = self.hw;
        forward_module(m, input, batch, h, w, Device::Cpu, |x| self.input(x))
    }

    /// A fresh copy of the base module, fused while warming up on `batch` probe images;
    /// returns it with its outputs on that warm-up batch.
    fn new_instance(&self, batch: usize) -> std::result::Result<(JitModule, Vec<f32>), String> {
        let module = self.base.clone_module()?;
        let input = self.probe.repeat(batch);
        let _fusion = FusionOn::new()?;
        let mut out = Vec::new();
        for _ in 0..FUSION_WARMUP_CALLS {
            out = self
                .run(&module, &mut input.clone(), batch)
                .map_err(|e| e.to_string())?;
        }
        Ok((module, out))
    }

    /// The fused instance for `batch` if one was prepared; None when that batch size runs
    /// image by image.
    fn instance(&self, batch: usize) -> Option<Arc<JitModule>> {
        let map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&batch)
            .and_then(|cell| cell.get())
            .cloned()
            .flatten()
    }

    /// Makes (once per process) the fused instance for `batch`, unless the limit on shapes is
    /// reached. Returns whether it serves.
    fn prepare(&self, batch: usize) -> bool {
        let cell = {
            let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
            if !map.contains_key(&batch) && map.len() >= MAX_FUSED_SHAPES {
                return false;
            }
            map.entry(batch).or_default().clone()
        };
        cell.get_or_init(|| self.make_instance(batch)).is_some()
    }

    /// A checked fused instance for `batch`, or None (said on stderr) when there is none.
    fn make_instance(&self, batch: usize) -> Option<Arc<JitModule>> {
        match self.new_instance(batch) {
            Ok((module, out)) => {
                self.warmed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(batch, FUSION_WARMUP_CALLS);
                let diff = max_abs_diff(&out, &self.probe_out.repeat(batch));
                if diff <= self.tolerance {
                    Some(Arc::new(module))
                } else {
                    eprintln!(
                        "libji: the fused model for batch {batch} differs from batch 1 by \
                         {diff:.3e} (limit {:.1e}); that batch size runs image by image",
                        self.tolerance
                    );
                    None
                }
            }
            Err(e) => {
                eprintln!(
                    "libji: no fused model for batch {batch} ({e}); that batch size runs image \
                     by image"
                );
                None
            }
        }
    }

    /// Runs `batch` images. A batch size without its own fused instance runs in groups of
    /// `group` images through the instance of that size when there is one (the views of one
    /// image under test-time augmentation: each group then runs as a one-image call would),
    /// else image by image through the batch-1 instance.
    fn forward(
        &self,
        input: &mut [f32],
        batch: usize,
        group: usize,
        h: u32,
        w: u32,
    ) -> Result<Vec<f32>> {
        if (h, w) != self.hw {
            return Err(Error::Inference(format!(
                "the model was prepared for {}x{} inputs, got {h}x{w}",
                self.hw.0, self.hw.1
            )));
        }
        if let Some(m) = self.instance(batch) {
            return self.run(&m, input, batch);
        }
        let grouped = (group > 1 && batch.is_multiple_of(group))
            .then(|| self.instance(group))
            .flatten();
        let (m, n) = match grouped {
            Some(m) => (m, group),
            // Image by image through the batch-1 instance (checked at load, so always present).
            None => (
                self.instance(1)
                    .ok_or_else(|| Error::Inference("the fused batch-1 model is missing".into()))?,
                1,
            ),
        };
        let per = input.len() / batch.max(1) * n;
        let mut out = Vec::new();
        for part in input.chunks_exact_mut(per) {
            out.extend(self.run(&m, part, n)?);
        }
        Ok(out)
    }
}

/// Diagnostics: (oneDNN Graph fusion groups, zero pads) in the optimised graph the calling
/// thread last ran through TorchScript's profiling executor; None before any.
pub fn last_graph_stats() -> Option<(u32, u32)> {
    let mut stats = [0 as c_int; 2];
    // SAFETY: writes two ints; reads this thread's last optimised graph.
    unsafe { ji_last_graph_stats(stats.as_mut_ptr()) };
    (stats[0] >= 0).then(|| (stats[0] as u32, stats[1] as u32))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(
            0.0,
            |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        )
}

/// Deterministic probe images (CHW, roughly normalised-image statistics: a smooth pattern
/// plus noise) for checking the fast path against the plain model.
fn probe_image(h: u32, w: u32, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let (h, w) = (h as usize, w as usize);
    let mut v = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let fx = x as f32 / w.max(1) as f32;
                let fy = y as f32 / h.max(1) as f32;
                let smooth = ((fx * (3.0 + c as f32) + seed as f32).sin()
                    * (fy * 5.0 - c as f32).cos())
                    * 1.5;
                v.push(smooth + noise());
            }
        }
    }
    v
}

/// Does this CPU run bf16 natively (AVX512-BF16 or AMX-BF16)? Elsewhere oneDNN emulates it,
/// slower than fp32.
fn cpu_has_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
                l.split_whitespace()
                    .any(|f| f == "avx512_bf16" || f == "amx_bf16")
            })
        })
        .unwrap_or(false)
}

/// Forward passes run so far in this process, by batch size (the last slot counts every batch
/// of `MAX_COUNTED_BATCH` or more), for tests and diagnostics ([`forward_passes`]).
const MAX_COUNTED_BATCH: usize = 64;
static FORWARD_PASSES: [AtomicU64; MAX_COUNTED_BATCH + 1] =
    [const { AtomicU64::new(0) }; MAX_COUNTED_BATCH + 1];

/// How many forward passes of batch size `batch` this process has run, through any model (a
/// test hook: warm-up at init and calls are counted alike).
pub fn forward_passes(batch: usize) -> u64 {
    FORWARD_PASSES[batch.min(MAX_COUNTED_BATCH)].load(Ordering::Relaxed)
}

/// Runs `module` on `batch` CHW float32 images laid end to end in `input` (moved to `device`,
/// then through `prepare`); returns the raw outputs, `batch` rows of equal width, as f32.
fn forward_module(
    module: &JitModule,
    input: &mut [f32],
    batch: usize,
    h: u32,
    w: u32,
    device: Device,
    prepare: impl FnOnce(Tensor) -> std::result::Result<Tensor, tch::TchError>,
) -> Result<Vec<f32>> {
    let shape = [batch as i64, 3, h as i64, w as i64];
    let inference = |e: tch::TchError| Error::Inference(summarize_torch_error(&e.to_string()));
    let numel = shape.iter().product::<i64>() as usize;
    if input.len() != numel {
        return Err(Error::Inference(format!(
            "input holds {} values, {shape:?} needs {numel}",
            input.len()
        )));
    }
    let strides = [3 * h as i64 * w as i64, h as i64 * w as i64, w as i64, 1];
    // SAFETY: a view of `input` (numel f32 values, checked above) without copying it;
    // `input` is borrowed mutably, so a model writing its input in place (an in-place first
    // op) writes memory nothing else reads meanwhile; every tensor made here, including any
    // output aliasing the input, is dropped or copied out before this function returns,
    // while `input` is still borrowed.
    let mut x = unsafe {
        Tensor::f_from_blob(
            input.as_mut_ptr() as *const u8,
            &shape,
            &strides,
            Kind::Float,
            Device::Cpu,
        )
    }
    .map_err(inference)?;
    if device != Device::Cpu {
        x = x.f_to_device(device).map_err(inference)?;
    }
    let x = prepare(x).map_err(inference)?;
    FORWARD_PASSES[batch.min(MAX_COUNTED_BATCH)].fetch_add(1, Ordering::Relaxed);
    let out = module.forward(&x).map_err(Error::Inference)?;
    let out = out
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_to_device(Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .map_err(inference)?;
    let numel = out.numel();
    if numel == 0 || numel % batch != 0 {
        return Err(Error::Inference(format!(
            "model output shape {:?} does not split into {batch} rows",
            out.size()
        )));
    }
    let mut scores = vec![0f32; numel];
    out.f_copy_data(&mut scores, numel).map_err(inference)?;
    Ok(scores)
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Fp32 => "fp32",
        Precision::Fp16 => "fp16",
        Precision::Bf16 => "bf16",
    }
}

impl Model {
    /// Loads a TorchScript file and probes its output width with one forward pass (the first
    /// of its batch-1 warm-up passes). On the CPU with `optimize`, the fast path is prepared
    /// and checked against the plain model on probe inputs; it falls back to the plain model,
    /// saying why, when a step fails or the outputs differ. On CUDA, `cuda_freeze` freezes the
    /// model.
    pub fn load(
        path: &Path,
        device: Device,
        precision: Precision,
        input_hw: (u32, u32),
        optimize: bool,
        cuda_freeze: bool,
    ) -> Result<Model> {
        if !path.is_file() {
            return Err(Error::ModelLoad(format!(
                "model file {} does not exist",
                path.display()
            )));
        }
        // A checkpoint, state dict or pickled model is not "corrupted": say how to export it.
        if let Some(msg) = crate::metadata::not_torchscript_message(path) {
            return Err(Error::ModelLoad(msg));
        }
        let on_cpu = device == Device::Cpu;
        match precision {
            Precision::Fp16 if on_cpu => {
                return Err(Error::Config(
                    "\"precision\": \"fp16\" needs CUDA, but the model runs on the CPU".into(),
                ))
            }
            Precision::Bf16 if !on_cpu => return Err(Error::Config(
                "\"precision\": \"bf16\" is for the CPU, but the model runs on CUDA (use \"fp16\")"
                    .into(),
            )),
            Precision::Bf16 if !cpu_has_bf16() => {
                return Err(Error::Config(
                    "\"precision\": \"bf16\" needs a CPU with AVX512-BF16 or AMX-BF16 (this one \
                     would emulate it, slower than fp32)"
                        .into(),
                ))
            }
            _ => {}
        }
        let kind = match precision {
            Precision::Fp32 => Kind::Float,
            Precision::Fp16 => Kind::Half,
            Precision::Bf16 => Kind::BFloat16,
        };
        let not_loadable = |e: String| {
            Error::ModelLoad(format!(
                "{} is not a loadable TorchScript model: {e}",
                path.display()
            ))
        };
        // Loaded plainly first in any case, so a bad file gets the usual message.
        let mut plain = JitModule::load(path, if cuda_freeze { Device::Cpu } else { device })
            .map_err(not_loadable)?;
        let (h, w) = input_hw;
        let forward_failed = |e: Error| {
            Error::ModelLoad(format!(
                "{}: a forward pass on a 1x3x{h}x{w} input failed: {}",
                path.display(),
                e
            ))
        };
        let convert = |m: &mut JitModule, precision| {
            m.to(device, precision).map_err(|e| {
                Error::ModelLoad(format!(
                    "{}: cannot convert its weights to {}: {e}",
                    path.display(),
                    precision_name(precision)
                ))
            })
        };
        if on_cpu && optimize {
            convert(&mut plain, Precision::Fp32)?;
            // The plain model's outputs on two probe images, for checking the fast path; only
            // computed when the fast path is prepared (not when a predictor of the same file
            // finds it ready).
            let probe = || -> Result<_> {
                let reference = [probe_image(h, w, 1), probe_image(h, w, 2)];
                let mut expected = Vec::new();
                for p in &reference {
                    expected.push(
                        forward_module(&plain, &mut p.clone(), 1, h, w, device, Ok)
                            .map_err(forward_failed)?,
                    );
                }
                Ok((reference, expected))
            };
            match fast_model(path, kind, input_hw, probe)? {
                Ok((fast, report, probe_scores)) => {
                    return Ok(Model {
                        num_classes: probe_scores.len(),
                        probe_scores,
                        runner: Runner::Fast(fast),
                        report,
                        hw: input_hw,
                    })
                }
                Err(reason) => {
                    eprintln!(
                        "libji: {}: the CPU fast path is off, running the plain model: {reason}",
                        path.display()
                    );
                    if precision == Precision::Bf16 {
                        // The plain model in bf16 (weights converted; input cast per call).
                        convert(&mut plain, precision)?;
                    }
                    let report =
                        Optimization::plain("plain", precision_name(precision), Some(reason));
                    return Model::finish(plain, device, kind, report, input_hw)
                        .map_err(forward_failed);
                }
            }
        }
        let (module, path_name) = if cuda_freeze && !on_cpu {
            drop(plain);
            (
                load_frozen_cuda(path, device, kind == Kind::Half)?,
                "cuda_frozen",
            )
        } else {
            convert(&mut plain, precision)?;
            (plain, "plain")
        };
        if let Device::Cuda(_) = device {
            // Process-wide (libtorch has one switch): stated in ji.h and model info.
            tch::Cuda::cudnn_set_benchmark(true);
        }
        let report = Optimization::plain(path_name, precision_name(precision), None);
        Model::finish(module, device, kind, report, input_hw).map_err(forward_failed)
    }

    /// A plain model: probes the output width with one forward pass on zeros (its first
    /// batch-1 warm-up pass).
    fn finish(
        module: JitModule,
        device: Device,
        kind: Kind,
        report: Optimization,
        (h, w): (u32, u32),
    ) -> Result<Model> {
        let mut model = Model {
            runner: Runner::Plain {
                module,
                device,
                kind,
                warmed: Mutex::new(HashMap::new()),
            },
            num_classes: 0,
            probe_scores: Vec::new(),
            report,
            hw: (h, w),
        };
        let mut probe = vec![0f32; 3 * h as usize * w as usize];
        let out = model.forward(&mut probe, 1, h, w)?;
        if let Runner::Plain { warmed, .. } = &model.runner {
            warmed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(1, 1);
        }
        model.num_classes = out.len();
        model.probe_scores = out;
        Ok(model)
    }

    /// Readies batch size `batch` before any call needs it: on the CPU fast path its fused
    /// instance is built and checked (once per process and model), and every runner then
    /// gets forward passes on probe images until that batch size has had `passes` at init
    /// (the load-time probe and the fast path's fusion passes count). Later calls with this
    /// batch size run the warmed graph; a call never builds one.
    pub fn prepare_batch(&self, batch: usize, passes: u32) -> Result<()> {
        let (h, w) = self.hw;
        let input = probe_image(h, w, 3).repeat(batch);
        match &self.runner {
            Runner::Plain { warmed, .. } => top_up(warmed, batch, passes, &input, |x| {
                self.forward(x, batch, h, w)
            }),
            Runner::Fast(fast) => {
                if !fast.prepare(batch) {
                    // This batch size runs image by image through the batch-1 instance.
                    return Ok(());
                }
                let m = fast.instance(batch).expect("prepared above");
                top_up(&fast.warmed, batch, passes, &input, |x| {
                    fast.run(&m, x, batch)
                })
            }
        }
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The model's outputs for the load-time probe (all zeros; the first probe image on the
    /// CPU fast path), for checks on the output kind.
    pub fn probe_scores(&self) -> &[f32] {
        &self.probe_scores
    }

    /// What [`Model::probe_scores`] came from, for messages.
    pub fn probe_input(&self) -> &'static str {
        match self.runner {
            Runner::Plain { .. } => "an all-zeros probe input",
            Runner::Fast(_) => "a synthetic probe image",
        }
    }

    /// How the model runs (fast path, or plain and why).
    pub fn optimization(&self) -> &Optimization {
        &self.report
    }

    /// Runs the model on `batch` CHW float32 images laid end to end in `input`;
    /// returns the raw outputs, `batch` rows of equal width, as f32.
    /// `input` is borrowed mutably: the tensor is a view of it, and a model may write its input
    /// in place, so it must not be shared while the model runs.
    pub fn forward(&self, input: &mut [f32], batch: usize, h: u32, w: u32) -> Result<Vec<f32>> {
        match &self.runner {
            Runner::Plain {
                module,
                device,
                kind,
                ..
            } => forward_module(module, input, batch, h, w, *device, |x| {
                if *kind == Kind::Float {
                    Ok(x)
                } else {
                    x.f_to_kind(*kind)
                }
            }),
            Runner::Fast(fast) => fast.forward(input, batch, 1, h, w),
        }
    }

    /// [`Model::forward`] of `batch` images that come in groups of `group` (the views of one
    /// image under test-time augmentation, laid one after the other): on the CPU fast path a
    /// batch size nobody prepared runs group by group through the graph prepared for `group`
    /// when there is one, so a call of several images runs the graphs a one-image call runs.
    /// Other runners run the batch as it is.
    pub fn forward_grouped(
        &self,
        input: &mut [f32],
        batch: usize,
        group: usize,
        h: u32,
        w: u32,
    ) -> Result<Vec<f32>> {
        match &self.runner {
            Runner::Fast(fast) => fast.forward(input, batch, group, h, w),
            Runner::Plain { .. } => self.forward(input, batch, h, w),
        }
    }
}

/// Runs `run` on copies of `input` until batch size `batch` has had `passes` forward passes at
/// init, as counted in `warmed`.
fn top_up(
    warmed: &Mutex<HashMap<usize, u32>>,
    batch: usize,
    passes: u32,
    input: &[f32],
    run: impl Fn(&mut [f32]) -> Result<Vec<f32>>,
) -> Result<()> {
    let mut warmed = warmed.lock().unwrap_or_else(|e| e.into_inner());
    let done = warmed.entry(batch).or_insert(0);
    while *done < passes {
        run(&mut input.to_vec())?;
        *done += 1;
    }
    Ok(())
}

/// What identifies a fast model: the file's contents (length and hash: a model replaced at
/// the same path, even with the same size and time, is another model), the precision and the
/// input size.
type FastKey = (u64, u64, i32, (u32, u32));

/// The length and a hash of the file's bytes (None when it cannot be read: no caching then).
fn content_key(path: &Path) -> Option<(u64, u64)> {
    use std::hash::Hasher;
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some((len, h.finish()));
        }
        h.write(&buf[..n]);
        len += n as u64;
    }
}

/// A prepared fast model, its report and the plain model's outputs for the first probe image
/// (the model's `probe_scores`); or why the fast path cannot be used.
type FastEntry = std::result::Result<(Arc<FastModel>, Optimization, Vec<f32>), String>;

/// The CPU fast path of `path`, made once per process and shared by every model of the same
/// file, precision and input size (or the reason it could not be made, likewise kept).
///
/// libtorch never frees what freezing a module creates (the frozen graph's constants stay
/// referenced by a compilation unit caught in a reference cycle: pytorch/pytorch#96726), so
/// preparing the fast path at every `ji_create_predictor` leaked with every create/destroy
/// cycle (measured: +58.9 MB over 360 cycles of a 25 KB CNN, about 160 KB each). Kept here,
/// the prepared model costs its memory once, for the life of the process, per distinct model
/// file; creating predictors of it again reuses it. A file whose bytes changed is a new model
/// (hashing it costs ~10 ms per 20 MB, next to the load that reads it anyway).
fn fast_model(
    path: &Path,
    kind: Kind,
    hw: (u32, u32),
    probe: impl FnOnce() -> Result<([Vec<f32>; 2], Vec<Vec<f32>>)>,
) -> Result<FastEntry> {
    /// One slot per model, filled once it is prepared.
    type Slot = Arc<Mutex<Option<FastEntry>>>;
    static CACHE: OnceLock<Mutex<HashMap<FastKey, Slot>>> = OnceLock::new();
    let prepare = || -> Result<FastEntry> {
        let (reference, expected) = probe()?;
        Ok(FastModel::load(path, kind, hw, &reference, &expected)
            .map(|(m, r)| (Arc::new(m), r, expected[0].clone())))
    };
    let Some((len, hash)) = content_key(path) else {
        return prepare();
    };
    let key: FastKey = (len, hash, kind as i32, hw);
    // One slot per model: a second create of the same file waits for the first to finish
    // preparing it instead of preparing (and leaking) another copy; other files go ahead. A
    // probe that fails (an error of the model, reported as such) leaves the slot empty.
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default()
        .clone();
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(entry) = slot.as_ref() {
        return Ok(entry.clone());
    }
    let entry = prepare()?;
    *slot = Some(entry.clone());
    Ok(entry)
}

impl FastModel {
    /// Prepares the fast path and checks it on the `reference` probes against the plain
    /// model's outputs `expected`. Err: why it cannot be used.
    fn load(
        path: &Path,
        kind: Kind,
        hw: (u32, u32),
        reference: &[Vec<f32>],
        expected: &[Vec<f32>],
    ) -> std::result::Result<(FastModel, Optimization), String> {
        let c_path = c_path(path)?;
        let channels_last = true;
        let mut stats = [0 as c_int; 2];
        let base = JitModule::from_new(|err, len| unsafe {
            // SAFETY: valid C string and a 2-int buffer; the C++ side catches every exception.
            ji_fast_prepare(
                c_path.as_ptr(),
                channels_last as c_int,
                (kind == Kind::BFloat16) as c_int,
                stats.as_mut_ptr(),
                err,
                len,
            )
        })
        .map_err(|e| format!("freezing / pad folding failed: {e}"))?;
        let scale = expected
            .iter()
            .flatten()
            .fold(1f64, |m, v| m.max((*v as f64).abs()));
        let tolerance = PROBE_TOLERANCE * scale;
        let mut fast = FastModel {
            base,
            channels_last,
            kind,
            hw,
            probe: reference[0].clone(),
            probe_out: Vec::new(),
            tolerance,
            instances: Mutex::new(HashMap::new()),
            warmed: Mutex::new(HashMap::new()),
        };
        let (one, warm_out) = fast.new_instance(1)?;
        let mut graph = [0 as c_int; 2];
        // SAFETY: writes two ints; reads this thread's last optimised graph.
        unsafe { ji_last_graph_stats(graph.as_mut_ptr()) };
        let mut diff = max_abs_diff(&warm_out, &expected[0]);
        let mut passes = FUSION_WARMUP_CALLS;
        for (p, e) in reference.iter().zip(expected).skip(1) {
            let out = fast
                .run(&one, &mut p.clone(), 1)
                .map_err(|e| format!("the fused model failed: {e}"))?;
            passes += 1;
            diff = diff.max(max_abs_diff(&out, e));
        }
        let bf16 = kind == Kind::BFloat16;
        if !diff.is_finite() || (!bf16 && diff > tolerance) {
            return Err(format!(
                "the optimised model's logits differ from the plain model's by {diff:.3e} on \
                 the probe inputs (limit {tolerance:.1e})"
            ));
        }
        if bf16 {
            // Other batch sizes are checked against batch 1: allow them bf16's own error.
            fast.tolerance += 2.0 * diff;
        }
        fast.probe_out = warm_out;
        fast.instances
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .insert(1, Arc::new(OnceLock::from(Some(Arc::new(one)))));
        fast.warmed
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .insert(1, passes);
        let report = Optimization {
            path: "cpu_fused",
            fallback_reason: None,
            pads_folded: stats[0].max(0) as u32,
            fusion_groups: graph[0].max(0) as u32,
            channels_last,
            precision: if bf16 { "bf16" } else { "fp32" },
            probe_max_abs_diff: Some(diff),
            probe_tolerance: if bf16 { None } else { Some(tolerance) },
        };
        Ok((fast, report))
    }
}

/// libtorch errors are long tracebacks: keep the first line and the last (the actual cause),
/// never the C++ stack (`Exception raised from ...`, `frame #N: ...`), which means nothing to a
/// contestant.
pub(crate) fn summarize_torch_error(s: &str) -> String {
    let lines: Vec<&str> = s
        .lines()
        .map(str::trim)
        .filter(|l| {
            let stack = l.starts_with("Exception raised from")
                || (l.starts_with("frame #") && l.contains(':'));
            !l.is_empty() && !stack
        })
        .map(|l| {
            // miniz's advice for a torch.load user ("your checkpoint file is corrupted") is
            // wrong here: the file is a model, and usually not corrupted but of another kind.
            l.find(" This is an internal miniz error")
                .map_or(l, |i| &l[..i])
        })
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [first, .., last] => format!("{first} ... {last}"),
    }
}

/// Softmax in f64 for stability; returns f32 probabilities.
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = scores.iter().map(|&s| (s as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, 2.0, 1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[3] > 0.999);
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!(p[1] > p[2] && p[2] > p[0]);
    }

    #[test]
    fn torch_errors_lose_the_cpp_stack() {
        let raw = "Internal torch error: PytorchStreamReader failed locating file constants.pkl: \
                   file not found\nException raised from valid at inline_container.cc:236 \
                   (most recent call first):\nframe #0: c10::Error::Error(...) + 0x9c\n\
                   frame #26: <unknown function> + 0xf5001\n";
        let s = summarize_torch_error(raw);
        assert_eq!(
            s,
            "Internal torch error: PytorchStreamReader failed locating file constants.pkl: file not found"
        );
        let s = summarize_torch_error("first\nframe #3: x\nthe cause\nframe #4: y");
        assert_eq!(s, "first ... the cause");
    }
}
