//! libtorch's CUDA backend is loaded at run time (src/cuda.rs), not linked: a CPU predictor
//! never touches it, and loading it after CPU work still installs libtorch's real CUDA hooks.
//! Without a GPU "auto" falls back to the CPU with a reason and "cuda" is a config error with
//! the same reason; on a GPU host (`common::gpu_host`) both run on cuda:0.

mod common;

use common::*;
use ji::{Engine, Error};

fn config_with_device(device: &str) -> std::path::PathBuf {
    let src = fixture("colour.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
    cfg["device"] = device.into();
    let dir = src.parent().unwrap();
    let path = dir.join(format!("cuda_runtime_{}.json", device.replace(':', "_")));
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

#[test]
fn cuda_backend_is_loaded_on_demand_and_cpu_work_first_does_not_disable_it() {
    // 1. CPU work first: no CUDA load attempt, and libtorch is never asked about CUDA.
    let cpu = Engine::from_config_path(Some(&config_with_device("cpu"))).unwrap();
    let img = cpu
        .decode(&std::fs::read(fixture("images/red.jpg")).unwrap())
        .unwrap();
    let before = cpu.run_json(&img, None).unwrap().json;
    assert_eq!(before["model_data"]["device"], "cpu");
    assert!(
        ji::cuda::status().is_none(),
        "a CPU predictor attempted to load the CUDA backend"
    );
    assert!(ji::cuda::describe()["backend"]
        .as_str()
        .unwrap()
        .starts_with("not loaded"));

    // 2. "auto": the development build finds the wheel's libtorch_cuda.so.
    let auto = Engine::from_config_path(Some(&config_with_device("auto"))).unwrap();
    assert_eq!(
        ji::cuda::status(),
        Some(Ok(())),
        "libtorch_cuda.so did not load"
    );
    // libtorch's real CUDA hooks are in force although CPU inference ran before the load.
    let v = ji::cuda::runtime_version().expect("CUDA hooks are the CPU-only stub");
    assert!(v >= 12000, "CUDART_VERSION {v}");
    let described = ji::cuda::describe();
    assert_eq!(described["backend"], "loaded");
    let cuda_cfg = config_with_device("cuda");
    if gpu_host() {
        assert_eq!(auto.device_name(), "cuda:0", "{described}");
        assert_eq!(auto.cpu_fallback(), None);
        assert!(described["devices"].as_u64().unwrap() >= 1, "{described}");
        assert_eq!(described["reason"], serde_json::Value::Null);
        assert_eq!(
            auto.run_json(&img, None).unwrap().json["model_data"]["device"],
            "cuda:0"
        );
        let cuda = Engine::from_config_path(Some(&cuda_cfg)).unwrap();
        assert_eq!(cuda.device_name(), "cuda:0");
        return;
    }
    assert_eq!(auto.device_name(), "cpu");
    assert_eq!(described["devices"], 0);
    let reason = auto.cpu_fallback().expect("auto on the CPU says why");
    assert_eq!(described["reason"], reason);
    assert_eq!(
        auto.run_json(&img, None).unwrap().json["model_data"],
        before["model_data"],
        "auto on the CPU must give the CPU predictor's result"
    );
    // The CUDA kernels are registered: a CUDA tensor now fails for want of a driver, not
    // for want of a CUDA backend.
    let err = tch::Tensor::f_zeros([1], (tch::Kind::Float, tch::Device::Cuda(0)))
        .map(|_| ())
        .expect_err("no GPU here")
        .to_string();
    assert!(
        !err.contains("from the 'CUDA' backend"),
        "CUDA kernels are not registered: {err}"
    );

    // 3. "cuda" without a GPU: a config error with the reason "auto" gave.
    match Engine::from_config_path(Some(&cuda_cfg)) {
        Err(Error::Config(msg)) => assert!(
            msg.ends_with(&format!("CUDA cannot be used: {reason}")),
            "{msg}"
        ),
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("device cuda without a GPU must fail"),
    }
}
