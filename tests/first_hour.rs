//! A contestant's first hour (issue 13): files that are not TorchScript are recognised and the
//! error names the export command; plausible config mistakes are refused with the fix; a model
//! exported with tools/export_torchscript.py describes itself (class names, preprocessing,
//! output kind) so a one-line config gives the full config's results; the contestant's own
//! model code exports, re-parameterised to its deploy form.
//!
//! The Python side runs in the project's .venv, on tests/fixtures/tinyrep.py (a RepVGG-style
//! model file as a contestant would have one).

mod common;

use common::*;
use ji::ffi::evsdk::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::ptr;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs Python code in `dir` with the project's .venv; panics on failure.
fn py(dir: &Path, code: &str) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{code}\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tools/export_torchscript.py with `args`, run in `dir`.
fn export(dir: &Path, args: &[&str]) -> Output {
    Command::new(python())
        .arg(root().join("tools/export_torchscript.py"))
        .args(args)
        .current_dir(dir)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap()
}

fn export_ok(dir: &Path, args: &[&str]) -> String {
    let out = export(dir, args);
    assert!(
        out.status.success(),
        "export {args:?} failed:\n{}",
        text(&out)
    );
    text(&out)
}

/// A contestant's folder: their model code, class.txt (the training code's dict, not in
/// index order) and the checkpoints they might hand over.
fn contestant(name: &str) -> PathBuf {
    let d = temp_dir("first-hour", name);
    std::fs::copy(
        root().join("tests/fixtures/tinyrep.py"),
        d.join("tinyrep.py"),
    )
    .unwrap();
    std::fs::write(d.join("class.txt"), "{'猫': 1, '狗': 0, '鸟': 2}\n").unwrap();
    py(
        &d,
        "import sys, torch; sys.path.insert(0, '.'); import tinyrep\n\
         m = tinyrep.create()\n\
         torch.save({'net': m.state_dict(), 'epoch': 3}, 'ckpt.pth')\n\
         torch.save(m.state_dict(), 'sd.pth')\n\
         torch.save(m, 'whole.pth')\n\
         torch.save(m.state_dict(), 'legacy.pth', _use_new_zipfile_serialization=False)\n",
    );
    d
}

fn write_config(path: &Path, v: Value) -> PathBuf {
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path.to_path_buf()
}

/// evsdk_init on a config: the handle, or the code and last error.
fn init(config: &Path) -> Result<*mut EvsdkHandle, (i32, String)> {
    let c = cstring(config);
    let mut h = ptr::null_mut();
    let rc = unsafe { evsdk_init(c.as_ptr(), &mut h) };
    if rc == EVSDK_OK {
        Ok(h)
    } else {
        Err((rc, last_error()))
    }
}

fn init_err(config: &Path) -> (i32, String) {
    match init(config) {
        Ok(h) => {
            unsafe { evsdk_release(h) };
            panic!("{} was accepted", config.display())
        }
        Err(e) => e,
    }
}

fn classify(h: *mut EvsdkHandle, image: &Path, args: &str) -> Value {
    let p = cstring(image);
    let a = CString::new(args).unwrap();
    let mut out: *mut c_char = ptr::null_mut();
    let rc = unsafe { evsdk_process_file(h, p.as_ptr(), a.as_ptr(), &mut out) };
    assert_eq!(rc, EVSDK_OK, "{}: {}", image.display(), last_error());
    take_json(out)
}

/// The command between the first pair of backticks of a hint.
fn hint_command(msg: &str) -> String {
    let start = msg
        .find('`')
        .unwrap_or_else(|| panic!("no command in: {msg}"))
        + 1;
    let len = msg[start..].find('`').unwrap();
    msg[start..start + len].to_owned()
}

fn assert_no_cpp_stack(msg: &str) {
    for bad in ["frame #", "Exception raised from", "corrupted"] {
        assert!(!msg.contains(bad), "{bad:?} in: {msg}");
    }
}

