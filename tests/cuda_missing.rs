//! Where libtorch's CUDA backend cannot be loaded (the `cpu` install profile, or a host whose
//! CUDA libraries are missing): "auto" runs on the CPU and says so, "cuda" is a config error
//! that names the library and the loader's reason. Its own process: the load happens once.

mod common;

use common::*;
use ji::{Engine, Error};

#[test]
fn missing_cuda_backend_falls_back_or_names_the_library() {
    // Before any load attempt in this process (the override is read at the first attempt).
    std::env::set_var(
        ji::cuda::TORCH_CUDA_LIB_ENV,
        "/nonexistent/libtorch_cuda.so",
    );
    let src = fixture("colour.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
    let dir = src.parent().unwrap();

    cfg["device"] = "cuda:0".into();
    let cuda_cfg = dir.join("cuda_missing_cuda.json");
    std::fs::write(&cuda_cfg, cfg.to_string()).unwrap();
    match Engine::from_config_path(Some(&cuda_cfg)) {
        Err(Error::Config(msg)) => {
            assert!(
                msg.contains("CUDA cannot be used: libtorch's CUDA backend could not be loaded"),
                "{msg}"
            );
            assert!(
                msg.contains("/nonexistent/libtorch_cuda.so: cannot open shared object file"),
                "the loader's message must name the library: {msg}"
            );
        }
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("device cuda without its backend must fail"),
    }

    cfg["device"] = "auto".into();
    let auto_cfg = dir.join("cuda_missing_auto.json");
    std::fs::write(&auto_cfg, cfg.to_string()).unwrap();
    let auto = Engine::from_config_path(Some(&auto_cfg)).unwrap();
    assert_eq!(auto.device_name(), "cpu");
    let img = auto
        .decode(&std::fs::read(fixture("images/blue.png")).unwrap())
        .unwrap();
    assert_eq!(
        auto.run_json(&img, None).unwrap().json["model_data"]["device"],
        "cpu"
    );
    let described = ji::cuda::describe();
    assert_eq!(described["backend"], "not found");
    let reason = described["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "libtorch's CUDA backend could not be loaded: /nonexistent/libtorch_cuda.so"
        ),
        "{reason}"
    );
    assert_eq!(auto.cpu_fallback(), Some(reason));
    assert_eq!(ji::cuda::runtime_version(), None);
}
