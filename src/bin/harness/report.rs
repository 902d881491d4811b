//! The run's report: built once as JSON (`--report`), printed as aligned tables, plus the
//! per-image CSV (`--predictions`) and the confusion matrix as SVG (`--confusion`).

use crate::compare::Comparison;
use crate::metrics::{self, Eval};
use crate::record::Record;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// How the run was made (echoed in the report).
pub struct RunInfo {
    pub library: String,
    pub api: String,
    pub version: String,
    pub config: String,
    /// `--decode`: "imread" or "pil".
    pub decode: String,
    /// The C function each timed call went through (`ji_calc_frame`, ...).
    pub call: String,
    pub val_dir: String,
    pub labels: Option<String>,
    pub args: String,
    pub split: Option<f64>,
    pub seed: u64,
    pub threads: usize,
    pub batch: usize,
    pub repeat: usize,
    pub warmup: usize,
    pub interrupted: bool,
    pub wall_s: f64,
    pub peak_rss_kib: u64,
    pub topk: usize,
}

/// Rows shown in the tables (the JSON has everything).
const TABLE_ROWS: usize = 15;

pub struct Report {
    pub json: Value,
    pub matrix_names: Vec<String>,
    pub matrix: Vec<Vec<usize>>,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.2}%", 100.0 * v))
}

fn round(x: f64, d: i32) -> f64 {
    let s = 10f64.powi(d);
    (x * s).round() / s
}

/// The `"decode"` object: how images were read and, with the judge's decode, where it
/// differs from PIL's and the accuracy each way.
fn decode_summary(info: &RunInfo, records: &[Record]) -> Value {
    let frames = info.decode == "imread" || info.batch > 1;
    let mut j = json!({
        "mode": info.decode,
        "call": info.call,
        "timed": if frames {
            "the call alone (the harness decodes the image before it)"
        } else {
            "the call, the library's decode of the file included"
        },
    });
    if info.decode != "imread" {
        return j;
    }
    let mut counts: BTreeMap<&str, usize> = [("rotated", 0), ("cmyk", 0), ("other", 0)]
        .into_iter()
        .collect();
    let mut not_emulated: BTreeMap<&str, usize> = BTreeMap::new();
    let mut differences = Vec::new();
    let class_or_error = |r: &crate::record::ImageResult| match r {
        Ok(p) => json!({"class": p.class, "confidence": p.confidence}),
        Err((code, msg)) => json!({"error": format!("{code}: {msg}")}),
    };
    for r in records {
        let (Some(o), Some(note)) = (&r.outcome, r.decode_note()) else {
            continue;
        };
        if let Some(f) = note.not_emulated {
            *not_emulated.entry(f).or_default() += 1;
        }
        if let Some((how, pil)) = &note.difference {
            *counts.entry(how.kind()).or_default() += 1;
            differences.push(json!({
                "path": r.sample.rel, "label": r.sample.label, "how": how.kind(),
                "detail": how.detail(),
                "judge": class_or_error(&o.result), "pil": class_or_error(pil),
            }));
        }
    }
    j["differs_from_pil"] = json!({
        "images": differences.len(),
        "rotated": counts["rotated"], "cmyk": counts["cmyk"], "other": counts["other"],
    });
    j["not_emulated"] = json!(not_emulated);
    if !differences.is_empty() {
        let accuracy = |pil: bool| {
            let evals: Vec<Eval> = records
                .iter()
                .filter_map(|r| {
                    let result = if pil {
                        r.result_with_pil_decode()?
                    } else {
                        &r.outcome.as_ref()?.result
                    };
                    Some(Eval {
                        truth: r.scored_label()?.to_owned(),
                        ranked: result
                            .as_ref()
                            .ok()?
                            .ranked
                            .iter()
                            .map(|(c, _)| c.clone())
                            .collect(),
                    })
                })
                .collect();
            let s = metrics::evaluate(&evals, info.topk);
            json!({
                "top1": s.top1(), "top1_correct": s.top1_correct,
                "topk": s.topk(), "topk_correct": s.topk_correct, "k": s.k,
                "evaluated": s.evaluated,
            })
        };
        j["accuracy_with_judge_decode"] = accuracy(false);
        j["accuracy_with_pil_decode"] = accuracy(true);
    }
    j["differences"] = Value::Array(differences);
    j
}

