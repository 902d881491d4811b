//! The TorchScript model through tch: loading on the configured device, forward passes,
//! and reading the scores back. Errors come back as `Result` (tch's `f_*` forms).

use crate::config::{DeviceSpec, Precision};
use crate::error::{Error, Result};
use std::path::Path;
use tch::{CModule, Device, IValue, Kind, Tensor};

pub struct Model {
    module: CModule,
    device: Device,
    half: bool,
    num_classes: usize,
    /// The outputs of the load-time probe (zeros input), for checks on the output kind.
    probe_scores: Vec<f32>,
}

/// The device libtorch will use for a spec. `auto` and `cuda` first load libtorch's CUDA
/// backend at run time ([`crate::cuda`]); `auto` falls back to the CPU when it cannot be
/// loaded or sees no GPU, `cuda` is then a config error naming the library and the reason.
pub fn resolve_device(spec: DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => Ok(match crate::cuda::load() {
            Ok(()) if crate::cuda::device_count() > 0 => Device::Cuda(0),
            _ => Device::Cpu,
        }),
        DeviceSpec::Cuda(n) => {
            crate::cuda::load().map_err(|e| {
                Error::Config(format!(
                    "\"device\" asks for cuda:{n} but libtorch's CUDA backend could not be \
                     loaded: {e}"
                ))
            })?;
            let count = crate::cuda::device_count();
            if n < count {
                Ok(Device::Cuda(n))
            } else if count == 0 {
                Err(Error::Config(format!(
                    "\"device\" asks for cuda:{n} but libtorch sees no CUDA device (its CUDA \
                     backend is loaded; is there a GPU and an NVIDIA driver?)"
                )))
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
    // src/optimize.cpp: returns a new `torch::jit::Module*`, or NULL with `err` set.
    fn ji_optimize_torchscript(
        path: *const std::ffi::c_char,
        device: std::ffi::c_int,
        half: std::ffi::c_int,
        err: *mut std::ffi::c_char,
        err_len: usize,
    ) -> *mut std::ffi::c_void;
}

// tch's CModule is exactly its `torch::jit::Module*` (dropped with `delete`); the optimized
// module is handed over as one. Checked here at compile time.
const _: () =
    assert!(std::mem::size_of::<CModule>() == std::mem::size_of::<*mut std::ffi::c_void>());

/// The model at `path` after `torch.jit.optimize_for_inference` (CPU) or `torch.jit.freeze`
/// (CUDA, where MKLDNN layouts do not apply), loaded on `device`, in fp16 when `half`.
fn load_optimized(path: &Path, device: Device, half: bool) -> Result<CModule> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::ModelLoad(format!("{} contains a NUL byte", path.display())))?;
    let index = match device {
        Device::Cuda(n) => n as std::ffi::c_int,
        _ => -1,
    };
    let mut err = vec![0 as std::ffi::c_char; 2048];
    // SAFETY: valid C string; the C++ side catches every exception and writes at most
    // err.len() bytes, NUL-terminated, into err.
    let module = unsafe {
        ji_optimize_torchscript(
            c_path.as_ptr(),
            index,
            half as std::ffi::c_int,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if module.is_null() {
        // SAFETY: err is NUL-terminated by the C++ side (or still all zeros).
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
        return Err(Error::ModelLoad(format!(
            "optimize_for_inference failed on {} (set it to false to use the model as it is): {}",
            path.display(),
            summarize_torch_error(&msg)
        )));
    }
    // SAFETY: `module` is a `new torch::jit::Module`, exactly what tch's own loader makes and
    // its Drop deletes; CModule is that one pointer (asserted above).
    Ok(unsafe { std::mem::transmute::<*mut std::ffi::c_void, CModule>(module) })
}

impl Model {
    /// Loads a TorchScript file and probes its output width with one forward pass on zeros
    /// of the given input size (this is also the warm-up). With `optimize`, the model is
    /// first run through `optimize_for_inference` (CPU) or `freeze` (CUDA).
    pub fn load(
        path: &Path,
        device: Device,
        precision: Precision,
        input_hw: (u32, u32),
        optimize: bool,
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
        let half = precision == Precision::Fp16;
        if half && device == Device::Cpu {
            return Err(Error::Config(
                "\"precision\": \"fp16\" needs CUDA, but the model runs on the CPU".into(),
            ));
        }
        let not_loadable = |e: tch::TchError| {
            Error::ModelLoad(format!(
                "{} is not a loadable TorchScript model: {}",
                path.display(),
                summarize_torch_error(&e.to_string())
            ))
        };
        let mut module = if optimize {
            // Load it plainly first, so a bad file gets the usual message.
            drop(CModule::load_on_device(path, Device::Cpu).map_err(not_loadable)?);
            load_optimized(path, device, half)?
        } else {
            CModule::load_on_device(path, device).map_err(not_loadable)?
        };
        module
            .f_set_eval()
            .map_err(|e| Error::ModelLoad(format!("set_eval failed: {e}")))?;
        // The floating-point weights in the precision that runs: fp16, or fp32 (also for a
        // model saved after `.half()` or `.double()`, which would otherwise fail on the fp32
        // input). An optimized module was converted before freezing (its weights are now
        // constants).
        if !optimize {
            module.to(device, if half { Kind::Half } else { Kind::Float }, false);
        }
        if let Device::Cuda(_) = device {
            tch::Cuda::cudnn_set_benchmark(true);
        }
        let mut model = Model {
            module,
            device,
            half,
            num_classes: 0,
            probe_scores: Vec::new(),
        };
        let (h, w) = input_hw;
        let probe = vec![0f32; 3 * h as usize * w as usize];
        let out = model.forward(&probe, 1, h, w).map_err(|e| {
            Error::ModelLoad(format!(
                "{}: a forward pass on a 1x3x{h}x{w} input failed: {}",
                path.display(),
                e
            ))
        })?;
        model.num_classes = out.len();
        model.probe_scores = out;
        Ok(model)
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The model's outputs for an all-zeros input (the load-time probe).
    pub fn probe_scores(&self) -> &[f32] {
        &self.probe_scores
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn is_half(&self) -> bool {
        self.half
    }

    /// Runs the model on `batch` CHW float32 images laid end to end in `input`;
    /// returns the raw outputs, `batch` rows of equal width, as f32.
    pub fn forward(&self, input: &[f32], batch: usize, h: u32, w: u32) -> Result<Vec<f32>> {
        let _guard = tch::no_grad_guard();
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
        // every tensor made here, including any output aliasing the input, is dropped or
        // copied out before this function returns, while `input` is still borrowed.
        let mut x = unsafe {
            Tensor::f_from_blob(
                input.as_ptr() as *const u8,
                &shape,
                &strides,
                Kind::Float,
                Device::Cpu,
            )
        }
        .map_err(inference)?;
        if self.device != Device::Cpu {
            x = x.f_to_device(self.device).map_err(inference)?;
        }
        if self.half {
            x = x.f_to_kind(Kind::Half).map_err(inference)?;
        }
        let out = self
            .module
            .forward_is(&[IValue::Tensor(x)])
            .map_err(inference)?;
        let out = first_tensor(out).ok_or_else(|| {
            Error::Inference(
                "the model returned no tensor (expected a [batch, classes] tensor, a tuple or \
                 list whose first item is one, or a dict with a \"logits\" entry)"
                    .into(),
            )
        })?;
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
}

/// Models may return a tensor, a tuple/list whose first item is the logits (e.g. aux heads),
/// or a dict: its "logits" entry (Hugging Face style), or its only entry.
fn first_tensor(v: IValue) -> Option<Tensor> {
    match v {
        IValue::Tensor(t) => Some(t),
        IValue::Tuple(items) | IValue::GenericList(items) => {
            items.into_iter().next().and_then(first_tensor)
        }
        IValue::TensorList(ts) => ts.into_iter().next(),
        IValue::GenericDict(mut entries) => {
            let logits = entries
                .iter()
                .position(|(k, _)| matches!(k, IValue::String(s) if s == "logits"));
            match (logits, entries.len()) {
                (Some(i), _) => first_tensor(entries.swap_remove(i).1),
                (None, 1) => first_tensor(entries.remove(0).1),
                _ => None,
            }
        }
        _ => None,
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