#[test]
fn checkpoints_state_dicts_and_pickles_name_the_export_command() {
    let d = contestant("checkpoints");
    let cases = [
        (
            "ckpt.pth",
            "is a PyTorch checkpoint or state dict (torch.save of the weights), not a TorchScript model",
            "--weights",
        ),
        (
            "sd.pth",
            "is a PyTorch checkpoint or state dict",
            "--weights",
        ),
        (
            "whole.pth",
            "is a pickled PyTorch model (torch.save(model)), not a TorchScript model",
            "--pickled",
        ),
        (
            "legacy.pth",
            "is a Python pickle (a checkpoint or state dict in torch's legacy format)",
            "--weights",
        ),
    ];
    for (file, what, option) in cases {
        let cfg = write_config(
            &d.join(format!("{file}.json")),
            json!({"model_path": file, "class_names_path": "class.txt", "device": "cpu"}),
        );
        let (code, msg) = init_err(&cfg);
        assert_eq!(code, EVSDK_ERR_MODEL_LOAD, "{file}: {msg}");
        assert!(msg.contains(what), "{file}: {msg}");
        // A command for the project's Python, naming the file, with the class names and
        // preprocessing taken from this config and the class count from its class file.
        let command = hint_command(&msg);
        assert!(
            command.starts_with(".venv/bin/python tools/export_torchscript.py "),
            "{command}"
        );
        let abs = d.join(file).canonicalize().unwrap();
        assert!(
            command.contains(&format!("{option} {}", abs.display())),
            "{command}"
        );
        assert!(
            command.contains(&format!(
                "--config {}",
                cfg.canonicalize().unwrap().display()
            )),
            "{command}"
        );
        if option == "--weights" {
            assert!(
                command.contains("--arch ARCH --num-classes 3 "),
                "{command}"
            );
        }
        // The config sets no preprocessing: libji's defaults, written out (the exporter
        // requires some).
        assert!(
            command.contains("--resize-mode stretch --resize-size 224 --crop-size 224"),
            "{command}"
        );
        assert_no_cpp_stack(&msg);
    }
    // The command works as written (ARCH filled in), and the model it writes runs with the
    // same config once "model_path" names it: no second error.
    let (_, msg) = init_err(&d.join("ckpt.pth.json"));
    let command = hint_command(&msg).replace(
        "ARCH",
        &format!("{}:create", d.join("tinyrep.py").display()),
    );
    let out = Command::new("bash")
        .args(["-c", &command])
        .current_dir(root())
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}:\n{}", text(&out));
    assert!(d.join("model.pt").is_file());
    let h = init(&write_config(
        &d.join("exported.json"),
        json!({"model_path": "model.pt", "class_names_path": "class.txt", "device": "cpu"}),
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    unsafe { evsdk_release(h) };
    // A file libtorch cannot read for other reasons: its message, without the C++ stack.
    let (_, msg) = init_err(&fixture("not_a_model.json"));
    assert!(msg.contains("not a loadable TorchScript model"), "{msg}");
    assert_no_cpp_stack(&msg);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_harness_prints_a_load_error_once() {
    let d = contestant("harness-once");
    let cfg = write_config(
        &d.join("ckpt.json"),
        json!({"model_path": "ckpt.pth", "class_names_path": "class.txt", "device": "cpu"}),
    );
    for api in ["ji", "evsdk"] {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["--api", api, "--config"])
            .arg(&cfg)
            .arg(fixture("val"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let all = text(&out);
        assert_eq!(
            all.matches("is a PyTorch checkpoint or state dict").count(),
            1,
            "--api {api}: {all}"
        );
        assert_no_cpp_stack(&all);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mean_std_on_the_0_255_scale_and_the_wrong_output_kind_are_refused() {
    let d = temp_dir("first-hour", "mistakes");
    let base = json!({
        "model_path": fixture("model/colour.pt"),
        "class_names_path": fixture("model/class.txt"),
        "device": "cpu", "resize_size": [32, 32], "crop_size": [32, 32],
    });
    let with = |name: &str, extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        write_config(&d.join(name), v)
    };
    let (code, msg) = init_err(&with(
        "mean.json",
        json!({"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}),
    ));
    assert_eq!(code, EVSDK_ERR_CONFIG);
    assert!(
        msg.contains("\"mean\" [123.675, 116.28, 103.53] is on the 0-255 scale"),
        "{msg}"
    );
    assert!(
        msg.contains("divide by 255 ([0.485, 0.456, 0.406])"),
        "{msg}"
    );
    let (_, msg) = init_err(&with("std.json", json!({"std": [58.395, 57.12, 57.375]})));
    assert!(
        msg.contains("divide by 255 ([0.229, 0.224, 0.225])"),
        "{msg}"
    );

    // A logits model declared as probabilities: confidences like 3.6 would come out.
    let (code, msg) = init_err(&with(
        "prob_on_logits.json",
        json!({"model_output": "probabilities"}),
    ));
    assert_eq!(code, EVSDK_ERR_MODEL_LOAD);
    assert!(
        msg.contains("\"model_output\" is \"probabilities\" but"),
        "{msg}"
    );
    assert!(msg.contains("does not output probabilities"), "{msg}");
    assert!(msg.contains("set \"model_output\": \"logits\""), "{msg}");
    // A softmax model left at the default "logits": softmax twice.
    let (code, msg) = init_err(&with(
        "logits_on_prob.json",
        json!({"model_path": fixture("model/prob.pt")}),
    ));
    assert_eq!(code, EVSDK_ERR_MODEL_LOAD);
    assert!(msg.contains("already outputs probabilities"), "{msg}");
    assert!(
        msg.contains("set \"model_output\": \"probabilities\""),
        "{msg}"
    );
    // Declared right, both load.
    for (name, extra) in [
        ("ok_logits.json", json!({})),
        (
            "ok_prob.json",
            json!({"model_path": fixture("model/prob.pt"), "model_output": "probabilities"}),
        ),
    ] {
        let h = init(&with(name, extra)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        unsafe { evsdk_release(h) };
    }
    std::fs::remove_dir_all(&d).unwrap();
}

const PREPROCESS: &[&str] = &[
    "--resize-mode",
    "shorter_side",
    "--resize-size",
    "40",
    "--crop-size",
    "32",
    "--mean",
    "0.5,0.4,0.3",
    "--std",
    "0.2,0.25,0.3",
];

/// Exports tinyrep from its checkpoint with class names and preprocessing embedded.
fn export_described(d: &Path) -> PathBuf {
    let mut args = vec![
        "--arch",
        "tinyrep.py:create",
        "--weights",
        "ckpt.pth",
        "--classes",
        "class.txt",
        "--out",
        "model/model.pt",
    ];
    args.extend(PREPROCESS);
    let log = export_ok(d, &args);
    assert!(log.contains("metadata: 3 class names"), "{log}");
    assert!(log.contains("model output: logits"), "{log}");
    d.join("model/model.pt")
}

#[test]
fn a_described_model_runs_from_a_one_line_config_with_the_full_configs_results() {
    let d = contestant("roundtrip");
    let model = export_described(&d);
    // The same network without metadata, described by a full config instead.
    py(
        &d,
        "import torch; torch.jit.load('model/model.pt').save('model/plain.pt')",
    );
    let full = write_config(
        &d.join("full.json"),
        json!({"model_path": "model/plain.pt", "class_names_path": "class.txt", "device": "cpu",
               "resize_mode": "shorter_side", "resize_size": 40, "crop_size": 32,
               "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}),
    );
    let one_line = write_config(&d.join("one.json"), json!({"model_path": "model/model.pt"}));
    let cfg = ji::config::Config::load(&one_line).unwrap();
    assert_eq!(
        cfg.keys_from_model,
        [
            "resize_mode",
            "resize_size",
            "crop_size",
            "mean",
            "std",
            "model_output"
        ]
    );
    assert_eq!(cfg.class_names().unwrap(), ["狗", "猫", "鸟"]);
    assert_eq!(
        cfg.preprocess,
        ji::config::Config::load(&full).unwrap().preprocess
    );
    let a = init(&full).unwrap();
    let b = init(&one_line).unwrap();
    let args = r#"{"topk": 3, "confidence_decimals": null}"#;
    let mut compared = 0;
    for class in std::fs::read_dir(fixture("val")).unwrap() {
        for img in std::fs::read_dir(class.unwrap().path()).unwrap() {
            let img = img.unwrap().path();
            let (x, y) = (classify(a, &img, args), classify(b, &img, args));
            assert_eq!(x, y, "{}", img.display());
            compared += 1;
        }
    }
    assert_eq!(compared, 9);
    unsafe {
        evsdk_release(a);
        evsdk_release(b);
    }
    // The harness and the Python reference take the model alone.
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("--model")
        .arg(&model)
        .arg(fixture("val"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let refs = d.join("ref.json");
    let out = Command::new(python())
        .arg(root().join("tools/reference_predict.py"))
        .arg("--model")
        .arg(&model)
        .arg(fixture("val"))
        .arg("--out")
        .arg(&refs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_slice(&std::fs::read(&refs).unwrap()).unwrap();
    assert_eq!(r["config"]["resize_mode"], "shorter_side");
    assert_eq!(r["config"]["crop_size"], json!([32, 32]));
    assert_eq!(r["images"].as_array().unwrap().len(), 9);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_config_that_disagrees_with_the_model_is_an_error_naming_both_values() {
    let d = contestant("conflict");
    export_described(&d);
    let (code, msg) = init_err(&write_config(
        &d.join("mean.json"),
        json!({"model_path": "model/model.pt", "mean": [0.485, 0.456, 0.406]}),
    ));
    assert_eq!(code, EVSDK_ERR_CONFIG);
    assert!(
        msg.contains("\"mean\" is [0.485,0.456,0.406] in the config but [0.5,0.4,0.3] in"),
        "{msg}"
    );
    assert!(
        msg.contains("or set \"override_model_metadata\": true"),
        "{msg}"
    );
    let (_, msg) = init_err(&write_config(
        &d.join("mode.json"),
        json!({"model_path": "model/model.pt", "resize_mode": "stretch"}),
    ));
    assert!(
        msg.contains("\"resize_mode\" is \"stretch\" in the config but \"shorter_side\" in"),
        "{msg}"
    );
    // A class file that disagrees (another order).
    std::fs::write(d.join("other.txt"), "猫\n狗\n鸟\n").unwrap();
    let (_, msg) = init_err(&write_config(
        &d.join("classes.json"),
        json!({"model_path": "model/model.pt", "class_names_path": "other.txt"}),
    ));
    assert!(
        msg.contains("class 0 is \"猫\" in") && msg.contains("but \"狗\" in the model's metadata"),
        "{msg}"
    );
    // Agreeing values in another spelling, the same class file, and an explicit override load.
    for (name, cfg) in [
        (
            "same.json",
            json!({"model_path": "model/model.pt", "class_names_path": "class.txt",
                   "crop_size": [32, 32], "mean": [0.5, 0.4, 0.3], "device": "cpu"}),
        ),
        (
            "override.json",
            json!({"model_path": "model/model.pt", "class_names_path": "other.txt",
                   "mean": [0.485, 0.456, 0.406], "override_model_metadata": true}),
        ),
    ] {
        let h = init(&write_config(&d.join(name), cfg)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        unsafe { evsdk_release(h) };
    }
    let c = ji::config::Config::load(&d.join("override.json")).unwrap();
    assert_eq!(c.preprocess.mean, [0.485, 0.456, 0.406]);
    assert_eq!(c.class_names().unwrap(), ["猫", "狗", "鸟"]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// The module names of a TorchScript file and its max output difference from tinyrep's
/// training form (eager) on a random input.
fn inspect(d: &Path, model: &str) -> (String, f64) {
    let out = py(
        d,
        &format!(
            "import sys, torch; sys.path.insert(0, '.'); import tinyrep\n\
             m = tinyrep.create(); m.load_state_dict(torch.load('ckpt.pth')['net']); m.eval()\n\
             s = torch.jit.load('{model}')\n\
             x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))\n\
             with torch.no_grad(): diff = (s(x) - m(x)).abs().max().item()\n\
             print(' '.join(n for n, _ in s.named_modules()))\n\
             print(diff)\n"
        ),
    );
    let mut lines = out.lines();
    let names = lines.next().unwrap().to_owned();
    let diff = lines.next().unwrap().parse().unwrap();
    (names, diff)
}

#[test]
fn re_parameterisable_models_export_their_deploy_form() {
    let d = contestant("reparam");
    let base = [
        "--arch",
        "tinyrep.py:create",
        "--weights",
        "ckpt.pth",
        "--size",
        "32",
    ];
    let log = export_ok(&d, &[&base[..], &["--out", "deploy.pt"]].concat());
    assert!(
        log.contains("re-parameterised 2 module(s) to the deploy form: outputs equal to the training form within"),
        "{log}"
    );
    assert!(
        log.contains("x faster (--no-reparam keeps the training form)"),
        "{log}"
    );
    let (names, diff) = inspect(&d, "deploy.pt");
    // Each block is one fused 3x3 convolution: no 3x3/1x1/identity branches left.
    assert!(names.contains("blocks.0.fused"), "{names}");
    for branch in ["b3", "b1", "bid"] {
        assert!(
            !names.contains(&format!(".{branch}")),
            "{branch} in {names}"
        );
    }
    assert!(diff < 1e-5, "deploy form differs by {diff}");
    let log = export_ok(
        &d,
        &[&base[..], &["--out", "train.pt", "--no-reparam"]].concat(),
    );
    assert!(!log.contains("re-parameterised"), "{log}");
    let (names, diff) = inspect(&d, "train.pt");
    assert!(
        names.contains("blocks.0.b3") && !names.contains("fused"),
        "{names}"
    );
    assert!(diff < 1e-6, "{diff}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn own_model_code_and_pickled_models_export() {
    let d = contestant("own-code");
    // path/to/file.py:factory with keyword arguments, run from another folder.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let file = format!("{}:create", d.join("tinyrep.py").display());
    let log = export_ok(
        &elsewhere,
        &[
            "--arch",
            &file,
            "--arch-kwargs",
            r#"{"width": 4, "num_classes": 5}"#,
            "--size",
            "16",
            "--out",
            "k.pt",
        ],
    );
    assert!(log.contains("output [1, 5]"), "{log}");
    let out = export(&elsewhere, &["--arch", "tinyrep.py", "--num-classes", "3"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("name the factory too: tinyrep.py:create_model"));
    let out = export(&d, &["--arch", "tinyrep.py:nope", "--num-classes", "3"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("has no function or class 'nope'"),
        "{}",
        text(&out)
    );

    // A pickled model found through its own folder, from any working directory.
    let whole = d.join("whole.pth");
    let log = export_ok(
        &elsewhere,
        &[
            "--pickled",
            whole.to_str().unwrap(),
            "--size",
            "32",
            "--out",
            "p.pt",
        ],
    );
    assert!(
        log.contains(&format!("import path: + {}", d.display())),
        "{log}"
    );
    // Its code somewhere else: the error says how to point at it, and that works.
    let ck = d.join("ck");
    let code = d.join("code");
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::create_dir_all(&code).unwrap();
    std::fs::rename(d.join("whole.pth"), ck.join("whole.pth")).unwrap();
    std::fs::rename(d.join("tinyrep.py"), code.join("tinyrep.py")).unwrap();
    let moved = ck.join("whole.pth");
    let out = export(
        &elsewhere,
        &["--pickled", moved.to_str().unwrap(), "--out", "q.pt"],
    );
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("No module named 'tinyrep'"), "{msg}");
    assert!(msg.contains("--import-path DIR"), "{msg}");
    export_ok(
        &elsewhere,
        &[
            "--pickled",
            moved.to_str().unwrap(),
            "--import-path",
            code.to_str().unwrap(),
            "--size",
            "32",
            "--out",
            "q.pt",
        ],
    );
    assert!(elsewhere.join("q.pt").is_file());
    std::fs::remove_dir_all(&d).unwrap();
}

/// The README's "From checkpoint to submission" commands, run as written on a small model.
#[test]
fn the_readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("README has the walk-through");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    assert!(block.contains("tools/export_torchscript.py"), "{block}");

    // A checkout with the contestant's files in mine/ (the repository's own folders linked in).
    let t = temp_dir("first-hour", "walkthrough");
    for link in [
        "tools",
        ".venv",
        "target",
        "include",
        "config",
        "Makefile",
        "Cargo.toml",
    ] {
        std::os::unix::fs::symlink(root().join(link), t.join(link)).unwrap();
    }
    let mine = t.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/tinyrep.py"),
        mine.join("my_model.py"),
    )
    .unwrap();
    std::fs::write(
        mine.join("class.txt"),
        "{'可回收物_塑料瓶': 1, '有害垃圾_杀虫剂': 0, '厨余垃圾_果皮': 2}\n",
    )
    .unwrap();
    // A training checkpoint as training scripts save it: DataParallel prefixes, under "net".
    py(
        &mine,
        "import sys, torch; sys.path.insert(0, '.'); import my_model\n\
         sd = my_model.create_model(3).state_dict()\n\
         torch.save({'epoch': 30, 'net': {'module.' + k: v for k, v in sd.items()}}, 'best.pth')\n",
    );
    let val = mine.join("val");
    for class in std::fs::read_dir(fixture("val")).unwrap() {
        let class = class.unwrap();
        let to = val.join(class.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for img in std::fs::read_dir(class.path()).unwrap() {
            let img = img.unwrap();
            std::fs::copy(img.path(), to.join(img.file_name())).unwrap();
        }
    }

    // `cargo run --release --bin harness --` is the harness this test was built with, and
    // `make install`'s `cargo build` has been done by `cargo test` (no nested cargo: make
    // runs $CARGO, this function exported as a script).
    let script = format!(
        "cargo() {{\n\
           case \"$*\" in\n\
             \"run --release --bin harness -- \"*) shift 5; \"$HARNESS\" \"$@\" ;;\n\
             \"build --release --lib\") : ;;\n\
             *) echo \"unexpected: cargo $*\" >&2; return 1 ;;\n\
           esac\n\
         }}\n\
         export -f cargo\n\
         set -x\n\
         {block}"
    );
    let fake_cargo = t.join("fake-cargo");
    std::fs::write(
        &fake_cargo,
        "#!/bin/sh\n[ \"$*\" = \"build --release --lib --bins\" ] || [ \"$*\" = \"build --release --lib\" ] \
         || { echo \"unexpected: cargo $*\" >&2; exit 1; }\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &fake_cargo,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&t)
        .env("HARNESS", env!("CARGO_BIN_EXE_harness"))
        .env("CARGO", &fake_cargo)
        // Step 4 installs this build's libji.so: the portable one (a second build in a Debian 11
        // root) is test_harness/install_check.sh's to prove.
        .env("PORTABLE", "0")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "the walk-through failed:\n{log}");
    assert!(log.contains("stripping the 'module.' prefix"), "{log}");
    assert!(log.contains("re-parameterised 2 module(s)"), "{log}");
    assert!(log.contains("metadata: 3 class names"), "{log}");
    // Three harness runs over the 9 images (step 2, the comparison, the packaged tree).
    assert_eq!(log.matches("(9 run, 9 ok, 0 errors)").count(), 3, "{log}");
    let agreement = log
        .lines()
        .find(|l| l.contains("top-1 agreement"))
        .unwrap_or_else(|| panic!("no comparison in:\n{log}"));
    assert!(agreement.contains("100.00%  (9/9"), "{agreement}");
    let csv = std::fs::read_to_string(mine.join("pred.csv")).unwrap();
    assert!(csv.starts_with(
        "path,label,predicted,confidence,latency_ms,error,top1_class,top1_confidence"
    ));
    assert_eq!(csv.lines().count(), 10);
    let packaged = std::fs::read_to_string(mine.join("ev_sdk/config/algo_config.json")).unwrap();
    assert!(
        packaged.contains("\"model_path\": \"../model/model.pt\""),
        "{packaged}"
    );
    assert!(mine.join("ev_sdk/lib/libji.so").is_file());
    assert!(mine.join("ev_sdk/lib/libtorch_cpu.so").is_file());
    std::fs::remove_dir_all(&t).unwrap();
}

fn harness_output(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap()
}

/// A missing model file or a checkpoint is reported as such before anything the model would
/// supply (its class names), by the library and by `harness --model`; the harness never shows
/// the temporary config it makes for `--model`.
#[test]
fn the_model_file_is_checked_before_anything_else() {
    let d = contestant("model-first");
    // No class_names_path: the checkpoint, not the missing key, is the error.
    let (code, msg) = init_err(&write_config(
        &d.join("ckpt_only.json"),
        json!({"model_path": "ckpt.pth"}),
    ));
    assert_eq!(code, EVSDK_ERR_MODEL_LOAD, "{msg}");
    assert!(msg.contains("is a PyTorch checkpoint"), "{msg}");
    assert!(!msg.contains("class_names_path"), "{msg}");
    let command = hint_command(&msg);
    assert!(
        command.contains("--classes CLASS_FILE") && command.contains("--num-classes N "),
        "{command}"
    );
    let (code, msg) = init_err(&write_config(
        &d.join("missing.json"),
        json!({"model_path": "nope.pt"}),
    ));
    assert_eq!(code, EVSDK_ERR_MODEL_LOAD, "{msg}");
    assert!(msg.contains("nope.pt does not exist"), "{msg}");
    assert!(!msg.contains("class_names_path"), "{msg}");

    let val = fixture("val");
    for (model, needle) in [
        (d.join("ckpt.pth"), "is a PyTorch checkpoint"),
        (d.join("nope.pt"), "no such file"),
        // TorchScript without class names: how to embed them.
        (fixture("model/colour.pt"), "has no class names embedded"),
    ] {
        let out = harness_output(&["--model".as_ref(), model.as_os_str(), val.as_os_str()]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(all.contains(needle), "{all}");
        assert!(!all.contains("class_names_path\" ("), "{all}");
        assert!(!all.contains("ji-harness-model"), "{all}");
    }
    let out = harness_output(&[
        "--model".as_ref(),
        fixture("model/colour.pt").as_os_str(),
        val.as_os_str(),
    ]);
    let command = hint_command(&text(&out));
    assert!(
        command.starts_with(".venv/bin/python tools/export_torchscript.py --pickled ")
            && command.contains("--classes CLASS_FILE"),
        "{command}"
    );
    // A described model runs from --model; the report shows what was given, not the
    // temporary config.
    let model = export_described(&d);
    let out = harness_output(&["--model".as_ref(), model.as_os_str(), val.as_os_str()]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("ji-harness-model"), "{all}");
    assert!(
        all.contains(&format!("config   --model {}", model.display())),
        "{all}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// The exporter refuses a model with no test-time preprocessing and prints the command with
/// libji's defaults written out, which works as written; `--size` alone is accepted, and the
/// library then says at init, once, what it applies (and `evsdk_model_info` shows it).
#[test]
fn preprocessing_is_never_silent() {
    let d = contestant("preprocessing");
    let out = export(
        &d,
        &[
            "--arch",
            "tinyrep.py:create",
            "--weights",
            "ckpt.pth",
            "--classes",
            "class.txt",
            "--out",
            "plain.pt",
        ],
    );
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("no test-time preprocessing given"), "{msg}");
    assert!(!d.join("plain.pt").exists());
    let line = msg
        .lines()
        .find(|l| l.contains("--resize-mode stretch"))
        .unwrap_or_else(|| panic!("no command in: {msg}"));
    let out = Command::new("bash")
        .args(["-c", line.trim()])
        .current_dir(&d)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}:\n{}", text(&out));
    let described = write_config(&d.join("described.json"), json!({"model_path": "plain.pt"}));
    let cfg = ji::config::Config::load(&described).unwrap();
    assert!(!cfg.preprocessing_from_defaults);
    assert_eq!(
        cfg.preprocess,
        ji::config::PreprocessConfig {
            max_image_pixels: cfg.preprocess.max_image_pixels,
            ..Default::default()
        }
    );

    // --size alone: exported, and a note says that libji's defaults will apply.
    let log = export_ok(
        &d,
        &[
            "--arch",
            "tinyrep.py:create",
            "--weights",
            "ckpt.pth",
            "--classes",
            "class.txt",
            "--size",
            "32",
            "--out",
            "sized.pt",
        ],
    );
    assert!(
        log.contains("no preprocessing stored (--size only)"),
        "{log}"
    );
    let sized = write_config(&d.join("sized.json"), json!({"model_path": "sized.pt"}));
    assert!(
        ji::config::Config::load(&sized)
            .unwrap()
            .preprocessing_from_defaults
    );
    // The library says so at init, once per process even with two predictors.
    let out = harness_output(&[
        "--threads".as_ref(),
        "2".as_ref(),
        "--config".as_ref(),
        sized.as_os_str(),
        fixture("val").as_os_str(),
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(
        all.matches("libji: note: neither the config nor").count(),
        1,
        "{all}"
    );
    assert!(
        all.contains(
            "applies its defaults: resize_mode \"stretch\" to [224,224], crop_size [224,224]"
        ),
        "{all}"
    );
    let info = |config: &Path| {
        let h = init(config).unwrap_or_else(|e| panic!("{e:?}"));
        let mut out: *mut c_char = ptr::null_mut();
        assert_eq!(unsafe { evsdk_model_info(h, &mut out) }, EVSDK_OK);
        unsafe { evsdk_release(h) };
        take_json(out)
    };
    let v = info(&sized);
    assert_eq!(v["preprocessing"]["libji_defaults"], true, "{v}");
    assert_eq!(
        v["preprocessing"]["applied"]["resize_mode"], "stretch",
        "{v}"
    );
    assert_eq!(
        v["preprocessing"]["applied"]["crop_size"],
        json!([224, 224]),
        "{v}"
    );
    let v = info(&described);
    assert_eq!(v["preprocessing"]["libji_defaults"], false, "{v}");
    assert_eq!(
        v["preprocessing"]["applied"]["mean"],
        json!([0.485, 0.456, 0.406]),
        "{v}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// `--model-output logits` for a model that ends in softmax is refused with the command that
/// works; a model whose metadata already states the wrong kind gets a fix that also overrides
/// the metadata, so following it is not a second error.
#[test]
fn the_output_kind_hints_lead_to_a_model_that_loads() {
    let d = temp_dir("first-hour", "output-kind");
    let prob = fixture("model/prob.pt");
    let classes = fixture("model/class.txt");
    let args = [
        "--pickled",
        prob.to_str().unwrap(),
        "--classes",
        classes.to_str().unwrap(),
        "--size",
        "32",
        "--model-output",
        "logits",
        "--out",
        "p.pt",
    ];
    let out = export(&d, &args);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("--model-output is logits, but the model's outputs are already probabilities"),
        "{msg}"
    );
    let line = msg
        .lines()
        .find(|l| l.contains("export_torchscript.py --pickled"))
        .unwrap_or_else(|| panic!("no command in: {msg}"));
    assert!(!line.contains("--model-output"), "{line}");
    let out = Command::new("bash")
        .args(["-c", line.trim()])
        .current_dir(&d)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}:\n{}", text(&out));
    assert!(text(&out).contains("model output: probabilities"));
    let h = init(&write_config(
        &d.join("ok.json"),
        json!({"model_path": "p.pt", "resize_size": 32, "crop_size": 32}),
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    unsafe { evsdk_release(h) };

    // A softmax model whose metadata (written by hand, as an older exporter could) says
    // "logits": the fix names both keys, and with both the model loads.
    py(
        &d,
        &format!(
            "import torch\n\
             m = torch.jit.load({:?})\n\
             meta = '{{\"version\": 1, \"class_names\": [\"a\", \"b\", \"c\"], \"config\": {{\"model_output\": \"logits\", \"resize_size\": 32, \"crop_size\": 32}}}}'\n\
             m.save('old.pt', _extra_files={{'ji_metadata.json': meta.encode()}})\n",
            prob.to_str().unwrap()
        ),
    );
    let (code, msg) = init_err(&write_config(
        &d.join("old.json"),
        json!({"model_path": "old.pt", "device": "cpu"}),
    ));
    assert_eq!(code, EVSDK_ERR_MODEL_LOAD, "{msg}");
    assert!(
        msg.contains(
            "set \"model_output\": \"probabilities\" and \"override_model_metadata\": true"
        ),
        "{msg}"
    );
    let h = init(&write_config(
        &d.join("fixed.json"),
        json!({"model_path": "old.pt", "device": "cpu", "model_output": "probabilities",
               "override_model_metadata": true}),
    ))
    .unwrap_or_else(|e| panic!("{e:?}"));
    unsafe { evsdk_release(h) };
    std::fs::remove_dir_all(&d).unwrap();
}
