//! The GPU path's parts that a machine without a GPU can check (issue 27), and the same checks
//! on a GPU host (`common::gpu_host`), where they run on cuda:0:
//! - the staged forward of `"cuda_streams"` (pinned staging, the thread's own stream, one
//!   synchronisation) gives the plain forward's outputs, on every thread, and fails cleanly;
//! - `"cuda_streams": true` changes nothing where the model runs on the CPU;
//! - `"precision": "fp16"` with `"device": "auto"` runs where there is no GPU (in fp32, saying
//!   so), and on a GPU is checked against fp32;
//! - on a GPU, create/destroy of frozen and fp16 models leaves no GPU memory behind, and
//!   streams on and off agree.
//!
//! `"device": "auto"` loads libtorch's CUDA backend in this process: a binary of its own.

mod common;

use common::*;
use ji::jit::JitModule;
use ji::model::natural_probe;
use ji::Engine;
use serde_json::json;
use tch::{Device, Kind, Tensor};

/// The plain forward's logits for `batch` images at `x` on `device`, as f32.
fn plain_forward(m: &JitModule, x: &[f32], batch: i64, hw: i64, device: Device) -> Vec<f32> {
    let t = Tensor::from_slice(x)
        .view([batch, 3, hw, hw])
        .to_device(device);
    let out = m
        .forward(&t)
        .unwrap()
        .to_kind(Kind::Float)
        .to_device(Device::Cpu);
    Vec::<f32>::try_from(&out.flatten(0, -1)).unwrap()
}

fn staged(m: &JitModule, x: &[f32], batch: i64, hw: i64, device: Device) -> Vec<f32> {
    let out = m.forward_staged(x, [batch, hw, hw], device, false).unwrap();
    Vec::<f32>::try_from(&out.flatten(0, -1)).unwrap()
}

fn probes(batch: usize, hw: u32, seed: u64) -> Vec<f32> {
    (0..batch as u64)
        .flat_map(|i| natural_probe(hw, hw, seed + i))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn staged_forward_gives_the_plain_outputs_on_every_thread() {
    let hw = 64;
    let mut devices = vec![Device::Cpu];
    if gpu_host() {
        ji::cuda::devices().expect("a GPU host: CUDA must be usable");
        devices.push(Device::Cuda(0));
    }
    for device in devices {
        // Identical kernels on the CPU; on a GPU, cuDNN may pick another algorithm per stream.
        let tol = if device == Device::Cpu { 0.0 } else { 1e-4 };
        for name in ["conv.pt", "tuple.pt", "dict.pt"] {
            let m = JitModule::load(&fixture(&format!("model/{name}")), device).unwrap();
            for batch in [1, 3] {
                let x = probes(batch, hw as u32, 7);
                let want = plain_forward(&m, &x, batch as i64, hw, device);
                let got = staged(&m, &x, batch as i64, hw, device);
                let d = max_diff(&want, &got);
                assert!(d <= tol, "{name} batch {batch} on {device:?}: {d}");
            }
        }
        // Threads at once, each with its own staging buffers (and stream on a GPU), batch
        // sizes alternating so that buffers grow and get reused.
        let m = JitModule::load(&fixture("model/conv.pt"), device).unwrap();
        let inputs: Vec<(usize, Vec<f32>)> = (0..4)
            .map(|i| {
                let batch = 1 + 2 * (i % 2);
                (batch, probes(batch, hw as u32, 100 + i as u64))
            })
            .collect();
        let want: Vec<Vec<f32>> = inputs
            .iter()
            .map(|(b, x)| plain_forward(&m, x, *b as i64, hw, device))
            .collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (m, inputs, want) = (&m, &inputs, &want);
                s.spawn(move || {
                    for round in 0..6 {
                        let k = (t + round) % inputs.len();
                        let (b, x) = &inputs[k];
                        let got = staged(m, x, *b as i64, hw, device);
                        let d = max_diff(&want[k], &got);
                        assert!(d <= tol, "thread {t} round {round} on {device:?}: {d}");
                    }
                });
            }
        });
        // A model that throws, and a wrong input size: errors, and the thread goes on.
        let bad = JitModule::load(&fixture("model/throw.pt"), device).unwrap();
        let x = probes(1, hw as u32, 1);
        let e = bad
            .forward_staged(&x, [1, hw, hw], device, false)
            .unwrap_err();
        assert!(e.contains("this model always fails"), "{e}");
        let e = m
            .forward_staged(&x, [2, hw, hw], device, false)
            .unwrap_err();
        assert!(e.contains("needs"), "{e}");
        let again = staged(&m, &x, 1, hw, device);
        assert_eq!(again.len(), want[0].len());
    }
}

/// The model info JSON of a handle on `config`.
fn model_info(config: &std::path::Path) -> serde_json::Value {
    use ji::ffi::evsdk::*;
    let h = evsdk_open(config);
    let mut out = std::ptr::null_mut();
    assert_eq!(unsafe { evsdk_model_info(h, &mut out) }, EVSDK_OK);
    let v = take_json(out);
    unsafe { evsdk_release(h) };
    v
}