/// One line on how images were read and called (the text and HTML summaries).
pub fn decode_line(d: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let how = match d["mode"].as_str() {
        Some("imread") => "cv::imread(path), emulated, as the judge's tools read",
        Some("pil") => {
            "PIL's Image.open(path).convert('RGB') (the judge's tools read with cv::imread: \
             the default --decode imread shows where that differs)"
        }
        _ => return "n/a".into(),
    };
    let mut line = format!(
        "{how}, then {}; latency is {}",
        s(&d["call"]),
        s(&d["timed"])
    );
    if let Some(ne) = d["not_emulated"].as_object().filter(|m| !m.is_empty()) {
        let list: Vec<String> = ne.iter().map(|(f, n)| format!("{n} {f}")).collect();
        line.push_str(&format!(
            "; not emulated, read as PIL reads them: {}",
            list.join(", ")
        ));
    }
    line
}

impl Report {
    pub fn build(
        info: &RunInfo,
        records: &[Record],
        class_names: &[String],
        call_ms: &[f64],
        comparison: Option<Comparison>,
    ) -> Report {
        let run = records.iter().filter(|r| r.outcome.is_some()).count();
        let errors: Vec<&Record> = records.iter().filter(|r| r.error().is_some()).collect();
        let labelled = records
            .iter()
            .filter(|r| r.scored_label().is_some())
            .count();
        let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
        for r in records {
            if let (Some(l), false) = (&r.sample.label, r.label_known) {
                *unknown.entry(l.as_str()).or_default() += 1;
            }
        }
        let unknown_n: usize = unknown.values().sum();
        let unlabelled = records.iter().filter(|r| r.sample.label.is_none()).count();
        let evals: Vec<Eval> = records
            .iter()
            .filter_map(|r| {
                Some(Eval {
                    truth: r.scored_label()?.to_owned(),
                    ranked: r.parsed()?.ranked.iter().map(|(c, _)| c.clone()).collect(),
                })
            })
            .collect();
        let labelled_errors = records
            .iter()
            .filter(|r| r.scored_label().is_some() && r.error().is_some())
            .count();
        let s = metrics::evaluate(&evals, info.topk);
        let (matrix_names, matrix) = metrics::confusion_matrix(&evals, class_names);
        // Over 512 classes the matrix is unreadable: keep the classes that occur.
        let (matrix_names, matrix) = metrics::shrink_matrix(matrix_names, matrix, 512);
        let devices: BTreeSet<&str> = records
            .iter()
            .filter_map(|r| r.parsed()?.device.as_deref())
            .collect();
        let lat = metrics::latency_stats(call_ms);
        let hist = metrics::histogram(call_ms);
        // Wrong top-1 answers on labelled images, the most confident first (the mistakes a
        // contestant should look at first: systematic confusions or mislabelled files).
        let mut wrong: Vec<(&Record, &crate::record::Parsed)> = records
            .iter()
            .filter_map(|r| {
                let p = r.parsed()?;
                (r.scored_label()? != p.class).then_some((r, p))
            })
            .collect();
        wrong.sort_by(|a, b| {
            b.1.confidence
                .total_cmp(&a.1.confidence)
                .then_with(|| a.0.sample.rel.cmp(&b.0.sample.rel))
        });
        let image_calls = run * info.repeat;
        let per_class: Vec<Value> = s
            .per_class
            .iter()
            .map(|c| {
                json!({
                    "class": c.class, "images": c.images, "correct": c.correct,
                    "predicted": c.predicted, "accuracy": c.accuracy,
                    "precision": c.precision, "recall": c.recall, "f1": c.f1,
                })
            })
            .collect();
        let mut j = json!({
            "library": info.library,
            "api": info.api,
            "version": serde_json::from_str::<Value>(&info.version)
                .unwrap_or_else(|_| Value::String(info.version.clone())),
            "config": info.config,
            "val_dir": info.val_dir,
            "labels": info.labels,
            "settings": {
                "args": serde_json::from_str::<Value>(&info.args).unwrap_or(Value::Null),
                "threads": info.threads, "batch": info.batch, "repeat": info.repeat,
                "warmup": info.warmup, "split": info.split,
                "seed": info.split.map(|_| info.seed),
            },
            "interrupted": info.interrupted,
            "device": devices.iter().copied().collect::<Vec<_>>().join(","),
            "devices": devices.iter().collect::<Vec<_>>(),
            "images": {
                "total": records.len(),
                "run": run,
                "not_run": records.len() - run,
                "succeeded": run - errors.len(),
                "errors": errors.len(),
                "labelled": labelled,
                "unknown_label": unknown_n,
                "unlabelled": unlabelled,
                "evaluated": s.evaluated,
            },
            "unknown_label_folders": unknown.iter()
                .map(|(l, n)| json!({"label": l, "images": n})).collect::<Vec<_>>(),
            "accuracy": {
                "top1": s.top1(),
                "top1_correct": s.top1_correct,
                "topk": s.topk(),
                "topk_correct": s.topk_correct,
                "k": s.k,
                "evaluated": s.evaluated,
                "labelled_errors": labelled_errors,
                // As a judge that counts a failed image as wrong would see it.
                "top1_counting_errors": (s.evaluated + labelled_errors > 0).then(||
                    s.top1_correct as f64 / (s.evaluated + labelled_errors) as f64),
            },
            "macro": {
                "precision": s.macro_precision, "recall": s.macro_recall, "f1": s.macro_f1,
                "classes": s.per_class.len(),
            },
            "per_class": per_class,
            "confusions": s.confusions.iter().map(|c| json!({
                "true": c.truth, "predicted": c.predicted, "count": c.count,
            })).collect::<Vec<_>>(),
            "confusion_matrix": {"classes": matrix_names, "counts": matrix},
            "misclassified": wrong.iter().map(|(r, p)| json!({
                "path": r.sample.rel, "label": r.sample.label, "predicted": p.class,
                "confidence": p.confidence,
                "topk": p.ranked.iter()
                    .map(|(c, v)| json!({"class": c, "confidence": v})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "errors": errors.iter().map(|r| {
                let (code, msg) = r.error().unwrap();
                json!({"path": r.sample.rel, "label": r.sample.label, "code": code, "message": msg})
            }).collect::<Vec<_>>(),
            "latency_ms": lat.as_ref().map(|l| json!({
                "per": if info.batch > 1 { "batch call" } else { "call" },
                "frames_per_call": info.batch,
                "calls": l.count, "mean": l.mean, "p50": l.p50, "p90": l.p90,
                "p99": l.p99, "max": l.max,
                "histogram": hist.as_ref().map(|h| json!({
                    "lo": h.lo, "bin": h.bin, "counts": h.counts, "above": h.above,
                })),
            })),
            "throughput": {
                "wall_s": info.wall_s,
                "image_calls": image_calls,
                "images_per_s": (info.wall_s > 0.0).then(|| image_calls as f64 / info.wall_s),
            },
            "peak_rss_mib": round(info.peak_rss_kib as f64 / 1024.0, 1),
        });
        j["decode"] = decode_summary(info, records);
        if let Some(c) = comparison {
            j["compare"] = c.to_json();
        }
        Report {
            json: j,
            matrix_names,
            matrix,
        }
    }

    /// A report read back from `--report`'s JSON (to write `--html` / `--confusion` without
    /// running again).
    pub fn from_json(json: Value) -> Result<Report, String> {
        let cm = &json["confusion_matrix"];
        let (Some(names), Some(counts)) = (cm["classes"].as_array(), cm["counts"].as_array())
        else {
            return Err("not a harness report (no \"confusion_matrix\")".into());
        };
        if json["images"].get("total").is_none() || json.get("per_class").is_none() {
            return Err("not a harness report (no \"images\" / \"per_class\")".into());
        }
        let matrix_names: Vec<String> = names
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or("confusion_matrix.classes holds a non-string")?;
        let matrix: Vec<Vec<usize>> = counts
            .iter()
            .map(|row| {
                let row = row.as_array()?;
                (row.len() == matrix_names.len())
                    .then(|| row.iter().map(|v| v.as_u64().map(|v| v as usize)).collect())?
            })
            .collect::<Option<_>>()
            .ok_or("confusion_matrix.counts is not a square matrix of counts")?;
        if matrix.len() != matrix_names.len() {
            return Err("confusion_matrix.counts is not a square matrix of counts".into());
        }
        Ok(Report {
            json,
            matrix_names,
            matrix,
        })
    }

    /// The readable tables, on stdout.
    pub fn print(&self) {
        let mut out = String::new();
        self.render(&mut out);
        print!("{out}");
    }

    pub fn render(&self, o: &mut String) {
        use std::fmt::Write;
        let j = &self.json;
        let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let f = |v: &Value| v.as_f64();
        let version = match &j["version"] {
            Value::String(v) => v.clone(),
            v => v.get("sdk_version").map_or(v.to_string(), s),
        };
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "== harness report{} ==",
            if j["interrupted"] == true {
                " (INTERRUPTED: partial)"
            } else {
                ""
            }
        );
        let img = &j["images"];
        let rows = vec![
            vec!["library".into(), s(&j["library"])],
            vec!["api".into(), format!("{}_* (sdk {version})", s(&j["api"]))],
            vec!["config".into(), s(&j["config"])],
            vec!["decode".into(), decode_line(&j["decode"])],
            vec!["images".into(), {
                let mut t = format!(
                    "{} in {} ({} run, {} ok, {} errors)",
                    n(&img["total"]),
                    s(&j["val_dir"]),
                    n(&img["run"]),
                    n(&img["succeeded"]),
                    n(&img["errors"])
                );
                if n(&img["not_run"]) > 0 {
                    let _ = write!(t, ", {} not run", n(&img["not_run"]));
                }
                t
            }],
            vec![
                "labels".into(),
                format!(
                    "{} labelled, {} unknown label, {} unlabelled",
                    n(&img["labelled"]),
                    n(&img["unknown_label"]),
                    n(&img["unlabelled"])
                ),
            ],
            vec!["device".into(), s(&j["device"])],
        ];
        table(o, &[], &rows, &[]);

        let a = &j["accuracy"];
        let m = &j["macro"];
        let _ = writeln!(
            o,
            "\naccuracy (over {} labelled images that ran)",
            n(&a["evaluated"])
        );
        let rows = vec![
            vec![
                "top-1".into(),
                pct(f(&a["top1"])),
                format!("({}/{})", n(&a["top1_correct"]), n(&a["evaluated"])),
            ],
            vec![
                format!("top-{}", n(&a["k"])),
                pct(f(&a["topk"])),
                format!("({}/{})", n(&a["topk_correct"]), n(&a["evaluated"])),
            ],
            vec![
                "top-1, errors as wrong".into(),
                pct(f(&a["top1_counting_errors"])),
                format!(
                    "({}/{})",
                    n(&a["top1_correct"]),
                    n(&a["evaluated"]) + n(&a["labelled_errors"])
                ),
            ],
            vec![
                "macro precision".into(),
                format!("{:.4}", f(&m["precision"]).unwrap_or(0.0)),
                format!("over {} classes present", n(&m["classes"])),
            ],
            vec![
                "macro recall".into(),
                format!("{:.4}", f(&m["recall"]).unwrap_or(0.0)),
                String::new(),
            ],
            vec![
                "macro F1".into(),
                format!("{:.4}", f(&m["f1"]).unwrap_or(0.0)),
                String::new(),
            ],
        ];
        table(o, &[], &rows, &[1]);

        render_decode(o, &j["decode"]);

        let pc = j["per_class"].as_array().cloned().unwrap_or_default();
        if !pc.is_empty() {
            let _ = writeln!(
                o,
                "\nper-class accuracy, worst first ({} of {})",
                pc.len().min(TABLE_ROWS),
                pc.len()
            );
            let rows: Vec<Vec<String>> = pc
                .iter()
                .take(TABLE_ROWS)
                .map(|c| {
                    vec![
                        s(&c["class"]),
                        n(&c["images"]).to_string(),
                        n(&c["correct"]).to_string(),
                        pct(f(&c["accuracy"])),
                        format!("{:.3}", f(&c["precision"]).unwrap_or(0.0)),
                        format!("{:.3}", f(&c["recall"]).unwrap_or(0.0)),
                        format!("{:.3}", f(&c["f1"]).unwrap_or(0.0)),
                    ]
                })
                .collect();
            table(
                o,
                &[
                    "class",
                    "images",
                    "correct",
                    "accuracy",
                    "precision",
                    "recall",
                    "F1",
                ],
                &rows,
                &[1, 2, 3, 4, 5, 6],
            );
        }

        let conf = j["confusions"].as_array().cloned().unwrap_or_default();
        if !conf.is_empty() {
            let _ = writeln!(
                o,
                "\nmost frequent confusions ({} of {})",
                conf.len().min(TABLE_ROWS),
                conf.len()
            );
            let rows: Vec<Vec<String>> = conf
                .iter()
                .take(TABLE_ROWS)
                .map(|c| {
                    vec![
                        s(&c["true"]),
                        "→".into(),
                        s(&c["predicted"]),
                        n(&c["count"]).to_string(),
                    ]
                })
                .collect();
            table(o, &["true", "", "predicted", "count"], &rows, &[3]);
        }

        let unk = j["unknown_label_folders"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !unk.is_empty() {
            let _ = writeln!(o, "\nlabels that match no class name (images not scored)");
            let rows: Vec<Vec<String>> = unk
                .iter()
                .map(|u| vec![s(&u["label"]), n(&u["images"]).to_string()])
                .collect();
            table(o, &["label", "images"], &rows, &[1]);
        }

        let errs = j["errors"].as_array().cloned().unwrap_or_default();
        if !errs.is_empty() {
            let _ = writeln!(
                o,
                "\nerrors ({} of {})",
                errs.len().min(TABLE_ROWS),
                errs.len()
            );
            let rows: Vec<Vec<String>> = errs
                .iter()
                .take(TABLE_ROWS)
                .map(|e| {
                    vec![
                        s(&e["path"]),
                        e["code"].to_string(),
                        s(&e["message"]).replace('\n', " "),
                    ]
                })
                .collect();
            table(o, &["path", "code", "message"], &rows, &[1]);
        }

        let _ = writeln!(o, "\nspeed");
        let mut rows = Vec::new();
        if let Some(l) = j["latency_ms"].as_object() {
            let g = |k: &str| l.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            rows.push(vec![
                format!(
                    "latency per {} (ms)",
                    l.get("per").and_then(Value::as_str).unwrap_or("call")
                ),
                format!(
                    "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}  ({} calls)",
                    g("p50"),
                    g("p90"),
                    g("p99"),
                    g("max"),
                    g("mean"),
                    l.get("calls").and_then(Value::as_u64).unwrap_or(0)
                ),
            ]);
        }
        let t = &j["throughput"];
        let st = &j["settings"];
        rows.push(vec![
            "throughput".into(),
            format!(
                "{} images/s  ({} image calls in {:.3} s; {} threads, batch {}, repeat {})",
                f(&t["images_per_s"]).map_or("n/a".into(), |v| format!("{v:.1}")),
                n(&t["image_calls"]),
                f(&t["wall_s"]).unwrap_or(0.0),
                n(&st["threads"]),
                n(&st["batch"]),
                n(&st["repeat"])
            ),
        ]);
        rows.push(vec![
            "peak resident memory".into(),
            format!("{:.1} MiB", f(&j["peak_rss_mib"]).unwrap_or(0.0)),
        ]);
        table(o, &[], &rows, &[]);

        if let Some(c) = j.get("compare") {
            let _ = writeln!(o, "\ncomparison with {}", s(&c["reference"]));
            let mut rows = vec![
                vec![
                    "top-1 agreement".into(),
                    format!(
                        "{}  ({}/{} images on both sides)",
                        pct(f(&c["top1_agreement"])),
                        n(&c["agree"]),
                        n(&c["matched"])
                    ),
                ],
                vec![
                    "max |Δ confidence| (top-1 class)".into(),
                    match f(&c["max_top1_confidence_diff"]) {
                        Some(d) => {
                            format!("{d:.3e}  ({})", s(&c["max_top1_confidence_diff_path"]))
                        }
                        None => "n/a".into(),
                    },
                ],
            ];
            if let Some(rd) = c["reference_decode"].as_str() {
                let run = j["decode"]["mode"].as_str().unwrap_or("");
                rows.push(vec![
                    "decode".into(),
                    if rd == run {
                        format!("both {rd}")
                    } else {
                        format!("the reference {rd}, this run {run}: images whose decodes differ may disagree for that alone")
                    },
                ]);
            }
            let ours = c["only_ours"].as_array().map_or(0, Vec::len);
            if ours > 0 || n(&c["only_theirs"]) > 0 {
                rows.push(vec![
                    "unmatched".into(),
                    format!(
                        "{ours} only here, {} only in the reference",
                        n(&c["only_theirs"])
                    ),
                ]);
            }
            table(o, &[], &rows, &[]);
            let dis = c["disagreements"].as_array().cloned().unwrap_or_default();
            if !dis.is_empty() {
                let _ = writeln!(o, "\ndisagreements ({})", dis.len());
                let rows: Vec<Vec<String>> = dis
                    .iter()
                    .map(|d| vec![s(&d["path"]), s(&d["ours"]), s(&d["theirs"])])
                    .collect();
                table(o, &["path", "ours", "reference"], &rows, &[]);
            }
        }
    }
}

/// The images whose judge's decode differs from PIL's, and the accuracy both ways.
fn render_decode(o: &mut String, d: &Value) {
    use std::fmt::Write;
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let diff = &d["differs_from_pil"];
    if n(&diff["images"]) == 0 {
        return;
    }
    let _ = writeln!(
        o,
        "\nthe judge's decode (cv::imread) differs from PIL's on {} images: {} rotated (EXIF \
         orientation), {} CMYK, {} other",
        n(&diff["images"]),
        n(&diff["rotated"]),
        n(&diff["cmyk"]),
        n(&diff["other"])
    );
    let acc = |a: &Value, which: &str, k: &str, correct: &str| {
        vec![
            which.to_owned(),
            pct(a[k].as_f64()),
            format!("({}/{})", n(&a[correct]), n(&a["evaluated"])),
        ]
    };
    let p = &d["accuracy_with_pil_decode"];
    let k = n(&p["k"]);
    table(
        o,
        &[],
        &[
            acc(
                &d["accuracy_with_judge_decode"],
                "top-1 with the judge's decode",
                "top1",
                "top1_correct",
            ),
            acc(p, "top-1 with PIL's decode", "top1", "top1_correct"),
            acc(
                &d["accuracy_with_judge_decode"],
                &format!("top-{k} with the judge's decode"),
                "topk",
                "topk_correct",
            ),
            acc(
                p,
                &format!("top-{k} with PIL's decode"),
                "topk",
                "topk_correct",
            ),
        ],
        &[1],
    );
    let list = d["differences"].as_array().cloned().unwrap_or_default();
    let outcome = |v: &Value| match v.get("class") {
        Some(c) => c.as_str().unwrap_or("").to_owned(),
        None => format!("error ({})", s(&v["error"])),
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .take(TABLE_ROWS)
        .map(|x| {
            vec![
                s(&x["path"]),
                s(&x["how"]),
                outcome(&x["judge"]),
                outcome(&x["pil"]),
                s(&x["detail"]),
            ]
        })
        .collect();
    let _ = writeln!(
        o,
        "\nimages decoded differently ({} of {})",
        rows.len(),
        list.len()
    );
    table(
        o,
        &["path", "how", "judge's decode", "PIL's decode", "detail"],
        &rows,
        &[],
    );
}

/// Terminal columns of a string: East Asian wide characters take two.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = matches!(u,
                0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
                | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
                | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// `s` padded with spaces to `w` terminal columns.
pub fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(display_width(s))))
}

/// Writes rows as aligned columns (two-space indent); `right` lists right-aligned columns.
fn table(o: &mut String, header: &[&str], rows: &[Vec<String>], right: &[usize]) {
    let cols = rows
        .iter()
        .map(Vec::len)
        .chain([header.len()])
        .max()
        .unwrap_or(0);
    let mut w = vec![0; cols];
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in rows.iter().chain((!head.is_empty()).then_some(&head)) {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(display_width(c));
        }
    }
    let line = |o: &mut String, r: &[String]| {
        let mut l = String::from("  ");
        for (i, c) in r.iter().enumerate() {
            let pad = " ".repeat(w[i] - display_width(c));
            let last = i + 1 == r.len();
            if right.contains(&i) {
                l.push_str(&pad);
                l.push_str(c);
            } else {
                l.push_str(c);
                if !last {
                    l.push_str(&pad);
                }
            }
            if !last {
                l.push_str("  ");
            }
        }
        o.push_str(l.trim_end());
        o.push('\n');
    };
    if !head.is_empty() {
        line(o, &head);
    }
    for r in rows {
        line(o, r);
    }
}

pub fn write_json(path: &Path, v: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// YlOrRd-like colour for t in [0, 1] (the off-diagonal cells: confusions).
pub fn heat(t: f64) -> [u8; 3] {
    ramp(
        &[
            [255.0, 237.0, 160.0],
            [254.0, 178.0, 76.0],
            [240.0, 59.0, 32.0],
            [128.0, 0.0, 38.0],
        ],
        t,
    )
}

/// Blues for t in [0, 1] (the diagonal: correct answers).
pub fn blues(t: f64) -> [u8; 3] {
    ramp(
        &[
            [222.0, 235.0, 247.0],
            [107.0, 174.0, 214.0],
            [8.0, 69.0, 148.0],
        ],
        t,
    )
}

fn ramp(stops: &[[f64; 3]], t: f64) -> [u8; 3] {
    let x = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let u = x - i as f64;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (stops[i][k] + (stops[i + 1][k] - stops[i][k]) * u).round() as u8;
    }
    c
}

/// `--confusion FILE.svg`: the full confusion matrix as a standalone SVG, the one the HTML
/// report shows (class names on both axes, colour scales, counts on hover).
pub fn write_confusion_svg(
    path: &Path,
    names: &[String],
    matrix: &[Vec<usize>],
) -> Result<(), String> {
    let order: Vec<usize> = (0..names.len()).collect();
    let svg = crate::html::matrix_svg(names, matrix, &order, "m");
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        svg.into_string()
    );
    std::fs::write(path, text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_cells() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("有害垃圾_杀虫剂"), 15);
        assert_eq!(heat(0.0), [255, 237, 160]);
        assert_eq!(heat(1.0), [128, 0, 38]);
        assert_eq!(blues(1.0), [8, 69, 148]);
        assert_eq!(blues(0.5), [107, 174, 214]);
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
    }

    #[test]
    fn table_aligns_wide_chars() {
        let mut o = String::new();
        table(
            &mut o,
            &["class", "n"],
            &[
                vec!["有害垃圾".into(), "1".into()],
                vec!["ab".into(), "10".into()],
            ],
            &[1],
        );
        let lines: Vec<&str> = o.lines().collect();
        assert_eq!(lines[1], "  有害垃圾   1");
        assert_eq!(lines[2], "  ab        10");
    }
}
