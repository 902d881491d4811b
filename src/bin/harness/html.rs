//! `--html report.html`: the run's report as one self-contained page (inline CSS and SVG,
//! thumbnails as data URIs, no script, nothing fetched), built from the report's JSON alone so
//! that `--from-report` gives the same page without running again.
//!
//! Every string from the data (class names, paths, messages) is spliced through maud, which
//! escapes it; the SVG is part of the page, so Chinese class names render with the browser's
//! fonts.

use crate::report::{blues, display_width, heat, Report};
use base64::Engine as _;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// At most this many images in each gallery (misclassified, disagreements).
pub const GALLERY_CAP: usize = 200;
/// At most this many rows of failed files.
pub const ERRORS_CAP: usize = 500;
/// The longer side of a thumbnail, in pixels.
pub const THUMB_PX: u32 = 128;

const FONTS: &str = "system-ui, -apple-system, 'Segoe UI', 'Noto Sans CJK SC', 'Noto Sans SC', \
                     'PingFang SC', 'Microsoft YaHei', 'WenQuanYi Micro Hei', sans-serif";

const CSS: &str = r#"
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg2: #f6f8fa; --bad: #cf222e;
        --good: #1a7f37; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; font: 14px/1.45 FONTS; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: var(--bg2); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: var(--muted); word-break: break-all; }