#[test]
fn streams_change_nothing_on_the_cpu_and_agree_on_a_gpu() {
    let img = std::fs::read(fixture("images/red.jpg")).unwrap();
    let result = |config: &std::path::Path| {
        let e = Engine::from_config_path(Some(config)).unwrap();
        let r = e.run_encoded_json(&img, None, None).unwrap().json;
        (e, r)
    };
    let cfg = |name, extra: &[(&str, serde_json::Value)]| {
        config_copy(&fixture("conv.json"), "gpu_ready", name, extra)
    };
    // On the CPU: the key is accepted, off in practice, the result byte for byte the same.
    let off = cfg("cpu_off", &[]);
    let on = cfg("cpu_on", &[("cuda_streams", json!(true))]);
    let (e_off, r_off) = result(&off);
    let (e_on, r_on) = result(&on);
    assert!(!e_on.cuda_streams() && !e_off.cuda_streams());
    assert_eq!(r_on, r_off);
    assert_eq!(
        e_on.optimization().path,
        "cpu_fused",
        "the CPU fast path stays"
    );
    let info = model_info(&on);
    assert_eq!(info["cuda_streams"], false, "{info}");
    assert_eq!(info["process_wide"]["cuda_empty_cache"], false, "{info}");
    assert_eq!(info["optimization"]["precision_fallback"], json!(null));
    assert_eq!(info["optimization"]["fp16_max_prob_diff"], json!(null));

    // "auto": on the CPU here (same as above), on cuda:0 on a GPU host.
    let auto_off = cfg("auto_off", &[("device", json!("auto"))]);
    let auto_on = cfg(
        "auto_on",
        &[("device", json!("auto")), ("cuda_streams", json!(true))],
    );
    let (a_off, r_auto_off) = result(&auto_off);
    let (a_on, r_auto_on) = result(&auto_on);
    if !gpu_host() {
        assert_eq!(a_on.device_name(), "cpu");
        assert!(!a_on.cuda_streams());
        assert_eq!(r_auto_on, r_off);
        assert_eq!(model_info(&auto_on)["cuda_streams"], false);
        return;
    }
    assert_eq!(a_on.device_name(), "cuda:0");
    assert!(a_on.cuda_streams() && !a_off.cuda_streams());
    let info = model_info(&auto_on);
    assert_eq!(info["cuda_streams"], true, "{info}");
    assert_eq!(info["process_wide"]["cuda_empty_cache"], true, "{info}");
    let top = |r: &serde_json::Value| r["model_data"]["class_id"].clone();
    assert_eq!(top(&r_auto_on), top(&r_auto_off));
    // Threads sharing one streamed engine get the single-thread result.
    let images: Vec<_> = ["images/red.jpg", "images/green.png", "images/blue.bmp"]
        .iter()
        .map(|p| std::fs::read(fixture(p)).unwrap())
        .collect();
    let want: Vec<_> = images
        .iter()
        .map(|b| top(&a_off.run_encoded_json(b, None, None).unwrap().json))
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (a_on, images, want) = (&a_on, &images, &want);
            s.spawn(move || {
                for i in 0..30 {
                    let k = (t + i) % images.len();
                    let r = a_on.run_encoded_json(&images[k], None, None).unwrap().json;
                    assert_eq!(top(&r), want[k], "thread {t} call {i}");
                }
            });
        }
    });
}

#[test]
fn fp16_under_auto_runs_where_there_is_no_gpu_and_is_checked_where_there_is() {
    let config = config_copy(
        &fixture("conv.json"),
        "gpu_ready",
        "fp16_auto",
        &[("device", json!("auto")), ("precision", json!("fp16"))],
    );
    let e = Engine::from_config_path(Some(&config)).expect("fp16 under auto must not fail");
    let opt = e.optimization().clone();
    let info = model_info(&config);
    assert_eq!(
        info["optimization"]["precision_fallback"],
        json!(opt.precision_fallback)
    );
    if !gpu_host() {
        assert_eq!(e.device_name(), "cpu");
        assert_eq!(opt.precision, "fp32");
        assert_eq!(opt.path, "cpu_fused", "the CPU default path, in fp32");
        let note = opt
            .precision_fallback
            .expect("a note says fp16 was not applied");
        assert!(note.contains("applies on CUDA only"), "{note}");
        assert_eq!(opt.fp16_max_prob_diff, None);
        // "cpu" with fp16 stays a config error: that config can never run fp16.
        let cpu = config_copy(
            &fixture("conv.json"),
            "gpu_ready",
            "fp16_cpu",
            &[("device", json!("cpu")), ("precision", json!("fp16"))],
        );
        assert!(matches!(
            Engine::from_config_path(Some(&cpu)),
            Err(ji::Error::Config(_))
        ));
        return;
    }
    assert_eq!(e.device_name(), "cuda:0");
    match opt.precision {
        "fp16" => {
            let d = opt.fp16_max_prob_diff.expect("fp16 was checked");
            assert!(d <= ji::model::FP16_MAX_PROB_DIFF, "{d}");
            assert_eq!(opt.precision_fallback, None);
        }
        "fp32" => {
            let r = opt.precision_fallback.expect("why fp16 is not used");
            assert!(r.starts_with("fp16 does not match fp32"), "{r}");
        }
        p => panic!("precision {p}"),
    }
}

