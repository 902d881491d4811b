//! `harness`: replays a validation folder through the built libji.so's C API, as the judge
//! would, and reports accuracy, speed and errors as the judge will see them.

mod abi;
mod compare;
mod dataset;
mod decode;
mod html;
mod metrics;
mod record;
mod report;
mod sweep;

use abi::{Api, Lib, Predictor};
use clap::Parser;
use decode::Decode;
use indicatif::{ProgressBar, ProgressStyle};
use record::{DecodeNote, Outcome, Record};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Runs of at most this many images print one line per image (and show no progress bar).
const SMALL_RUN: usize = 50;
/// The k of the top-k accuracy (asked for with `"topk": 5` in the per-call args).
const TOPK: usize = 5;
/// The exit status of a run that completed with images that failed (README, "The harness").
const EXIT_IMAGES_FAILED: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Replay a validation folder through libji.so's C API, as the judge does, and report \
             accuracy, latency and errors",
    after_help = "With no VAL_DIR, runs the bundled demo (demo/val with demo/config/algo_config.json; \
                  `make demo` creates it).\nExit status: 0 when every image ran, 3 when the run \
                  completed but some images failed (the report lists them), 1 when it could not \
                  run, 2 for a usage error, 130 after Ctrl-C (partial report)."
)]
struct Cli {
    /// ImageFolder tree VAL_DIR/<class name>/* (or a flat folder with --labels).
    /// Default: the bundled demo, demo/val.
    val_dir: Option<PathBuf>,
    /// The libji.so to load [default: libji.so beside this executable].
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,
    /// Which C API to drive: the platform's ji_* ABI or the native evsdk_* API.
    #[arg(long, value_enum, default_value = "ji")]
    api: Api,
    /// algo_config.json [default: demo/config/algo_config.json for the demo, else
    /// $EV_SDK_CONFIG or /usr/local/ev_sdk/config/algo_config.json].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// A model exported with its class names and preprocessing (tools/export_torchscript.py):
    /// runs it with the config {"model_path": PATH} instead of --config.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    model: Option<PathBuf>,
    /// Per-call args JSON object, merged over {"topk": 5}.
    #[arg(long, value_name = "JSON")]
    args: Option<String>,
    /// Labels CSV (`path,class`, paths relative to VAL_DIR, header optional) instead of
    /// class folders.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Use a deterministic fraction of each class (e.g. 0.2 of a training tree).
    #[arg(long, value_name = "FRAC")]
    split: Option<f64>,
    /// Seed of the --split shuffle.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Untimed calls on the first image before the run (per predictor).
    #[arg(long, default_value_t = 0, value_name = "N")]
    warmup: usize,
    /// Classify each image N times (latency stats over all calls).
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
    /// N predictors in N threads sharing one queue of images.
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,
    /// N decoded BGR frames per ji_calc_image call (--api ji only).
    #[arg(long, default_value_t = 1, value_name = "N")]
    batch: usize,
    /// How images are read: `imread` as the platform's test tools do (cv::imread(path),
    /// emulated pixel for pixel: EXIF orientation applied, OpenCV's CMYK and 16-bit
    /// conversions; GIF and TIFF decoded as PIL does) and passed to the frame API
    /// (ji_calc_frame, ji_calc_image with --batch, evsdk_process_bgr), with the images whose
    /// decode differs from PIL's reported and run both ways; `pil` passes the file to the
    /// library, which decodes it as PIL.Image.open(path).convert('RGB') (ji_calc_file,
    /// evsdk_process_file).
    #[arg(long, value_enum, default_value = "imread")]
    decode: Decode,
    /// Print one line per image even for runs of more than 50 images.
    #[arg(long, short)]
    verbose: bool,
    /// Print each image's raw result JSON (path TAB json).
    #[arg(long)]
    print_json: bool,
    /// Write the full report as JSON.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write one CSV row per image: path,label,predicted,confidence,latency_ms,error, then
    /// top1_class,top1_confidence,... for the top 5, confidences in full precision.
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
    /// Write the confusion matrix as an SVG (class names on both axes, colour scale, counts on
    /// hover; rows = truth, columns = predicted). The name must end in .svg.
    #[arg(long, value_name = "FILE")]
    confusion: Option<PathBuf>,
    /// Write the report as one self-contained HTML page (summary, confusion matrix, per-class
    /// table, misclassified images as thumbnails, failed files, latency histogram).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Do not run: read a report written by --report and write its --html / --confusion (the
    /// thumbnails are read from VAL_DIR, default: the report's own val_dir).
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "lib", "api", "config", "args", "labels", "split", "warmup", "repeat", "threads",
        "batch", "print_json", "report", "predictions", "compare", "decode",
    ])]
    from_report: Option<PathBuf>,
    /// Compare with tools/reference_predict.py's output (matched by relative path); asks the
    /// library for full-precision confidences unless --args sets confidence_decimals.
    #[arg(long, value_name = "FILE")]
    compare: Option<PathBuf>,
    /// Evaluate every combination of test-time settings, each in its own process, and print a
    /// row per combination (top-1, top-5, macro F1, mean latency per call). Repeatable; KEY is
    /// tta (none, hflip, vflip, hflip+vflip), resize_size, crop_size (an integer, HxW, or none
    /// for crop_size) or resize_mode. --report FILE writes the table as JSON.
    #[arg(long, value_name = "KEY=V1,V2,...", conflicts_with_all = [
        "from_report", "compare", "html", "predictions", "confusion", "print_json",
    ])]
    sweep: Vec<String>,
    /// With --sweep: write a complete config for the best row (the highest top-1, ties to the
    /// faster), ready to load.
    #[arg(long, value_name = "FILE", requires = "sweep")]
    sweep_out: Option<PathBuf>,
}