nav { margin-top: 8px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 6px 28px 40px; max-width: 1500px; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
p.note { color: var(--muted); margin: 4px 0 10px; }
.banner { background: #fff8c5; border: 1px solid #d4a72c; padding: 8px 12px; margin-top: 14px; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 16px; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px; }
.tile .v { font-size: 22px; font-weight: 600; }
.tile .k { color: var(--muted); font-size: 12px; }
.tile.bad .v { color: var(--bad); }
table { border-collapse: collapse; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { background: var(--bg2); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { background: none; color: var(--muted); font-weight: normal; white-space: nowrap; }
td.msg { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
.bar { display: inline-block; height: 9px; background: #8fbbe8; vertical-align: middle;
       margin-right: 6px; }
.bar.low { background: #f19a91; }
.scroll { overflow: auto; max-width: 100%; border: 1px solid var(--line); padding: 6px; }
details { margin-top: 12px; }
summary { cursor: pointer; color: var(--accent); }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
figure.card { margin: 0; width: 210px; border: 1px solid var(--line); border-radius: 6px;
              padding: 6px; background: #fff; }
figure.card .img { height: 132px; display: flex; align-items: center; justify-content: center;
                   background: var(--bg2); }
figure.card img { max-width: 128px; max-height: 128px; }
figure.card .noimg { color: var(--muted); font-size: 12px; }
figure.card figcaption { font-size: 12px; margin-top: 4px; }
.path { color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.truth { color: var(--good); font-weight: 600; }
.pred { color: var(--bad); font-weight: 600; }
ol.topk { margin: 3px 0 0; padding-left: 20px; }
ol.topk li.hit { color: var(--good); font-weight: 600; }
.conf { color: var(--muted); font-variant-numeric: tabular-nums; }
pre { background: var(--bg2); padding: 10px; overflow: auto; font-size: 12px;
      font-family: ui-monospace, 'Noto Sans Mono CJK SC', monospace; }
svg text { font-family: FONTS; }
"#;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or("n/a".into(), |x| format!("{:.2}%", 100.0 * x))
}

fn fixed(v: &Value, d: usize) -> String {
    v.as_f64().map_or("n/a".into(), |x| format!("{x:.d$}"))
}

fn rgb(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Dark enough that a count written on it should be white.
fn dark(c: [u8; 3]) -> bool {
    0.299 * f64::from(c[0]) + 0.587 * f64::from(c[1]) + 0.114 * f64::from(c[2]) < 140.0
}

/// `name` cut to `cols` terminal columns (with an ellipsis).
fn clip(name: &str, cols: usize) -> String {
    if display_width(name) <= cols {
        return name.to_owned();
    }
    let mut out = String::new();
    for c in name.chars() {
        if display_width(&out) + display_width(&c.to_string()) > cols.saturating_sub(1) {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

/// The confusion matrix restricted to `order` (row and column order alike; rows = truth) as
/// an SVG: class names on both axes, a count per non-zero cell in its `<title>` (and in the
/// cell when it is large enough), the diagonal in blues and confusions in reds, each as the
/// share of the true class's images, with both colour scales. `id` keeps the element ids of
/// two matrices on one page apart.
pub fn matrix_svg(names: &[String], m: &[Vec<usize>], order: &[usize], id: &str) -> Markup {
    let k = order.len();
    let cell: usize = match k {
        0..=8 => 44,
        9..=16 => 32,
        _ => (720 / k).clamp(12, 24),
    };
    let font = (cell as f64 * 0.8).clamp(9.0, 13.0);
    const MAX_COLS: usize = 40; // label columns kept (longer names are clipped, full in <title>)
    let cols = order
        .iter()
        .map(|&i| display_width(&names[i]).min(MAX_COLS))
        .max()
        .unwrap_or(1);
    let label = (cols as f64 * font * 0.62).ceil() as usize + 8;
    let (left, top) = (label + 26, label + 26);
    let side = k * cell;
    let right = 56; // the row totals
    let legend_h = 84;
    let width = (left + side + right).max(460);
    let height = top + side + legend_h;
    let row_total: Vec<usize> = m.iter().map(|r| r.iter().sum()).collect();
    let fs = format!("{font:.1}");
    let grid = if k <= 80 { 1 } else { 5 };
    let legend_y = top + side + 22;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" id=(format!("matrix-{id}")) class="matrix"
            width=(width) height=(height) viewBox=(format!("0 0 {width} {height}"))
            font-family=(FONTS) font-size=(fs) {
            defs {
                linearGradient id=(format!("{id}-blues")) {
                    @for i in 0..=4 {
                        stop offset=(format!("{}%", i * 25)) stop-color=(rgb(blues(i as f64 / 4.0))) {}
                    }
                }
                linearGradient id=(format!("{id}-reds")) {
                    @for i in 0..=4 {
                        stop offset=(format!("{}%", i * 25)) stop-color=(rgb(heat(i as f64 / 4.0))) {}
                    }
                }
            }
            rect x="0" y="0" width=(width) height=(height) fill="#ffffff" {}
            text x=(left + side / 2) y="14" text-anchor="middle" font-size="13" font-weight="600" {
                "predicted class"
            }
            text x="14" y=(top + side / 2) text-anchor="middle" font-size="13" font-weight="600"
                transform=(format!("rotate(-90 14 {})", top + side / 2)) {
                "true class"
            }
            text x=(left + side + 8) y=(top - 6) font-size="11" fill="#59636e" { "images" }
            // Grid.
            rect x=(left) y=(top) width=(side) height=(side) fill="none" stroke="#afb8c1" {}
            @for g in (grid..k).step_by(grid) {
                line x1=(left + g * cell) y1=(top) x2=(left + g * cell) y2=(top + side)
                    stroke="#eaeef2" {}
                line x1=(left) y1=(top + g * cell) x2=(left + side) y2=(top + g * cell)
                    stroke="#eaeef2" {}
            }
            // Labels: rows on the left, columns on top (rotated).
            @for (r, &i) in order.iter().enumerate() {
                @let y = top + r * cell + cell / 2;
                text.row x=(left - 6) y=(y) dy="0.35em" text-anchor="end" {
                    title { (names[i]) }
                    (clip(&names[i], MAX_COLS))
                }
                @let x = left + r * cell + cell / 2;
                text.col x=(x) y=(top - 6) dy="0.35em"
                    transform=(format!("rotate(-90 {x} {})", top - 6)) {
                    title { (names[i]) }
                    (clip(&names[i], MAX_COLS))
                }
                text.total x=(left + side + 8) y=(y) dy="0.35em" fill="#59636e" {
                    (row_total[i])
                }
            }
            // Cells.
            @for (r, &i) in order.iter().enumerate() {
                @for (c, &j) in order.iter().enumerate() {
                    @let v = m[i][j];
                    @if v > 0 {
                        @let share = v as f64 / row_total[i].max(1) as f64;
                        @let colour = if i == j { blues(share) } else { heat(share) };
                        rect.cell x=(left + c * cell) y=(top + r * cell) width=(cell) height=(cell)
                            fill=(rgb(colour)) data-truth=(names[i]) data-pred=(names[j])
                            data-count=(v) {
                            title {
                                "true: " (names[i]) "\npredicted: " (names[j]) "\n" (v) " of "
                                (row_total[i]) " images (" (format!("{:.1}", 100.0 * share)) "%)"
                            }
                        }
                        @if cell >= 24 {
                            text x=(left + c * cell + cell / 2) y=(top + r * cell + cell / 2)
                                dy="0.35em" text-anchor="middle" pointer-events="none"
                                fill=(if dark(colour) { "#ffffff" } else { "#1f2328" }) {
                                (v)
                            }
                        }
                    }
                }
            }
            // Colour scales.
            text x="10" y=(legend_y) font-size="11" fill="#59636e" {
                "colour: share of the true class's images"
            }
            @for (li, (grad, what)) in [("blues", "correct (diagonal)"), ("reds", "confused (off the diagonal)")].iter().enumerate() {
                @let x = 10 + li * 220;
                text x=(x) y=(legend_y + 18) font-size="11" { (what) }
                rect x=(x) y=(legend_y + 24) width="180" height="12"
                    fill=(format!("url(#{id}-{grad})")) stroke="#afb8c1" {}
                text x=(x) y=(legend_y + 50) font-size="11" { "0%" }
                text x=(x + 180) y=(legend_y + 50) font-size="11" text-anchor="end" { "100%" }
            }
        }
    }
}

/// The matrix sections: the classes involved in confusions (most errors first) and, one
/// click away, the full matrix in class-index order.
fn confusion_section(rep: &Report) -> Markup {
    let names = &rep.matrix_names;
    let m = &rep.matrix;
    let k = names.len();
    let errs: Vec<usize> = (0..k)
        .map(|i| (0..k).filter(|&j| j != i).map(|j| m[i][j] + m[j][i]).sum())
        .collect();
    let mut involved: Vec<usize> = (0..k).filter(|&i| errs[i] > 0).collect();
    involved.sort_by(|&a, &b| errs[b].cmp(&errs[a]).then(a.cmp(&b)));
    let all: Vec<usize> = (0..k).collect();
    html! {
        section #confusion {
            h2 { "Confusion matrix" }
            @if k == 0 {
                p.note { "No labelled image ran: nothing to show." }
            } @else if involved.is_empty() {
                p.note { "No confusions: every labelled image was classified correctly. Rows are the true classes, columns the predicted ones." }
                div.scroll { (matrix_svg(names, m, &all, "full")) }
            } @else {
                p.note {
                    "The " (involved.len()) " of " (k) " classes involved in a confusion, most errors first "
                    "(rows = true class, columns = predicted; hover a cell for its count)."
                }
                div.scroll { (matrix_svg(names, m, &involved, "errors")) }
                details {
                    summary { "Full matrix: all " (k) " classes in class-index order" }
                    div.scroll { (matrix_svg(names, m, &all, "full")) }
                }
            }
        }
    }
}

/// The latency histogram (plotters' SVG backend), with p50 / p90 / p99 marked.
fn latency_svg(lat: &Value) -> Option<String> {
    use plotters::prelude::*;
    let h = lat.get("histogram")?;
    let lo = h["lo"].as_f64()?;
    let bin = h["bin"].as_f64()?;
    let counts: Vec<u64> = h["counts"].as_array()?.iter().map(n).collect();
    if counts.is_empty() || bin <= 0.0 {
        return None;
    }
    let hi = lo + bin * counts.len() as f64;
    let ymax = counts.iter().copied().max().unwrap_or(1).max(1);
    let ytop = ymax + ymax / 6 + 1;
    let pad = (hi - lo) * 0.03;
    let decimals = match hi - lo {
        r if r >= 20.0 => 0,
        r if r >= 2.0 => 1,
        _ => 2,
    };
    let mut out = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut out, (760, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((lo - pad)..(hi + pad), 0u64..ytop)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(234, 238, 242))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .x_desc(format!(
                "latency per {} (ms)",
                lat.get("per").and_then(Value::as_str).unwrap_or("call")
            ))
            .y_desc("calls")
            .x_label_formatter(&|v| format!("{v:.decimals$}"))
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + bin * i as f64;
            Rectangle::new([(x0, 0), (x0 + bin, c)], RGBColor(84, 174, 255).filled())
        }))?;
        for (name, colour) in [
            ("p50", RGBColor(26, 127, 55)),
            ("p90", RGBColor(154, 103, 0)),
            ("p99", RGBColor(207, 34, 46)),
        ] {
            let Some(v) = lat.get(name).and_then(Value::as_f64) else {
                continue;
            };
            if v > hi + pad {
                continue;
            }
            chart
                .draw_series(LineSeries::new([(v, 0), (v, ytop)], colour.stroke_width(2)))?
                .label(format!("{name} {v:.decimals$} ms"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(175, 184, 193))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    drawn.ok()?;
    Some(out)
}

fn tile(value: String, key: &str, bad: bool) -> Markup {
    html! {
        div.tile.bad[bad] { div.v { (value) } div.k { (key) } }
    }
}

fn summary_section(rep: &Report) -> Markup {
    let j = &rep.json;
    let a = &j["accuracy"];
    let img = &j["images"];
    let lat = &j["latency_ms"];
    let t = &j["throughput"];
    let st = &j["settings"];
    let version = match &j["version"] {
        Value::String(v) => v.clone(),
        v => v
            .get("sdk_version")
            .and_then(Value::as_str)
            .map_or(v.to_string(), str::to_owned),
    };
    let errors = n(&img["errors"]);
    let mut images = format!(
        "{} in {} ({} run, {} ok, {} errors",
        n(&img["total"]),
        s(&j["val_dir"]),
        n(&img["run"]),
        n(&img["succeeded"]),
        errors
    );
    if n(&img["not_run"]) > 0 {
        images.push_str(&format!(", {} not run", n(&img["not_run"])));
    }
    images.push(')');
    let rows: Vec<(&str, String)> = vec![
        ("library", s(&j["library"]).to_owned()),
        ("api", format!("{}_* (sdk {version})", s(&j["api"]))),
        ("config", s(&j["config"]).to_owned()),
        ("decode", crate::report::decode_line(&j["decode"])),
        ("images", images),
        (
            "labels",
            format!(
                "{} labelled, {} unknown label, {} unlabelled",
                n(&img["labelled"]),
                n(&img["unknown_label"]),
                n(&img["unlabelled"])
            ),
        ),
        ("device", s(&j["device"]).to_owned()),
        (
            "top-1 / top-k",
            format!(
                "{} ({}/{}) · top-{} {} ({}/{}) · errors counted as wrong {}",
                pct(&a["top1"]),
                n(&a["top1_correct"]),
                n(&a["evaluated"]),
                n(&a["k"]),
                pct(&a["topk"]),
                n(&a["topk_correct"]),
                n(&a["evaluated"]),
                pct(&a["top1_counting_errors"])
            ),
        ),
        (
            "macro P / R / F1",
            format!(
                "{} / {} / {} over {} classes present",
                fixed(&j["macro"]["precision"], 4),
                fixed(&j["macro"]["recall"], 4),
                fixed(&j["macro"]["f1"], 4),
                n(&j["macro"]["classes"])
            ),
        ),
        (
            "latency (ms)",
            if lat.is_object() {
                format!(
                    "per {}: p50 {} · p90 {} · p99 {} · max {} · mean {} ({} calls)",
                    s(&lat["per"]),
                    fixed(&lat["p50"], 2),
                    fixed(&lat["p90"], 2),
                    fixed(&lat["p99"], 2),
                    fixed(&lat["max"], 2),
                    fixed(&lat["mean"], 2),
                    n(&lat["calls"])
                )
            } else {
                "n/a".into()
            },
        ),
        (
            "throughput",
            format!(
                "{} images/s ({} image calls in {} s; {} threads, batch {}, repeat {}, warmup {})",
                fixed(&t["images_per_s"], 1),
                n(&t["image_calls"]),
                fixed(&t["wall_s"], 3),
                n(&st["threads"]),
                n(&st["batch"]),
                n(&st["repeat"]),
                n(&st["warmup"])
            ),
        ),
        (
            "peak resident memory",
            format!("{} MiB", fixed(&j["peak_rss_mib"], 1)),
        ),
        ("call args", st["args"].to_string()),
    ];
    html! {
        section #summary {
            @if j["interrupted"] == true {
                div.banner { "Interrupted (Ctrl-C): this report covers only the images run before it." }
            }
            div.tiles {
                (tile(pct(&a["top1"]), "top-1 accuracy", false))
                (tile(pct(&a["topk"]), &format!("top-{} accuracy", n(&a["k"])), false))
                (tile(fixed(&j["macro"]["f1"], 4), "macro F1", false))
                (tile(n(&img["total"]).to_string(), "images", false))
                (tile(errors.to_string(), "errors (files that failed)", errors > 0))
                (tile(fixed(&t["images_per_s"], 1), "images / s", false))
                (tile(fixed(&lat["p50"], 2), "p50 latency (ms)", false))
                (tile(fixed(&j["peak_rss_mib"], 0), "peak memory (MiB)", false))
            }
            h2 { "Summary" }
            table.kv {
                @for (k, v) in &rows {
                    tr { th { (k) } td { (v) } }
                }
            }
        }
    }
}

fn classes_section(rep: &Report) -> Markup {
    let pc = rep.json["per_class"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let conf = rep.json["confusions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Each class's most frequent wrong answer (the confusions are sorted by count).
    let mut worst: HashMap<&str, (&str, u64)> = HashMap::new();
    for c in &conf {
        worst
            .entry(s(&c["true"]))
            .or_insert((s(&c["predicted"]), n(&c["count"])));
    }
    html! {
        section #classes {
            h2 { "Per class, worst first" }
            p.note {
                (pc.len()) " classes with labelled images. Accuracy is the share of the class's "
                "images classified correctly (= recall); precision is the share of the images "
                "predicted as the class that really are."
            }
            table.classes {
                thead { tr {
                    th { "class" } th.n { "images" } th.n { "correct" } th { "accuracy" }
                    th.n { "precision" } th.n { "recall" } th.n { "F1" } th.n { "predicted as it" }
                    th { "most often taken for" }
                } }
                tbody {
                    @for c in &pc {
                        @let acc = c["accuracy"].as_f64().unwrap_or(0.0);
                        tr data-class=(s(&c["class"])) {
                            td { (s(&c["class"])) }
                            td.n { (n(&c["images"])) }
                            td.n { (n(&c["correct"])) }
                            td {
                                span.bar.low[acc < 0.5] style=(format!("width:{:.0}px", 80.0 * acc)) {}
                                (pct(&c["accuracy"]))
                            }
                            td.n { (fixed(&c["precision"], 3)) }
                            td.n { (fixed(&c["recall"], 3)) }
                            td.n { (fixed(&c["f1"], 3)) }
                            td.n { (n(&c["predicted"])) }
                            td {
                                @if let Some((p, k)) = worst.get(s(&c["class"])) {
                                    (p) " " span.conf { "×" (k) }
                                }
                            }
                        }
                    }
                }
            }
            @if !conf.is_empty() {
                h2 #confusions { "Most frequent confusions" }
                table {
                    thead { tr { th { "true class" } th {} th { "predicted" } th.n { "images" } } }
                    tbody {
                        @for c in conf.iter().take(50) {
                            tr { td { (s(&c["true"])) } td { "→" } td { (s(&c["predicted"])) } td.n { (n(&c["count"])) } }
                        }
                    }
                }
                @if conf.len() > 50 {
                    p.note { "50 of " (conf.len()) " pairs; the JSON report has them all." }
                }
            }
        }
    }
}

fn thumb_box(path: &str, thumbs: &HashMap<String, String>) -> Markup {
    html! {
        div.img {
            @match thumbs.get(path) {
                Some(uri) => img src=(uri) alt=(path);,
                None => span.noimg { "image not readable" },
            }
        }
    }
}

fn misclassified_section(rep: &Report, thumbs: &HashMap<String, String>) -> Markup {
    let all = rep.json["misclassified"].as_array().cloned();
    html! {
        section #misclassified {
            h2 { "Misclassified images" }
            @match &all {
                None => p.note { "This report has no per-image list (written by an older harness)." },
                Some(all) if all.is_empty() => p.note { "None: every labelled image that ran was classified correctly." },
                Some(all) => {
                    p.note {
                        "Most confident mistakes first (often a systematic confusion or a mislabelled file). "
                        @if all.len() > GALLERY_CAP {
                            "The first " (GALLERY_CAP) " of " (all.len()) "; the JSON report lists them all."
                        } @else {
                            (all.len()) " images."
                        }
                    }
                    div.gallery {
                        @for m in all.iter().take(GALLERY_CAP) {
                            @let path = s(&m["path"]);
                            @let label = s(&m["label"]);
                            figure.card.mis data-path=(path) {
                                (thumb_box(path, thumbs))
                                figcaption {
                                    div.path title=(path) { (path) }
                                    div { "true " span.truth { (label) } }
                                    div { "predicted " span.pred { (s(&m["predicted"])) } " " span.conf { (fixed(&m["confidence"], 3)) } }
                                    ol.topk {
                                        @for t in m["topk"].as_array().into_iter().flatten() {
                                            li.hit[s(&t["class"]) == label] {
                                                (s(&t["class"])) " " span.conf { (fixed(&t["confidence"], 3)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn errors_section(rep: &Report) -> Markup {
    let errs = rep.json["errors"].as_array().cloned().unwrap_or_default();
    let unk = rep.json["unknown_label_folders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    html! {
        section #errors {
            h2 { "Files that failed" }
            @if errs.is_empty() {
                p.note { "None." }
            } @else {
                p.note {
                    (errs.len()) " files returned an error instead of a result"
                    @if errs.len() > ERRORS_CAP { " (the first " (ERRORS_CAP) " below; the JSON report lists them all)" }
                    "."
                }
                table.errors {
                    thead { tr { th { "file" } th { "label" } th.n { "code" } th { "message" } } }
                    tbody {
                        @for e in errs.iter().take(ERRORS_CAP) {
                            tr { td.msg { (s(&e["path"])) } td { (s(&e["label"])) } td.n { (e["code"]) } td.msg { (s(&e["message"])) } }
                        }
                    }
                }
            }
            @if !unk.is_empty() {
                h2 #unknown { "Labels that match no class name (not scored)" }
                table {
                    thead { tr { th { "label" } th.n { "images" } } }
                    tbody { @for u in &unk { tr { td { (s(&u["label"])) } td.n { (n(&u["images"])) } } } }
                }
            }
        }
    }
}

/// The images the judge's decode (cv::imread) reads differently from PIL, with the accuracy
/// both ways; nothing when there are none.
fn decode_section(rep: &Report) -> Markup {
    let d = &rep.json["decode"];
    let diff = &d["differs_from_pil"];
    if n(&diff["images"]) == 0 {
        return html! {};
    }
    let list = d["differences"].as_array().cloned().unwrap_or_default();
    let (judge, pil) = (
        &d["accuracy_with_judge_decode"],
        &d["accuracy_with_pil_decode"],
    );
    let result = |v: &Value| match v.get("class") {
        Some(c) => html! { (s(c)) " " span.conf { (fixed(&v["confidence"], 3)) } },
        None => html! { span.pred { "error" } " " span.conf { (s(&v["error"])) } },
    };
    html! {
        section #decode {
            h2 { "The judge's decode" }
            p.note {
                "The platform's tools read each image with cv::imread, which here differs from "
                "PIL's Image.open(path).convert('RGB') on " (n(&diff["images"])) " images: "
                (n(&diff["rotated"])) " rotated by their EXIF orientation, " (n(&diff["cmyk"]))
                " CMYK, " (n(&diff["other"])) " other. The run used the judge's decode; each of "
                "these images was also run with PIL's."
            }
            table.kv {
                tr { th { "top-1, judge's decode" } td { (pct(&judge["top1"])) " (" (n(&judge["top1_correct"])) "/" (n(&judge["evaluated"])) ")" } }
                tr { th { "top-1, PIL's decode" } td { (pct(&pil["top1"])) " (" (n(&pil["top1_correct"])) "/" (n(&pil["evaluated"])) ")" } }
                tr { th { "top-" (n(&judge["k"])) ", judge's decode" } td { (pct(&judge["topk"])) " (" (n(&judge["topk_correct"])) "/" (n(&judge["evaluated"])) ")" } }
                tr { th { "top-" (n(&pil["k"])) ", PIL's decode" } td { (pct(&pil["topk"])) " (" (n(&pil["topk_correct"])) "/" (n(&pil["evaluated"])) ")" } }
            }
            table.decode {
                thead { tr { th { "file" } th { "label" } th { "how" } th { "judge's decode" } th { "PIL's decode" } th { "detail" } } }
                tbody {
                    @for x in list.iter().take(ERRORS_CAP) {
                        tr data-how=(s(&x["how"])) {
                            td.msg { (s(&x["path"])) } td { (s(&x["label"])) } td { (s(&x["how"])) }
                            td { (result(&x["judge"])) } td { (result(&x["pil"])) } td { (s(&x["detail"])) }
                        }
                    }
                }
            }
        }
    }
}

fn latency_section(rep: &Report) -> Markup {
    let lat = &rep.json["latency_ms"];
    let above = n(&lat["histogram"]["above"]);
    html! {
        section #latency {
            h2 { "Latency" }
            @match latency_svg(lat) {
                Some(svg) => {
                    p.note {
                        (n(&lat["calls"])) " timed calls of " (n(&lat["frames_per_call"]).max(1)) " image(s) each."
                        @if above > 0 { " " (above) " slower calls (up to " (fixed(&lat["max"], 2)) " ms) are past the right edge." }
                    }
                    div.scroll.latency { (PreEscaped(svg)) }
                }
                None => p.note { "No timed calls." },
            }
        }
    }
}

fn compare_section(rep: &Report, thumbs: &HashMap<String, String>) -> Markup {
    let Some(c) = rep.json.get("compare") else {
        return html! {};
    };
    let dis = c["disagreements"].as_array().cloned().unwrap_or_default();
    html! {
        section #compare {
            h2 { "Library vs. Python pipeline" }
            table.kv {
                tr { th { "reference" } td { (s(&c["reference"])) } }
                tr { th { "top-1 agreement" } td { (pct(&c["top1_agreement"])) " (" (n(&c["agree"])) "/" (n(&c["matched"])) " images on both sides)" } }
                tr { th { "max |Δ confidence|" } td { (c["max_top1_confidence_diff"].as_f64().map_or("n/a".into(), |d| format!("{d:.3e}"))) " " span.conf { (s(&c["max_top1_confidence_diff_path"])) } } }
                tr { th { "unmatched" } td { (c["only_ours"].as_array().map_or(0, Vec::len)) " only here, " (n(&c["only_theirs"])) " only in the reference" } }
            }
            @if dis.is_empty() {
                p.note { "The two agree on every image." }
            } @else {
                p.note {
                    (dis.len()) " images where the top-1 classes differ"
                    @if dis.len() > GALLERY_CAP { " (the first " (GALLERY_CAP) " below)" }
                    "."
                }
                div.gallery {
                    @for d in dis.iter().take(GALLERY_CAP) {
                        @let path = s(&d["path"]);
                        figure.card.dis data-path=(path) {
                            (thumb_box(path, thumbs))
                            figcaption {
                                div.path title=(path) { (path) }
                                div { "library " span.pred { (s(&d["ours"])) } }
                                div { "Python " span.truth { (s(&d["theirs"])) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The relative paths whose thumbnails the page shows.
pub fn wanted_thumbnails(rep: &Report) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let lists = [
        rep.json["misclassified"].as_array(),
        rep.json["compare"]["disagreements"].as_array(),
    ];
    for list in lists.into_iter().flatten() {
        for m in list.iter().take(GALLERY_CAP) {
            let p = s(&m["path"]).to_owned();
            if !p.is_empty() && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// A JPEG thumbnail (longer side `THUMB_PX`) as a data URI, upright as a viewer shows it.
pub fn thumbnail(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let opts = ji::decode::DecodeOptions {
        exif_transpose: true,
        ..Default::default()
    };
    let img = ji::decode::decode_image(&bytes, &opts).map_err(|e| e.to_string())?;
    let (w, h) = (img.width, img.height);
    let full =
        image::RgbImage::from_raw(w, h, img.data).ok_or("decoded image has the wrong size")?;
    let scale = (THUMB_PX as f64 / w.max(h) as f64).min(1.0);
    let tw = ((w as f64 * scale).round() as u32).max(1);
    let th = ((h as f64 * scale).round() as u32).max(1);
    let small = image::imageops::thumbnail(&full, tw, th);
    let jpeg = turbojpeg::compress(
        turbojpeg::Image {
            pixels: small.as_raw().as_slice(),
            width: tw as usize,
            pitch: tw as usize * 3,
            height: th as usize,
            format: turbojpeg::PixelFormat::RGB,
        },
        80,
        turbojpeg::Subsamp::Sub2x2,
    )
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&*jpeg)
    ))
}

/// Thumbnails of `rels` (paths relative to `dir`), made on a few threads; the map holds
/// those that could be read.
pub fn thumbnails(dir: &Path, rels: &[String]) -> HashMap<String, String> {
    let out = Mutex::new(HashMap::new());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(rels.len().max(1));
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(rel) = rels.get(i) else { break };
                if let Ok(uri) = thumbnail(&dir.join(rel)) {
                    out.lock().unwrap().insert(rel.clone(), uri);
                }
            });
        }
    });
    out.into_inner().unwrap()
}

/// The whole page.
pub fn render(rep: &Report, thumbs: &HashMap<String, String>) -> String {
    let j = &rep.json;
    let mut terminal = String::new();
    rep.render(&mut terminal);
    let title = format!("harness report: {}", s(&j["val_dir"]));
    let css = CSS.replace("FONTS", FONTS);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(css)) }
            }
            body {
                header {
                    h1 { "Evaluation report" }
                    div.sub { (s(&j["val_dir"])) " · " (s(&j["api"])) "_* API · " (s(&j["config"])) }
                    nav {
                        a href="#summary" { "summary" }
                        a href="#confusion" { "confusion matrix" }
                        a href="#classes" { "per class" }
                        a href="#misclassified" { "misclassified" }
                        a href="#errors" { "errors" }
                        a href="#latency" { "latency" }
                        @if n(&j["decode"]["differs_from_pil"]["images"]) > 0 { a href="#decode" { "judge's decode" } }
                        @if j.get("compare").is_some() { a href="#compare" { "vs. Python" } }
                        a href="#terminal" { "terminal output" }
                    }
                }
                main {
                    (summary_section(rep))
                    (confusion_section(rep))
                    (classes_section(rep))
                    (misclassified_section(rep, thumbs))
                    (errors_section(rep))
                    (decode_section(rep))
                    (latency_section(rep))
                    (compare_section(rep, thumbs))
                    section #terminal {
                        h2 { "Terminal output" }
                        details { summary { "The report as the harness printed it" } pre { (terminal.trim_matches('\n')) } }
                    }
                }
            }
        }
    };
    page.into_string()
}

/// Writes the page; returns (thumbnails shown, thumbnails wanted).
pub fn write(path: &Path, rep: &Report, images_dir: &Path) -> Result<(usize, usize), String> {
    let wanted = wanted_thumbnails(rep);
    let thumbs = thumbnails(images_dir, &wanted);
    std::fs::write(path, render(rep, &thumbs)).map_err(|e| e.to_string())?;
    Ok((thumbs.len(), wanted.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::{Html, Selector};
    use serde_json::json;

    fn report(names: &[String], m: &[Vec<usize>]) -> Report {
        Report::from_json(json!({
            "images": {"total": 0}, "per_class": [], "val_dir": "v", "api": "ji",
            "confusion_matrix": {"classes": names, "counts": m},
        }))
        .unwrap()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn clip_counts_wide_characters() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("有害垃圾_电池", 6), "有害…");
    }

    #[test]
    fn many_classes_stay_readable_and_errors_come_first() {
        // 146 classes (the garbage track): class i is right 10 times; three confusions.
        let k = 146;
        let names: Vec<String> = (0..k).map(|i| format!("可回收物_类别{i}")).collect();
        let mut m = vec![vec![0usize; k]; k];
        for (i, row) in m.iter_mut().enumerate() {
            row[i] = 10;
        }
        m[5][7] = 4; // 5 -> 7 four times
        m[9][7] = 1;
        m[100][3] = 2;
        let rep = report(&names, &m);
        let doc = Html::parse_fragment(&render(&rep, &HashMap::new()));
        let rows: Vec<String> = doc
            .select(&sel("svg#matrix-errors text.row title"))
            .map(|t| t.text().collect())
            .collect();
        // Errors per class: 7: 5, 5: 4, 3 and 100: 2, 9: 1.
        let want: Vec<String> = [7, 5, 3, 100, 9]
            .iter()
            .map(|&i| names[i].clone())
            .collect();
        assert_eq!(rows, want);
        let full = doc.select(&sel("svg#matrix-full")).next().unwrap();
        assert_eq!(full.select(&sel("rect.cell")).count(), k + 3);
        assert_eq!(full.select(&sel("text.col")).count(), k);
        // Cells of 12 px: the whole matrix fits in about 2000 px.
        let w: usize = full.value().attr("width").unwrap().parse().unwrap();
        assert!((k * 12..k * 12 + 400).contains(&w), "{w}");
        let cell = full.select(&sel("rect.cell")).next().unwrap();
        assert_eq!(cell.value().attr("width"), Some("12"));
    }

    #[test]
    fn sparse_reports_render() {
        // No labelled image, no latency, no per-image list (an older report): notes, no panic.
        let page = render(&report(&[], &[]), &HashMap::new());
        assert!(page.contains("No labelled image ran"));
        assert!(page.contains("No timed calls"));
        assert!(page.contains("no per-image list"));
        // All correct: the full matrix is shown at once, no errors view.
        let names = vec!["a".to_string(), "b".to_string()];
        let page = render(&report(&names, &[vec![2, 0], vec![0, 1]]), &HashMap::new());
        assert!(page.contains("No confusions"));
        assert!(page.contains("id=\"matrix-full\"") && !page.contains("matrix-errors"));
    }
}