#[test]
fn create_destroy_leaves_no_gpu_memory_behind() {
    assert_eq!(
        ji::cuda::memory(0).is_some(),
        gpu_host() && ji::cuda::devices().is_ok(),
        "GPU memory is known exactly where a GPU is usable"
    );
    if !gpu_host() {
        assert!(!ji::cuda::empty_cache(), "nothing to empty without a GPU");
        return;
    }
    let img = std::fs::read(fixture("images/green.png")).unwrap();
    for (name, extra) in [
        ("frozen", vec![("optimize", json!(true))]),
        ("fp16", vec![("precision", json!("fp16"))]),
        (
            "frozen_fp16",
            vec![("optimize", json!(true)), ("precision", json!("fp16"))],
        ),
    ] {
        let mut keys = vec![("device", json!("cuda"))];
        keys.extend(extra);
        let config = config_copy(&fixture("conv.json"), "gpu_ready", name, &keys);
        let cycle = || {
            let e = Engine::from_config_path(Some(&config)).unwrap();
            e.run_encoded_json(&img, None, None).unwrap();
        };
        for _ in 0..3 {
            cycle();
        }
        let warm = ji::cuda::memory(0).unwrap();
        for _ in 0..20 {
            cycle();
        }
        let end = ji::cuda::memory(0).unwrap();
        // The caching allocator holds exactly what it held after the warm-up cycles (the
        // shared frozen model), and the device's use did not grow beyond a MiB of bookkeeping.
        assert!(
            end.allocated <= warm.allocated && end.reserved <= warm.reserved,
            "{name}: {warm:?} -> {end:?}"
        );
        assert!(
            end.used_mib() <= warm.used_mib() + 2.0,
            "{name}: {warm:?} -> {end:?}"
        );
    }
}

#[test]
fn the_fp16_check_keeps_good_fp16_and_falls_back_from_bad() {
    use ji::config::Precision;
    // The CUDA runner's loading, on the CPU (libtorch runs fp16 there too): a real CNN passes.
    let conv = fixture("model/conv.pt");
    let (r, fp16_module) =
        ji::model::load_plain_checked(&conv, Device::Cpu, Precision::Fp16, (64, 64)).unwrap();
    assert_eq!((r.path, r.precision), ("plain", "fp16"), "{r:?}");
    let d = r.fp16_max_prob_diff.unwrap();
    assert!(d <= ji::model::FP16_MAX_PROB_DIFF, "{d}");
    assert_eq!(r.precision_fallback, None);
    // fp32 asked: nothing to check.
    let (r, fp32_module) =
        ji::model::load_plain_checked(&conv, Device::Cpu, Precision::Fp32, (64, 64)).unwrap();
    assert_eq!((r.precision, r.fp16_max_prob_diff), ("fp32", None));
    // Prepared once per file, device, precision and input size, then shared: a plain module
    // loaded anew on CUDA at every create costs its kernels again, and never gives back host
    // and GPU memory (measured on an H200). A copy of the file is the same model.
    use std::sync::Arc;
    assert!(!Arc::ptr_eq(&fp16_module, &fp32_module));
    let copy = temp_dir("gpu_ready", "copy").join("conv_copy.pt");
    std::fs::copy(&conv, &copy).unwrap();
    for (p, precision, want) in [
        (&conv, Precision::Fp16, &fp16_module),
        (&copy, Precision::Fp16, &fp16_module),
        (&conv, Precision::Fp32, &fp32_module),
    ] {
        let (r, m) = ji::model::load_plain_checked(p, Device::Cpu, precision, (64, 64)).unwrap();
        assert!(Arc::ptr_eq(&m, want), "{p:?} {precision:?}: prepared again");
        assert_eq!(r.precision_fallback, None);
    }
    let (_, other_size) =
        ji::model::load_plain_checked(&conv, Device::Cpu, Precision::Fp32, (32, 32)).unwrap();
    assert!(
        !Arc::ptr_eq(&other_size, &fp32_module),
        "another input size is another preparation"
    );

    // A model whose logits overflow fp16 (x 1e6): fp32 with the reason, also the second time
    // (from the kept verdict).
    let dir = temp_dir("gpu_ready", "overflow");
    let path = dir.join("overflow.pt");
    let status = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, torch\n\
             class M(torch.nn.Module):\n    def forward(self, x):\n        \
             return x.mean(dim=(2, 3)) * 1e6\n\
             torch.jit.trace(M(), torch.randn(1, 3, 32, 32)).save(sys.argv[1])",
        )
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    for round in 0..2 {
        let (r, _) =
            ji::model::load_plain_checked(&path, Device::Cpu, Precision::Fp16, (32, 32)).unwrap();
        assert_eq!(r.precision, "fp32", "round {round}: {r:?}");
        let why = r.precision_fallback.unwrap();
        assert!(
            why.starts_with("fp16 does not match fp32 on the probe images: probe 0: fp16 gives non-finite scores"),
            "{why}"
        );
    }
}
