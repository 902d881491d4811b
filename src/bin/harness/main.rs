//! `harness`: replays a validation folder through the built libji.so's C API, as the judge
//! would, and reports what the judge will see.

mod abi;
mod dataset;

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(version, about = "Replay a validation folder through libji.so's C API")]
struct Cli {
    /// ImageFolder tree VAL_DIR/<class name>/* (default: the bundled demo, demo/val).
    val_dir: Option<PathBuf>,
    /// The libji.so to load (default: the one built beside this binary).
    #[arg(long)]
    lib: Option<PathBuf>,
    /// algo_config.json (default: demo/config/algo_config.json when running the demo,
    /// else $EV_SDK_CONFIG or /usr/local/ev_sdk/config/algo_config.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Per-call args JSON passed to every call.
    #[arg(long)]
    args: Option<String>,
}

fn default_lib() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("libji.so")))
        .unwrap_or_else(|| PathBuf::from("libji.so"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (val_dir, config) = match cli.val_dir {
        Some(v) => (v, cli.config),
        None => {
            let demo = root.join("demo");
            if !demo.join("val").is_dir() {
                return Err(format!(
                    "no VAL_DIR given and the demo is missing ({}): run `make demo`",
                    demo.join("val").display()
                ));
            }
            (
                demo.join("val"),
                cli.config
                    .or_else(|| Some(demo.join("config/algo_config.json"))),
            )
        }
    };
    let lib_path = cli.lib.unwrap_or_else(default_lib);
    let lib = abi::Lib::open(&lib_path)?;
    let predictor = abi::EvsdkPredictor::new(&lib, config.as_deref())?;
    let samples = dataset::scan(&val_dir).map_err(|e| format!("{}: {e}", val_dir.display()))?;
    if samples.is_empty() {
        return Err(format!("no images found under {}", val_dir.display()));
    }
    let (mut correct, mut labelled, mut failed) = (0usize, 0usize, 0usize);
    for s in &samples {
        let rel = s.path.strip_prefix(&val_dir).unwrap_or(&s.path);
        match predictor.process_file(&s.path, cli.args.as_deref()) {
            Ok(json) => {
                println!("{}\t{json}", rel.display());
                if let Some(label) = &s.label {
                    labelled += 1;
                    let v: serde_json::Value = serde_json::from_str(&json)
                        .map_err(|e| format!("library returned invalid JSON: {e}"))?;
                    if v["class"].as_str() == Some(label.as_str()) {
                        correct += 1;
                    }
                }
            }
            Err((code, msg)) => {
                failed += 1;
                println!("{}\tERROR {code}: {msg}", rel.display());
            }
        }
    }
    eprintln!(
        "{} images, {} errors; top-1 accuracy {}",
        samples.len(),
        failed,
        if labelled > 0 {
            format!(
                "{:.1}% ({correct}/{labelled})",
                100.0 * correct as f64 / labelled as f64
            )
        } else {
            "n/a (no labels)".into()
        }
    );
    Ok(ExitCode::SUCCESS)
}
