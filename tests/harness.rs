//! End-to-end tests of the `harness` binary on the generated colour fixtures: it dlopens the
//! built libji.so and must report what the fixtures make true by construction.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RED: &str = "有害垃圾_杀虫剂";
const GREEN: &str = "可回收物_塑料瓶";
const BLUE: &str = "厨余垃圾_果皮";

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn config() -> PathBuf {
    fixture("colour.json")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs the harness with a JSON report and returns (output, report); it must exit 0.
fn run_with_report(args: &[&str], dir: &Path) -> (Output, Value) {
    run_with_report_exiting(args, dir, 0)
}

/// [`run_with_report`] for a run that must exit with `code` (3: some images failed).
fn run_with_report_exiting(args: &[&str], dir: &Path, code: i32) -> (Output, Value) {
    let report = dir.join(format!("report-{}.json", args.join("_").replace('/', "_")));
    let out = harness()
        .args(args)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "harness {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout(&out)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (out, v)
}

fn assert_all_correct(v: &Value, images: u64) {
    assert_eq!(v["images"]["total"], images);
    assert_eq!(v["images"]["errors"], 0);
    assert_eq!(v["accuracy"]["evaluated"], images);
    assert_eq!(v["accuracy"]["top1"], 1.0);
    assert_eq!(v["accuracy"]["top1_correct"], images);
    assert_eq!(v["accuracy"]["topk"], 1.0);
    assert_eq!(v["accuracy"]["k"], 5);
    assert_eq!(v["macro"]["f1"], 1.0);
    assert_eq!(v["macro"]["classes"], 3);
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["confusions"].as_array().unwrap().len(), 0);
    assert_eq!(v["interrupted"], false);
}