/// Set by the SIGINT handler; every loop checks it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    // A second Ctrl-C kills the process the usual way. signal() is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only touches an atomic and calls signal(). SIGPIPE gets its default
    // action back, so `harness | head` ends quietly as Unix tools do instead of panicking.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

fn default_lib() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("libji.so")))
        .unwrap_or_else(|| PathBuf::from("libji.so"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_signal_handlers();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The per-call args: {"topk": 5} (plus full-precision confidences for --compare and
/// --predictions) under the user's JSON object.
fn call_args(user: Option<&str>, full_precision: bool) -> Result<String, String> {
    let mut obj = Map::new();
    obj.insert("topk".into(), TOPK.into());
    if full_precision {
        obj.insert("confidence_decimals".into(), Value::Null);
    }
    if let Some(text) = user {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("--args is not valid JSON: {e}"))?;
        let Value::Object(user) = v else {
            return Err("--args must be a JSON object".into());
        };
        obj.extend(user);
    }
    Ok(Value::Object(obj).to_string())
}

/// What the harness itself reads from the config (not used for inference).
struct ConfigInfo {
    class_names: Option<Vec<String>>,
    decode: ji::decode::DecodeOptions,
}

fn read_config(path: &Path, scrub: &dyn Fn(String) -> String) -> ConfigInfo {
    let mut info = ConfigInfo {
        class_names: None,
        decode: ji::decode::DecodeOptions::default(),
    };
    match ji::config::Config::load(path) {
        Ok(cfg) => {
            info.decode.exif_transpose = cfg.preprocess.exif_transpose;
            info.decode.max_pixels = cfg.preprocess.max_image_pixels;
            match cfg.class_names() {
                Ok(n) => info.class_names = Some(n),
                Err(e) => eprintln!(
                    "harness: warning: {}; labels are not checked",
                    scrub(e.to_string())
                ),
            }
        }
        Err(e) => eprintln!(
            "harness: warning: {}; labels are not checked",
            scrub(e.to_string())
        ),
    }
    info
}

/// `--model model.pt`: a one-line config beside nothing, in a private temporary folder
/// (removed on drop), so both APIs read it as they read any config.
struct ModelOnlyConfig {
    dir: PathBuf,
    path: PathBuf,
}

impl ModelOnlyConfig {
    /// Checks that `model` can run without a config (a TorchScript file with its class names
    /// embedded) before writing the config, so that what goes wrong names the model, not a
    /// temporary file.
    fn new(model: &Path) -> Result<Self, String> {
        let shown = model.display();
        if !model.is_file() {
            return Err(format!("--model {shown}: no such file"));
        }
        if let Some(msg) = ji::metadata::not_torchscript_message(model) {
            return Err(format!("--model: {msg}"));
        }
        match ji::metadata::read(model) {
            Err(e) => return Err(format!("--model: {e}")),
            Ok(Some(m)) if m.class_names.is_some() => {}
            Ok(m) => {
                return Err(format!(
                    "--model {shown} has no class names embedded, so it needs a config: give \
                     --config algo_config.json with \"class_names_path\", or embed them: {}",
                    ji::metadata::add_class_names_command(
                        model,
                        &m.map(|m| m.config).unwrap_or_default()
                    )
                ))
            }
        }
        let model = std::fs::canonicalize(model)
            .map_err(|e| format!("--model {}: {e}", model.display()))?;
        let dir = std::env::temp_dir().join(format!("ji-harness-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("algo_config.json");
        let text = serde_json::json!({ "model_path": model }).to_string();
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ModelOnlyConfig { dir, path })
    }
}

impl ModelOnlyConfig {
    /// `msg` with the temporary config's path replaced by what the user gave.
    fn scrub(&self, msg: String) -> String {
        msg.replace(&self.path.display().to_string(), "(the config of --model)")
            .replace(&self.dir.display().to_string(), "(the config of --model)")
    }
}

impl Drop for ModelOnlyConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--confusion` writes SVG: refuse another name before running.
fn check_outputs(cli: &Cli) -> Result<(), String> {
    if let Some(p) = &cli.confusion {
        if !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
            return Err(format!(
                "--confusion writes an SVG (class names on both axes): name it .svg, not {}",
                p.display()
            ));
        }
    }
    Ok(())
}

/// Writes --html and --confusion; `images_dir` is where the report's relative paths lie.
fn write_views(cli: &Cli, rep: &report::Report, images_dir: &Path) -> Result<(), String> {
    if let Some(p) = &cli.confusion {
        report::write_confusion_svg(p, &rep.matrix_names, &rep.matrix)
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &cli.html {
        let (shown, wanted) =
            html::write(p, rep, images_dir).map_err(|e| format!("{}: {e}", p.display()))?;
        if shown < wanted {
            eprintln!(
                "harness: warning: {} of {wanted} thumbnails could not be read from {}",
                wanted - shown,
                images_dir.display()
            );
        }
        eprintln!("harness: wrote {}", p.display());
    }
    Ok(())
}

/// `--from-report`: the views of an earlier run, without running.
fn from_report(cli: &Cli, path: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let rep = report::Report::from_json(json).map_err(|e| format!("{}: {e}", path.display()))?;
    if cli.html.is_none() && cli.confusion.is_none() {
        return Err("--from-report needs --html FILE and/or --confusion FILE".into());
    }
    rep.print();
    let dir = cli
        .val_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(rep.json["val_dir"].as_str().unwrap_or(".")));
    write_views(cli, &rep, &dir)?;
    Ok(ExitCode::SUCCESS)
}

fn run(mut cli: Cli) -> Result<ExitCode, String> {
    check_outputs(&cli)?;
    if let Some(r) = &cli.from_report {
        return from_report(&cli, r);
    }
    let model_config = cli.model.as_deref().map(ModelOnlyConfig::new).transpose()?;
    let shown_config = cli
        .model
        .as_ref()
        .map(|m| format!("--model {}", m.display()));
    if let Some(m) = &model_config {
        cli.config = Some(m.path.clone());
    }
    let scrub = |msg: String| match &model_config {
        Some(m) => m.scrub(msg),
        None => msg,
    };
    evaluate(cli, shown_config, &scrub).map_err(scrub)
}

/// The run itself; `shown_config` is what the report calls the config (`--model PATH`
/// instead of the temporary config made for it), `scrub` cleans messages the same way.
fn evaluate(
    cli: Cli,
    shown_config: Option<String>,
    scrub: &dyn Fn(String) -> String,
) -> Result<ExitCode, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (val_dir, config) = match &cli.val_dir {
        Some(v) => (v.clone(), cli.config.clone()),
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
                    .clone()
                    .or_else(|| Some(demo.join("config/algo_config.json"))),
            )
        }
    };
    if cli.batch == 0 || cli.threads == 0 || cli.repeat == 0 {
        return Err("--batch, --threads and --repeat must be at least 1".into());
    }
    if cli.batch > 1 && cli.api != Api::Ji {
        return Err("--batch needs --api ji (batches go through ji_calc_image)".into());
    }
    if let Some(f) = cli.split {
        if !(f > 0.0 && f <= 1.0) {
            return Err(format!("--split must be in (0, 1], got {f}"));
        }
    }
    if !cli.sweep.is_empty() {
        let base = config
            .clone()
            .unwrap_or_else(ji::config::Config::default_path);
        let s = sweep::Sweep {
            specs: &cli.sweep,
            out: cli.sweep_out.as_deref(),
            report: cli.report.as_deref(),
            config: &base,
            val_dir: &val_dir,
        };
        return sweep::run(&s, &stopped);
    }
    let args = call_args(
        cli.args.as_deref(),
        cli.compare.is_some() || cli.predictions.is_some(),
    )?;
    let reference = cli
        .compare
        .as_deref()
        .map(compare::Reference::load)
        .transpose()?;
    if let Some(d) = reference.as_ref().and_then(|r| r.decode.as_deref()) {
        if d != cli.decode.name() {
            eprintln!(
                "harness: warning: the reference read its images with --decode {d}, this run \
                 with --decode {}: images whose two decodes differ (EXIF-rotated, CMYK, ...) may \
                 disagree for that reason alone; run both with the same --decode",
                cli.decode.name()
            );
        }
    }

    // Inputs first: no point loading a model for an empty folder.
    if !val_dir.is_dir() {
        return Err(format!("{} is not a folder", val_dir.display()));
    }
    let mut samples = match &cli.labels {
        Some(csv) => dataset::from_labels(&val_dir, csv)?,
        None => dataset::scan(&val_dir).map_err(|e| format!("{}: {e}", val_dir.display()))?,
    };
    if let Some(frac) = cli.split {
        samples = dataset::split(samples, frac, cli.seed);
    }
    if samples.is_empty() {
        return Err(format!("no images found under {}", val_dir.display()));
    }

    // The library, through its C API only.
    let lib_path = cli.lib.clone().unwrap_or_else(default_lib);
    let lib = Lib::open(&lib_path)?;
    if cli.api == Api::Ji {
        if let Some(c) = &config {
            // The ji_* ABI reads its config from here; set before any thread starts.
            std::env::set_var(ji::config::CONFIG_ENV, c);
        }
        lib.ji_init()?;
    }
    let config_path = config
        .clone()
        .unwrap_or_else(ji::config::Config::default_path);
    let version = lib
        .version(cli.api)
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let mut predictors = Vec::with_capacity(cli.threads);
    for _ in 0..cli.threads {
        predictors.push(Predictor::new(&lib, cli.api, config.as_deref())?);
    }
    let cfg = read_config(&config_path, scrub);
    let known: Option<HashSet<&str>> = cfg
        .class_names
        .as_ref()
        .map(|n| n.iter().map(String::as_str).collect());
    let mut records: Vec<Record> = samples
        .into_iter()
        .map(|s| Record {
            label_known: match (&s.label, &known) {
                (Some(l), Some(k)) => k.contains(l.as_str()),
                (Some(_), None) => true,
                (None, _) => false,
            },
            sample: s,
            outcome: None,
        })
        .collect();

    // Warm-up: untimed calls on the first image, on every predictor, the way the run calls.
    if cli.warmup > 0 {
        let first = &records[0].sample;
        let frame = match cli.decode {
            Decode::Imread => decode::judge_frame(&first.path, &cfg.decode).frame.ok(),
            Decode::Pil if cli.batch > 1 => decode::pil_frame(&first.path, &cfg.decode).ok(),
            Decode::Pil => None,
        };
        for p in &predictors {
            for _ in 0..cli.warmup {
                if stopped() {
                    break;
                }
                match &frame {
                    Some(f) if cli.batch > 1 => {
                        let _ = p.process_frames(
                            &vec![f.clone(); cli.batch.min(records.len())],
                            Some(&args),
                        );
                    }
                    Some(f) => {
                        let _ = p.process_frame(f, Some(&args));
                    }
                    None => {
                        let _ = p.process_file(&first.path, Some(&args));
                    }
                }
            }
        }
    }

    let runner = Runner {
        records: &records,
        args: &args,
        batch: cli.batch,
        repeat: cli.repeat,
        decode: cli.decode,
        pil_opts: &cfg.decode,
        print_lines: cli.verbose || records.len() <= SMALL_RUN,
        print_json: cli.print_json,
        path_w: records
            .iter()
            .map(|r| report::display_width(&r.sample.rel))
            .max()
            .unwrap_or(0)
            .min(60),
        class_w: cfg
            .class_names
            .iter()
            .flatten()
            .map(|n| report::display_width(n))
            .max()
            .unwrap_or(0)
            .min(40),
        next: AtomicUsize::new(0),
        progress: progress_bar(records.len()),
        results: Mutex::new(Vec::new()),
        call_ms: Mutex::new(Vec::new()),
    };
    let start = Instant::now();
    std::thread::scope(|s| {
        for p in predictors.drain(..) {
            let runner = &runner;
            s.spawn(move || runner.work(p));
        }
    });
    let wall_s = start.elapsed().as_secs_f64();
    runner.progress.finish_and_clear();
    let Runner {
        results, call_ms, ..
    } = runner;
    let call_ms = call_ms.into_inner().unwrap();
    for (i, o) in results.into_inner().unwrap() {
        records[i].outcome = Some(o);
    }

    let interrupted = stopped();
    let info = report::RunInfo {
        library: lib_path.display().to_string(),
        api: cli.api.name().into(),
        version,
        config: shown_config.unwrap_or_else(|| config_path.display().to_string()),
        decode: cli.decode.name().into(),
        call: Predictor::call_name(cli.api, cli.decode == Decode::Imread, cli.batch > 1).into(),
        val_dir: val_dir.display().to_string(),
        labels: cli.labels.as_ref().map(|p| p.display().to_string()),
        args,
        split: cli.split,
        seed: cli.seed,
        threads: cli.threads,
        batch: cli.batch,
        repeat: cli.repeat,
        warmup: cli.warmup,
        interrupted,
        wall_s,
        peak_rss_kib: peak_rss_kib(),
        topk: TOPK,
    };
    let comparison = reference.as_ref().map(|r| r.compare(&records));
    let rep = report::Report::build(
        &info,
        &records,
        cfg.class_names.as_deref().unwrap_or(&[]),
        &call_ms,
        comparison,
    );
    rep.print();
    if let Some(p) = &cli.report {
        report::write_json(p, &rep.json).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &cli.predictions {
        record::write_predictions(p, &records).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    write_views(&cli, &rep, &val_dir)?;
    if interrupted {
        eprintln!("harness: interrupted: the report covers the images run before Ctrl-C");
        return Ok(ExitCode::from(130));
    }
    let failed = records.iter().filter(|r| r.error().is_some()).count();
    if failed > 0 {
        eprintln!(
            "harness: {failed} of {} images failed (listed under \"errors\" above); exit \
             status {EXIT_IMAGES_FAILED}",
            records.len()
        );
        return Ok(ExitCode::from(EXIT_IMAGES_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(n: usize) -> ProgressBar {
    if n <= SMALL_RUN {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(n as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} images (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// ru_maxrss of this process (KiB on Linux).
fn peak_rss_kib() -> u64 {
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0 {
            ru.ru_maxrss.max(0) as u64
        } else {
            0
        }
    }
}

/// The shared state of the worker threads.
struct Runner<'r> {
    records: &'r [Record],
    args: &'r str,
    batch: usize,
    repeat: usize,
    decode: Decode,
    /// PIL's decode as the library's file calls do it (the config's options).
    pil_opts: &'r ji::decode::DecodeOptions,
    print_lines: bool,
    print_json: bool,
    /// Column widths of the per-image lines.
    path_w: usize,
    class_w: usize,
    /// Next unit (image, or batch of images) to take.
    next: AtomicUsize,
    progress: ProgressBar,
    results: Mutex<Vec<(usize, Outcome)>>,
    /// Latency of every timed call (ms).
    call_ms: Mutex<Vec<f64>>,
}

impl Runner<'_> {
    fn work(&self, p: Predictor) {
        let units = self.records.len().div_ceil(self.batch);
        loop {
            if stopped() {
                break;
            }
            let u = self.next.fetch_add(1, Ordering::SeqCst);
            if u >= units {
                break;
            }
            let lo = u * self.batch;
            let hi = (lo + self.batch).min(self.records.len());
            let (outcomes, calls) = if self.batch == 1 {
                self.one_image(&p, lo)
            } else {
                self.one_batch(&p, lo..hi)
            };
            self.call_ms.lock().unwrap().extend(calls);
            for (i, o) in &outcomes {
                self.print(*i, o);
            }
            self.progress.inc(outcomes.len() as u64);
            self.results.lock().unwrap().extend(outcomes);
        }
    }

    /// Calls `call` `repeat` times (fewer after Ctrl-C); the last result, its latency, and
    /// every call's latency.
    fn timed(
        &self,
        call: impl Fn() -> (abi::CallResult, std::time::Duration),
    ) -> (abi::CallResult, f64, Vec<f64>) {
        let mut calls = Vec::with_capacity(self.repeat);
        let mut last = None;
        for r in 0..self.repeat {
            if r > 0 && stopped() {
                break;
            }
            let (res, d) = call();
            let ms = d.as_secs_f64() * 1e3;
            calls.push(ms);
            last = Some((res, ms));
        }
        let (res, ms) = last.expect("at least one call");
        (res, ms, calls)
    }

    fn one_image(&self, p: &Predictor, i: usize) -> (Vec<(usize, Outcome)>, Vec<f64>) {
        let path = &self.records[i].sample.path;
        if self.decode == Decode::Pil {
            let (res, ms, calls) = self.timed(|| p.process_file(path, Some(self.args)));
            return (vec![(i, outcome(res, None, ms, None))], calls);
        }
        let prepared = decode::judge_frame(path, self.pil_opts);
        let (res, ms, calls) = match &prepared.frame {
            Ok(f) => self.timed(|| p.process_frame(f, Some(self.args))),
            Err(e) => (Err(e.clone()), 0.0, Vec::new()),
        };
        let note = self.decode_note(p, prepared);
        (vec![(i, outcome(res, None, ms, Some(note)))], calls)
    }

    /// The judge's decode of an image next to PIL's: where they differ, the image is also run
    /// with PIL's frame (one untimed call).
    fn decode_note(&self, p: &Predictor, prepared: decode::Prepared) -> DecodeNote {
        DecodeNote {
            not_emulated: prepared.not_emulated,
            difference: prepared.difference.map(|(how, pil)| {
                let result = pil.and_then(|f| {
                    let (res, _) = p.process_frame(&f, Some(self.args));
                    res.and_then(|json| record::parse_call(&json, None).map(|(parsed, _)| parsed))
                });
                (how, result)
            }),
        }
    }

    fn one_batch(
        &self,
        p: &Predictor,
        range: std::ops::Range<usize>,
    ) -> (Vec<(usize, Outcome)>, Vec<f64>) {
        let mut out = Vec::new();
        let mut frames = Vec::new();
        let mut members = Vec::new();
        for i in range {
            let path = &self.records[i].sample.path;
            let (frame, note) = match self.decode {
                Decode::Pil => (decode::pil_frame(path, self.pil_opts), None),
                Decode::Imread => {
                    let mut prepared = decode::judge_frame(path, self.pil_opts);
                    let frame = std::mem::replace(&mut prepared.frame, Err((0, String::new())));
                    (frame, Some(self.decode_note(p, prepared)))
                }
            };
            match frame {
                Ok(f) => {
                    frames.push(f);
                    members.push((i, note));
                }
                Err(e) => out.push((i, outcome(Err(e), None, 0.0, note))),
            }
        }
        if frames.is_empty() {
            return (out, Vec::new());
        }
        let (res, ms, calls) = self.timed(|| p.process_frames(&frames, Some(self.args)));
        let several = frames.len() > 1;
        for (k, (i, note)) in members.into_iter().enumerate() {
            let res = res.clone();
            out.push((i, outcome(res, several.then_some(k), ms, note)));
        }
        (out, calls)
    }

    fn print(&self, i: usize, o: &Outcome) {
        if !self.print_lines && !self.print_json {
            return;
        }
        let rec = &self.records[i];
        let rel = &rec.sample.rel;
        let mut lines = Vec::new();
        if self.print_lines {
            lines.push(match &o.result {
                Ok(p) => {
                    let (mark, note) = match (&rec.sample.label, rec.label_known) {
                        (Some(l), true) if *l == p.class => ("ok", String::new()),
                        (Some(l), true) => ("✗ ", format!("  (label {l})")),
                        (Some(l), false) => ("? ", format!("  (unknown label {l})")),
                        (None, _) => ("- ", String::new()),
                    };
                    let note = match o.decode.as_ref().and_then(|d| d.difference.as_ref()) {
                        Some((how, _)) => format!(
                            "{note}  [judge's decode differs from PIL's: {}]",
                            how.kind()
                        ),
                        None => note,
                    };
                    format!(
                        "{mark} {}  {}  {:.3}  {:>7.2} ms{note}",
                        report::pad(rel, self.path_w),
                        report::pad(&p.class, self.class_w),
                        p.confidence,
                        o.latency_ms
                    )
                }
                Err((code, msg)) => {
                    format!("E  {}  error {code}: {msg}", report::pad(rel, self.path_w))
                }
            });
        }
        if self.print_json {
            if let Some(raw) = &o.raw {
                lines.push(format!("{rel}\t{raw}"));
            }
        }
        self.progress.suspend(|| {
            for l in lines {
                println!("{l}");
            }
        });
    }
}

/// One image's outcome from a call's result (`frame`: its place in a batch call's result).
fn outcome(
    res: abi::CallResult,
    frame: Option<usize>,
    latency_ms: f64,
    decode: Option<DecodeNote>,
) -> Outcome {
    let (result, raw) = match res.and_then(|json| record::parse_call(&json, frame)) {
        Ok((parsed, raw)) => (Ok(parsed), Some(raw)),
        Err(e) => (Err(e), None),
    };
    Outcome {
        result,
        raw,
        latency_ms,
        decode,
    }
}