#[test]
fn clean_folder_is_all_correct_through_both_apis() {
    let dir = temp_dir("harness", "clean");
    let val = fixture("val");
    let cfg = config();
    for api in ["ji", "evsdk"] {
        let (out, v) = run_with_report(
            &[
                "--api",
                api,
                "--print-json",
                "--config",
                cfg.to_str().unwrap(),
                val.to_str().unwrap(),
            ],
            &dir,
        );
        assert_all_correct(&v, 9);
        assert_eq!(v["api"], api);
        assert_eq!(v["latency_ms"]["calls"], 9);
        assert!(v["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
        assert!(
            v["latency_ms"]["max"].as_f64().unwrap() >= v["latency_ms"]["p99"].as_f64().unwrap()
        );
        assert!(v["throughput"]["images_per_s"].as_f64().unwrap() > 0.0);
        assert!(v["peak_rss_mib"].as_f64().unwrap() > 1.0);
        let text = stdout(&out);
        // Per-image lines (a small run) and the table.
        assert_eq!(text.lines().filter(|l| l.starts_with("ok ")).count(), 9);
        assert!(text.contains("100.00%  (9/9)"), "{text}");
        // --print-json: path TAB the library's own JSON, with the top-5 asked for.
        let raw: Vec<Value> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(_, j)| serde_json::from_str(j).unwrap())
            .collect();
        assert_eq!(raw.len(), 9);
        assert!(raw
            .iter()
            .all(|j| j["model_data"]["topk"].as_array().unwrap().len() == 3));
        assert!(raw.iter().any(|j| j["class"] == RED));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batch_and_threads_give_the_same_answers() {
    let dir = temp_dir("harness", "batch");
    let val = fixture("val");
    let cfg = config();
    let (_, v) = run_with_report(
        &[
            "--batch",
            "2",
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ],
        &dir,
    );
    assert_all_correct(&v, 9);
    assert_eq!(v["latency_ms"]["calls"], 5); // ceil(9 / 2) ji_calc_image calls
    assert_eq!(v["latency_ms"]["per"], "batch call");
    let (_, v) = run_with_report(
        &[
            "--threads",
            "3",
            "--repeat",
            "2",
            "--warmup",
            "2",
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ],
        &dir,
    );
    assert_all_correct(&v, 9);
    assert_eq!(v["settings"]["threads"], 3);
    assert_eq!(v["latency_ms"]["calls"], 18);
    // Batches exist only in the ji API.
    let out = harness()
        .args(["--api", "evsdk", "--batch", "2", "--config"])
        .arg(&cfg)
        .arg(&val)
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mislabelled_garbage_and_unknown_folder_are_reported() {
    let dir = temp_dir("harness", "dirty");
    let val = dir.join("val");
    copy_tree(&fixture("val"), &val);
    // A red image filed as green, a file of garbage bytes, a folder that is no class.
    std::fs::copy(
        val.join(RED).join("red_0.jpg"),
        val.join(GREEN).join("red_in_green.jpg"),
    )
    .unwrap();
    std::fs::write(
        val.join(BLUE).join("garbage.jpg"),
        b"this is not a JPEG at all",
    )
    .unwrap();
    std::fs::create_dir(val.join("not_a_class")).unwrap();
    std::fs::copy(
        val.join(BLUE).join("blue_0.jpg"),
        val.join("not_a_class").join("b.jpg"),
    )
    .unwrap();
    let cfg = config();
    let csv = dir.join("pred.csv");
    let svg = dir.join("confusion.svg");
    for extra in [
        &[][..],
        &["--batch", "2"][..],
        &["--api", "evsdk", "--threads", "2"][..],
        &["--decode", "pil"][..],
    ] {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend([
            "--predictions",
            csv.to_str().unwrap(),
            "--confusion",
            svg.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ]);
        // The run completes; one image failed: exit status 3, and it says so.
        let (out, v) = run_with_report_exiting(&args, &dir, 3);
        let ctx = format!("{extra:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("1 of 12 images failed"),
            "{ctx}"
        );
        assert_eq!(v["images"]["total"], 12, "{ctx}");
        assert_eq!(v["images"]["labelled"], 11, "{ctx}");
        assert_eq!(v["images"]["unknown_label"], 1, "{ctx}");
        assert_eq!(v["images"]["errors"], 1, "{ctx}");
        assert_eq!(v["accuracy"]["evaluated"], 10, "{ctx}");
        assert_eq!(v["accuracy"]["top1_correct"], 9, "{ctx}");
        assert_eq!(v["accuracy"]["top1"], 0.9, "{ctx}");
        assert_eq!(v["accuracy"]["labelled_errors"], 1, "{ctx}");
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{ctx}");
        assert_eq!(errors[0]["path"], format!("{BLUE}/garbage.jpg"), "{ctx}");
        assert!(errors[0]["code"].as_i64().unwrap() < 0, "{ctx}");
        assert!(
            errors[0]["message"].as_str().unwrap().contains("decode"),
            "{ctx}: {}",
            errors[0]
        );
        let conf = v["confusions"].as_array().unwrap();
        assert_eq!(conf.len(), 1, "{ctx}");
        assert_eq!(conf[0]["true"], GREEN);
        assert_eq!(conf[0]["predicted"], RED);
        assert_eq!(conf[0]["count"], 1);
        assert_eq!(v["unknown_label_folders"][0]["label"], "not_a_class");
        assert_eq!(v["unknown_label_folders"][0]["images"], 1);
        // Per-class: green is worst (3 of 4), listed first.
        assert_eq!(v["per_class"][0]["class"], GREEN);
        assert_eq!(v["per_class"][0]["accuracy"], 0.75);
        assert_eq!(v["per_class"].as_array().unwrap().len(), 3);
        assert_eq!(v["confusion_matrix"]["classes"][0], RED);
        assert_eq!(v["confusion_matrix"]["counts"][1][0], 1);
        assert_eq!(v["confusion_matrix"]["counts"][1][1], 3);
        let text = stdout(&out);
        assert!(text.contains("garbage.jpg"), "{text}");
        assert!(text.contains("not_a_class"), "{text}");
        assert!(text
            .lines()
            .any(|l| l.starts_with('✗') && l.contains("red_in_green.jpg")));
        // CSV: a header and one row per image.
        let rows = std::fs::read_to_string(&csv).unwrap();
        let lines: Vec<&str> = rows.lines().collect();
        assert_eq!(lines.len(), 13, "{ctx}: {rows}");
        assert_eq!(
            lines[0],
            "path,label,predicted,confidence,latency_ms,error,top1_class,top1_confidence,\
             top2_class,top2_confidence,top3_class,top3_confidence"
        );
        let bad = lines.iter().find(|l| l.contains("garbage.jpg")).unwrap();
        assert!(bad.split(',').nth(2).unwrap().is_empty(), "{bad}");
        let wrong = lines.iter().find(|l| l.contains("red_in_green")).unwrap();
        let f: Vec<&str> = wrong.split(',').collect();
        assert_eq!((f[1], f[2]), (GREEN, RED));
        assert!(f[5].is_empty());
        // Every class of the top-k with its confidence, in full precision (not 3 decimals),
        // ranked, summing to 1 over the three classes.
        assert_eq!((f[6], f[3]), (RED, f[7]));
        let confs: Vec<f64> = [7, 9, 11].iter().map(|&i| f[i].parse().unwrap()).collect();
        assert!(confs.windows(2).all(|w| w[0] >= w[1]), "{wrong}");
        assert!((confs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{wrong}");
        assert!(f[7].len() > 5, "full precision: {wrong}");
        let mut classes = vec![f[6], f[8], f[10]];
        classes.sort();
        let mut all = vec![RED, GREEN, BLUE];
        all.sort();
        assert_eq!(classes, all);
        // The matrix as SVG (tests/report_html.rs checks it in detail): a cell per non-zero
        // count, the class names as text.
        let text = std::fs::read_to_string(&svg).unwrap();
        assert_eq!(text.matches("<rect class=\"cell\"").count(), 4, "{ctx}");
        assert!(text.contains(&format!("<title>{GREEN}</title>")), "{ctx}");
        std::fs::remove_file(&svg).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn labels_csv_for_a_flat_folder() {
    let dir = temp_dir("harness", "labels");
    let flat = dir.join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    let mut csv = String::from("path,class\n");
    for (class, colour) in [(RED, "red"), (GREEN, "green"), (BLUE, "blue")] {
        for i in 0..3 {
            let name = format!("{colour}{i}.jpg");
            std::fs::copy(
                fixture("val").join(class).join(format!("{colour}_{i}.jpg")),
                flat.join(&name),
            )
            .unwrap();
            csv.push_str(&format!("{name},{class}\n"));
        }
    }
    // One more file labelled with a name that is no class.
    std::fs::copy(
        fixture("val").join(RED).join("red_0.jpg"),
        flat.join("x.jpg"),
    )
    .unwrap();
    csv.push_str("x.jpg,nonsense\n");
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let cfg = config();
    let (_, v) = run_with_report(
        &[
            "--labels",
            labels.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            flat.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(v["images"]["total"], 10);
    assert_eq!(v["accuracy"]["evaluated"], 9);
    assert_eq!(v["accuracy"]["top1"], 1.0);
    assert_eq!(v["unknown_label_folders"][0]["label"], "nonsense");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The image paths of one --split run, from its predictions CSV.
fn split_paths(train: &Path, seed: u64, dir: &Path) -> Vec<String> {
    let csv = dir.join(format!("split-{seed}.csv"));
    let out = harness()
        .args(["--split", "0.2", "--seed", &seed.to_string(), "--config"])
        .arg(config())
        .arg("--predictions")
        .arg(&csv)
        .arg(train)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut paths: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

#[test]
fn split_is_deterministic_per_seed() {
    let dir = temp_dir("harness", "split");
    let train = dir.join("train");
    for (class, colour) in [(RED, "red"), (GREEN, "green"), (BLUE, "blue")] {
        std::fs::create_dir_all(train.join(class)).unwrap();
        for i in 0..10 {
            std::fs::copy(
                fixture("val")
                    .join(class)
                    .join(format!("{colour}_{}.jpg", i % 3)),
                train.join(class).join(format!("{i:02}.jpg")),
            )
            .unwrap();
        }
    }
    let a = split_paths(&train, 1, &dir);
    assert_eq!(a.len(), 6, "{a:?}"); // ceil(0.2 * 10) of each class
    for class in [RED, GREEN, BLUE] {
        assert_eq!(a.iter().filter(|p| p.starts_with(class)).count(), 2);
    }
    assert_eq!(a, split_paths(&train, 1, &dir));
    assert!(
        (2..6).any(|s| split_paths(&train, s, &dir) != a),
        "every seed picked the same files"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_lists_the_disagreement() {
    let dir = temp_dir("harness", "compare");
    let mut images = Vec::new();
    for (class, id, colour) in [(RED, 0, "red"), (GREEN, 1, "green"), (BLUE, 2, "blue")] {
        for i in 0..3 {
            let path = format!("{class}/{colour}_{i}.jpg");
            // The reference disagrees on red_1 (says green with 0.9).
            let top = if colour == "red" && i == 1 {
                serde_json::json!([{"class": GREEN, "class_id": 1, "confidence": 0.9},
                                   {"class": RED, "class_id": 0, "confidence": 0.1}])
            } else {
                serde_json::json!([{"class": class, "class_id": id, "confidence": 0.999}])
            };
            images.push(serde_json::json!({"path": path, "label": class, "topk": top}));
        }
    }
    // An image the run does not have.
    images.push(serde_json::json!({"path": "elsewhere/x.jpg", "label": null,
        "topk": [{"class": RED, "class_id": 0, "confidence": 1.0}]}));
    let reference = dir.join("reference.json");
    std::fs::write(
        &reference,
        serde_json::json!({"config": {}, "images": images}).to_string(),
    )
    .unwrap();
    let cfg = config();
    let val = fixture("val");
    let (out, v) = run_with_report(
        &[
            "--compare",
            reference.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ],
        &dir,
    );
    let c = &v["compare"];
    assert_eq!(c["matched"], 9);
    assert_eq!(c["agree"], 8);
    assert!((c["top1_agreement"].as_f64().unwrap() - 8.0 / 9.0).abs() < 1e-12);
    assert_eq!(c["only_theirs"], 1);
    assert_eq!(c["only_ours"].as_array().unwrap().len(), 0);
    let d = c["disagreements"].as_array().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["path"], format!("{RED}/red_1.jpg"));
    assert_eq!(d[0]["ours"], RED);
    assert_eq!(d[0]["theirs"], GREEN);
    // Our confidence for green on a red image is ~0: the largest difference is ~0.9 there.
    let diff = c["max_top1_confidence_diff"].as_f64().unwrap();
    assert!((diff - 0.9).abs() < 0.01, "{diff}");
    assert_eq!(
        c["max_top1_confidence_diff_path"],
        format!("{RED}/red_1.jpg")
    );
    // Full-precision confidences were asked for.
    assert_eq!(v["settings"]["args"]["confidence_decimals"], Value::Null);
    let text = stdout(&out);
    assert!(text.contains("88.89%"), "{text}");
    assert!(text.contains("disagreements (1)"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_to_run_exit_non_zero() {
    let dir = temp_dir("harness", "fail");
    let cfg = config();
    let val = fixture("val");
    let cases: Vec<(Vec<PathBuf>, &str)> = vec![
        (
            vec![
                "--lib".into(),
                dir.join("nope.so"),
                "--config".into(),
                cfg.clone(),
                val.clone(),
            ],
            "cannot load",
        ),
        (
            vec![
                "--config".into(),
                fixture("missing_model.json"),
                val.clone(),
            ],
            "ji_create_predictor",
        ),
        (
            vec![
                "--api".into(),
                "evsdk".into(),
                "--config".into(),
                fixture("missing_model.json"),
                val.clone(),
            ],
            "evsdk_init",
        ),
        (
            vec!["--config".into(), cfg.clone(), dir.clone()],
            "no images",
        ),
        (
            vec![
                "--args".into(),
                "{".into(),
                "--config".into(),
                cfg.clone(),
                val.clone(),
            ],
            "--args",
        ),
    ];
    for (args, needle) in cases {
        let out = harness().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err} lacks {needle}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_stops_with_a_partial_report() {
    let dir = temp_dir("harness", "sigint");
    let report = dir.join("report.json");
    let child = harness()
        .args(["--repeat", "1000000", "--config"])
        .arg(config())
        .arg("--report")
        .arg(&report)
        .arg(fixture("val"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the harness has installed its SIGINT handler (bit 1 of SigCgt): loading
    // libtorch alone takes over a second on a busy machine, and a SIGINT before that kills
    // the process the default way. Then let it run a little.
    let caught = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        status.ok().and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))?
                .trim()
                .to_owned();
            Some(u64::from_str_radix(&hex, 16).ok()? & (1 << (libc::SIGINT - 1)) != 0)
        })
    };
    let t0 = std::time::Instant::now();
    while caught() != Some(true) && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    assert!(v["images"]["not_run"].as_u64().unwrap() >= 1);
    assert!(stdout(&out).contains("INTERRUPTED"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 16-bit 5-5-5 BMP of one colour (bottom-up rows): OpenCV shifts the 5-bit channels, PIL
/// scales them, so the two decodes differ ("other") while the colour stays the same.
fn bmp555(w: usize, h: usize, rgb: (u16, u16, u16)) -> Vec<u8> {
    let px = ((rgb.0 >> 3) << 10) | ((rgb.1 >> 3) << 5) | (rgb.2 >> 3);
    let stride = (w * 2).div_ceil(4) * 4;
    let mut data = Vec::new();
    for _ in 0..h {
        let mut row: Vec<u8> = (0..w).flat_map(|_| px.to_le_bytes()).collect();
        row.resize(stride, 0);
        data.extend(row);
    }
    let mut f = b"BM".to_vec();
    f.extend(((54 + data.len()) as u32).to_le_bytes());
    f.extend([0u8; 4]);
    f.extend(54u32.to_le_bytes());
    f.extend(40u32.to_le_bytes());
    f.extend((w as i32).to_le_bytes());
    f.extend((h as i32).to_le_bytes());
    f.extend(1u16.to_le_bytes());
    f.extend(16u16.to_le_bytes());
    f.extend([0u8; 24]);
    f.extend(data);
    f
}

/// The judge reads with cv::imread: an EXIF-rotated photo arrives rotated, a CMYK JPEG
/// converted by OpenCV's formula, a 16-bit BMP with OpenCV's channel expansion, a GIF (not
/// emulated) as PIL reads it. The report counts those images, and gives the accuracy both
/// ways; `--decode pil` replays the files through the library's own (PIL) decode.
#[test]
fn the_judges_decode_is_reported_with_the_accuracy_both_ways() {
    let dir = temp_dir("harness", "judge-decode");
    let val = dir.join("val");
    copy_tree(&fixture("val"), &val);
    // A wide image, red at the sides and green in the middle, whose EXIF says "rotate 90°"
    // (orientation 6), filed as green: upright as PIL reads it, the centre crop of the
    // stretched image is green; rotated as the judge reads it, the crop spans the whole
    // height of the bands and red wins.
    let out = std::process::Command::new(python())
        .current_dir(&val)
        .arg("-c")
        .arg(format!(
            "import numpy as np\nfrom PIL import Image\n\
             ex = Image.Exif(); ex[0x0112] = 6\n\
             a = np.zeros((32, 96, 3), np.uint8); a[:] = (200, 30, 30); a[:, 30:66] = (30, 200, 30)\n\
             Image.fromarray(a).save('{GREEN}/wide_exif6.jpg', quality=95, exif=ex.tobytes())\n\
             Image.new('RGB', (40, 30), (200, 30, 30)).convert('CMYK').save('{RED}/red_cmyk.jpg', quality=95)\n\
             Image.new('RGB', (40, 30), (30, 30, 200)).save('{BLUE}/blue.gif')\n"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        val.join(BLUE).join("blue555.bmp"),
        bmp555(40, 30, (30, 30, 200)),
    )
    .unwrap();
    let cfg = dir.join("wide.json");
    let base = fixture("colour.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    for key in ["model_path", "class_names_path"] {
        c[key] = base
            .parent()
            .unwrap()
            .join(c[key].as_str().unwrap())
            .to_str()
            .unwrap()
            .into();
    }
    c["resize_size"] = serde_json::json!([32, 64]);
    std::fs::write(&cfg, c.to_string()).unwrap();
    let wide = format!("{GREEN}/wide_exif6.jpg");

    for (extra, call) in [
        (&[][..], "ji_calc_frame"),
        (&["--batch", "3"][..], "ji_calc_image"),
        (&["--api", "evsdk"][..], "evsdk_process_bgr"),
    ] {
        let mut args = extra.to_vec();
        args.extend(["--config", cfg.to_str().unwrap(), val.to_str().unwrap()]);
        let (out, v) = run_with_report(&args, &dir);
        let ctx = format!("{extra:?}");
        let d = &v["decode"];
        assert_eq!(d["mode"], "imread", "{ctx}");
        assert_eq!(d["call"], call, "{ctx}");
        assert_eq!(
            d["differs_from_pil"],
            serde_json::json!({"images": 3, "rotated": 1, "cmyk": 1, "other": 1}),
            "{ctx}"
        );
        assert_eq!(d["not_emulated"], serde_json::json!({"GIF": 1}), "{ctx}");
        // The run's accuracy is the judge's: the rotated image is wrong; with PIL's decode
        // every image is right.
        assert_eq!(v["accuracy"]["evaluated"], 13, "{ctx}");
        assert_eq!(v["accuracy"]["top1_correct"], 12, "{ctx}");
        assert_eq!(d["accuracy_with_judge_decode"]["top1_correct"], 12, "{ctx}");
        assert_eq!(d["accuracy_with_pil_decode"]["top1_correct"], 13, "{ctx}");
        assert_eq!(d["accuracy_with_pil_decode"]["evaluated"], 13, "{ctx}");
        let diffs = d["differences"].as_array().unwrap();
        let w = diffs.iter().find(|x| x["path"] == wide.as_str()).unwrap();
        assert_eq!(w["how"], "rotated");
        assert_eq!(w["judge"]["class"], RED);
        assert_eq!(w["pil"]["class"], GREEN);
        assert!(
            w["detail"].as_str().unwrap().contains("orientation 6"),
            "{w}"
        );
        let bmp = diffs.iter().find(|x| x["how"] == "other").unwrap();
        assert!(
            bmp["path"].as_str().unwrap().ends_with("blue555.bmp"),
            "{bmp}"
        );
        assert!(
            bmp["detail"].as_str().unwrap().starts_with("BMP: "),
            "{bmp}"
        );
        let text = stdout(&out);
        assert!(
            text.contains(
                "differs from PIL's on 3 images: 1 rotated (EXIF orientation), 1 CMYK, 1 other"
            ),
            "{text}"
        );
        assert!(
            text.contains("top-1 with PIL's decode        100.00%  (13/13)"),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with('✗')
                && l.contains("wide_exif6.jpg")
                && l.contains("[judge's decode differs from PIL's: rotated]")),
            "{text}"
        );
    }

    // PIL's decode, through the library's file calls: every image right, nothing compared.
    let (_, v) = run_with_report(
        &[
            "--decode",
            "pil",
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(v["decode"]["mode"], "pil");
    assert_eq!(v["decode"]["call"], "ji_calc_file");
    assert!(v["decode"].get("differs_from_pil").is_none());
    assert_eq!(v["accuracy"]["top1_correct"], 13);

    // tools/reference_predict.py reads the same way by default (cv2.imread), so --compare
    // agrees; a reference read with PIL disagrees on the rotated image, and the run says why.
    let refs = |decode: &str| {
        let path = dir.join(format!("ref-{decode}.json"));
        let out = std::process::Command::new(python())
            .arg(root().join("tools/reference_predict.py"))
            .args(["--decode", decode, "--config"])
            .arg(&cfg)
            .arg(&val)
            .arg("--out")
            .arg(&path)
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    };
    let imread_ref = refs("imread");
    let (_, v) = run_with_report(
        &[
            "--compare",
            imread_ref.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(v["compare"]["agree"], 13);
    assert_eq!(v["compare"]["reference_decode"], "imread");
    let pil_ref = refs("pil");
    let (out, v) = run_with_report(
        &[
            "--compare",
            pil_ref.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            val.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(v["compare"]["agree"], 12);
    assert_eq!(v["compare"]["disagreements"][0]["path"], wide.as_str());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("the reference read its images with --decode pil"));
    std::fs::remove_dir_all(&dir).unwrap();
}
