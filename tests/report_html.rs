//! The harness's HTML report (`--html`, `--from-report`) and SVG confusion matrix
//! (`--confusion`): parsed as a browser would (html5ever through `scraper`) and checked against
//! the JSON report of the same run. `renders_in_chromium` (ignored here; `make report-check`
//! runs it) renders real reports in headless Chromium.

mod common;

use base64::Engine as _;
use common::*;
use scraper::{Html, Selector};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RED: &str = "有害垃圾_杀虫剂";
const GREEN: &str = "可回收物_塑料瓶";
const BLUE: &str = "厨余垃圾_果皮";
/// A class name that would be markup if it were not escaped.
const EVIL: &str = "<img src=x onerror=alert(1)> & \"红\" 'q'";
/// The gallery's cap (src/bin/harness/html.rs).
const CAP: usize = 200;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs the harness, which must exit with `code` (3: the run completed with failed images).
fn run_exiting(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn text(e: scraper::ElementRef) -> String {
    e.text().collect::<String>()
}

/// A copy of the colour fixture's config whose class 0 (red) is called `red_name`.
fn config_naming_red(dir: &Path, red_name: &str) -> PathBuf {
    let src = fixture("colour.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
    let model = src
        .parent()
        .unwrap()
        .join(cfg["model_path"].as_str().unwrap());
    let classes = dir.join("class.txt");
    std::fs::write(&classes, format!("{red_name}\n{GREEN}\n{BLUE}\n")).unwrap();
    cfg["model_path"] = model.to_str().unwrap().into();
    cfg["class_names_path"] = classes.to_str().unwrap().into();
    let path = dir.join("config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// Decodes a thumbnail's data URI: a JPEG no larger than 128 px.
fn check_thumbnail(src: &str) {
    let b64 = src
        .strip_prefix("data:image/jpeg;base64,")
        .unwrap_or_else(|| panic!("not a JPEG data URI: {}", &src[..src.len().min(60)]));
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let img = ji::decode::decode_image(&jpeg, &Default::default()).unwrap();
    assert!(img.width.max(img.height) <= 128 && img.width.min(img.height) >= 1);
}

#[test]
fn html_report_matches_the_json_and_escapes_names() {
    let dir = temp_dir("report", "html");
    let val = dir.join("val");
    copy_tree(&fixture("val"), &val);
    // Red is called EVIL; a red image filed as green; a file that is not an image.
    std::fs::rename(val.join(RED), val.join(EVIL)).unwrap();
    std::fs::copy(
        val.join(EVIL).join("red_0.jpg"),
        val.join(GREEN).join("red_in_green.jpg"),
    )
    .unwrap();
    std::fs::write(val.join(BLUE).join("garbage.jpg"), b"not a JPEG").unwrap();
    let cfg = config_naming_red(&dir, EVIL);
    let (json, page, svg) = (dir.join("r.json"), dir.join("r.html"), dir.join("m.svg"));
    run_exiting(
        harness()
            .arg("--config")
            .arg(&cfg)
            .arg("--report")
            .arg(&json)
            .arg("--html")
            .arg(&page)
            .arg("--confusion")
            .arg(&svg)
            .arg(&val),
        3,
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let raw = std::fs::read_to_string(&page).unwrap();
    let doc = Html::parse_document(&raw);
    assert_eq!(v["images"]["errors"], 1);
    assert_eq!(v["accuracy"]["top1_correct"], 9);

    // Escaped: the name is text everywhere, never markup; nothing is fetched, nothing runs.
    assert!(!raw.contains("<img src=x"));
    assert!(raw.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;红&quot;"));
    assert_eq!(doc.select(&sel("script, link, iframe, object")).count(), 0);
    for img in doc.select(&sel("img")) {
        check_thumbnail(img.value().attr("src").unwrap());
    }
    for e in doc.select(&sel("[href], [src]")) {
        let v = e.value();
        let ok = v.attr("href").is_none_or(|h| h.starts_with('#'))
            && v.attr("src").is_none_or(|s| s.starts_with("data:"));
        assert!(ok, "a link out of the page: {v:?}");
    }
    assert!(!raw.contains("url(http") && !raw.contains("@import"));
    for name in [EVIL, GREEN, BLUE] {
        assert!(
            doc.select(&sel("svg text.row title"))
                .any(|t| text(t) == name),
            "{name} is not a row label"
        );
    }

    // The summary tiles and the per-class table say what the JSON says, in its order.
    let tiles: Vec<String> = doc.select(&sel(".tile .v")).map(text).collect();
    assert_eq!(tiles[0], "90.00%"); // top-1: 9 of 10
    assert!(tiles.contains(&"1".to_string())); // one error
    let rows: Vec<Vec<String>> = doc
        .select(&sel("table.classes tbody tr"))
        .map(|tr| tr.select(&sel("td")).map(text).collect())
        .collect();
    let pc = v["per_class"].as_array().unwrap();
    assert_eq!(rows.len(), pc.len());
    for (row, c) in rows.iter().zip(pc) {
        assert_eq!(row[0], c["class"].as_str().unwrap());
        assert_eq!(row[1], c["images"].to_string());
        assert_eq!(row[2], c["correct"].to_string());
        assert_eq!(row[7], c["predicted"].to_string());
    }
    assert_eq!(rows[0][0], GREEN); // worst: 3 of 4
    assert_eq!(rows[0][8], format!("{EVIL} ×1")); // its one wrong answer
    assert!(rows[1][8].is_empty());

    // Matrix cells: exactly the JSON's non-zero counts, with names and count on hover.
    let names: Vec<&str> = v["confusion_matrix"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let mut want = BTreeMap::new();
    for (i, row) in v["confusion_matrix"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (j, c) in row.as_array().unwrap().iter().enumerate() {
            if c.as_u64().unwrap() > 0 {
                want.insert(
                    (names[i].to_owned(), names[j].to_owned()),
                    c.as_u64().unwrap(),
                );
            }
        }
    }
    let cells = |html: &Html, svg: &str| -> BTreeMap<(String, String), u64> {
        html.select(&sel(&format!("svg{svg} rect.cell")))
            .map(|r| {
                let a = |k| r.value().attr(k).unwrap().to_owned();
                let title = text(r.select(&sel("title")).next().unwrap());
                let n: u64 = a("data-count").parse().unwrap();
                assert!(title.contains(&a("data-truth")) && title.contains(&a("data-pred")));
                assert!(title.contains(&format!("\n{n} of ")), "{title}");
                ((a("data-truth"), a("data-pred")), n)
            })
            .collect()
    };
    assert_eq!(cells(&doc, "#matrix-full"), want);
    assert_eq!(want[&(GREEN.to_owned(), EVIL.to_owned())], 1);
    // The errors view: only the two classes of the one confusion, most errors first.
    let involved: Vec<String> = doc
        .select(&sel("svg#matrix-errors text.row title"))
        .map(text)
        .collect();
    assert_eq!(involved, [EVIL, GREEN]); // one error each: class-index order
    assert_eq!(doc.select(&sel("details svg#matrix-full")).count(), 1);

    // The misclassified image, with its thumbnail and top-k; the failed file with its message.
    let mis = v["misclassified"].as_array().unwrap();
    assert_eq!(mis.len(), 1);
    assert_eq!(mis[0]["path"], format!("{GREEN}/red_in_green.jpg"));
    assert_eq!(mis[0]["predicted"], EVIL);
    let cards: Vec<_> = doc.select(&sel("figure.mis")).collect();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].value().attr("data-path"), mis[0]["path"].as_str());
    assert_eq!(cards[0].select(&sel("img")).count(), 1);
    assert_eq!(text(cards[0].select(&sel(".pred")).next().unwrap()), EVIL);
    let topk: Vec<String> = cards[0].select(&sel("ol.topk li")).map(text).collect();
    assert_eq!(topk.len(), 3);
    assert!(topk[0].starts_with(EVIL));
    let hit = text(cards[0].select(&sel("ol.topk li.hit")).next().unwrap());
    assert!(hit.starts_with(GREEN), "{hit}");
    let err_rows: Vec<Vec<String>> = doc
        .select(&sel("table.errors tbody tr"))
        .map(|tr| tr.select(&sel("td")).map(text).collect())
        .collect();
    assert_eq!(err_rows.len(), 1);
    assert_eq!(err_rows[0][0], format!("{BLUE}/garbage.jpg"));
    assert_eq!(err_rows[0][3], v["errors"][0]["message"].as_str().unwrap());
    // The latency histogram holds one bar per bin, over every timed call.
    let hist = &v["latency_ms"]["histogram"];
    let bins: u64 = hist["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .sum();
    // Every call: the file that is not an image makes none (cv::imread fails before it, as
    // the judge's tools would).
    assert_eq!(bins + hist["above"].as_u64().unwrap(), 10);
    assert!(doc.select(&sel("#latency svg")).count() == 1);

    // The standalone SVG: the same full matrix.
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<?xml"));
    assert!(!svg_text.contains("<img src=x"));
    let frag = Html::parse_fragment(&svg_text);
    assert_eq!(cells(&frag, "#matrix-m"), want);

    // --from-report: the same page without running (and VAL_DIR may point to the images).
    let again = dir.join("again.html");
    let out = run_ok(
        harness()
            .arg("--from-report")
            .arg(&json)
            .arg("--html")
            .arg(&again),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("90.00%"));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), raw);
    let moved = dir.join("moved");
    std::fs::rename(&val, &moved).unwrap();
    run_ok(
        harness()
            .arg("--from-report")
            .arg(&json)
            .arg("--html")
            .arg(&again)
            .arg(&moved),
    );
    assert_eq!(std::fs::read_to_string(&again).unwrap(), raw);
    // Without the images the page is still written, with a warning and no thumbnail.
    let out = run_ok(
        harness()
            .arg("--from-report")
            .arg(&json)
            .arg("--html")
            .arg(&again),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 1 thumbnails could not be read"));
    let doc = Html::parse_document(&std::fs::read_to_string(&again).unwrap());
    assert_eq!(doc.select(&sel("figure.mis img")).count(), 0);
    assert_eq!(doc.select(&sel("figure.mis .noimg")).count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_output_options_fail_before_running() {
    let dir = temp_dir("report", "opts");
    let png = dir.join("m.png");
    let out = harness()
        .arg("--config")
        .arg(fixture("colour.json"))
        .arg("--confusion")
        .arg(&png)
        .arg(fixture("val"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".svg"));
    assert!(!png.exists());
    // --from-report does not run: run options are refused, and a non-report is refused.
    let out = harness()
        .args([
            "--from-report",
            "x.json",
            "--html",
            "y.html",
            "--threads",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let not_report = dir.join("n.json");
    std::fs::write(&not_report, "{\"images\": []}").unwrap();
    let out = harness()
        .arg("--from-report")
        .arg(&not_report)
        .arg("--html")
        .arg(dir.join("y.html"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a harness report"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gallery_is_capped_with_a_thumbnail_for_every_shown_image() {
    let dir = temp_dir("report", "cap");
    let val = dir.join("val");
    copy_tree(&fixture("val"), &val);
    let n = CAP + 5;
    for i in 0..n {
        std::fs::copy(
            val.join(RED).join("red_0.jpg"),
            val.join(GREEN).join(format!("red_{i:03}.jpg")),
        )
        .unwrap();
    }
    let (json, page) = (dir.join("r.json"), dir.join("r.html"));
    run_ok(
        harness()
            .arg("--config")
            .arg(fixture("colour.json"))
            .arg("--report")
            .arg(&json)
            .arg("--html")
            .arg(&page)
            .arg(&val),
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mis = v["misclassified"].as_array().unwrap();
    assert_eq!(mis.len(), n);
    let conf: Vec<f64> = mis
        .iter()
        .map(|m| m["confidence"].as_f64().unwrap())
        .collect();
    assert!(
        conf.windows(2).all(|w| w[0] >= w[1]),
        "most confident first"
    );
    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    let cards: Vec<_> = doc.select(&sel("figure.mis")).collect();
    assert_eq!(cards.len(), CAP);
    for (card, m) in cards.iter().zip(mis) {
        assert_eq!(card.value().attr("data-path"), m["path"].as_str());
        let img = card.select(&sel("img")).next().expect("a thumbnail");
        check_thumbnail(img.value().attr("src").unwrap());
    }
    let note = text(doc.select(&sel("#misclassified p.note")).next().unwrap());
    assert!(note.contains(&format!("first {CAP} of {n}")), "{note}");
    // The matrix cell holds them all.
    let cell = doc
        .select(&sel("svg#matrix-full rect.cell"))
        .find(|r| {
            r.value().attr("data-truth") == Some(GREEN) && r.value().attr("data-pred") == Some(RED)
        })
        .unwrap();
    assert_eq!(cell.value().attr("data-count"), Some(&*n.to_string()));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- the browser check (`make report-check`) -------------------------------------------------

fn chromium() -> PathBuf {
    let name = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(&name))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    found.unwrap_or_else(|| panic!("{name} not found: `make report-check` installs it"))
}

/// Renders `page` in headless Chromium at `w` x `h` CSS px and returns the screenshot.
fn screenshot(page: &Path, png: &Path, w: u32, h: u32) -> image::RgbImage {
    let _ = std::fs::remove_file(png);
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success() && png.is_file(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (w, h));
    img
}

/// (share of non-white pixels, distinct colours).
fn ink(img: &image::RgbImage) -> (f64, usize) {
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    for p in img.pixels() {
        colours.insert(p.0);
        if p.0.iter().any(|&c| c < 240) {
            inked += 1;
        }
    }
    (
        inked as f64 / (img.width() * img.height()) as f64,
        colours.len(),
    )
}

/// The demo's classes (and the wrong answers it gives) under garbage-track-like Chinese names.
const CJK: &[(&str, &str)] = &[
    ("tabby", "动物_虎斑猫"),
    ("espresso", "厨余垃圾_咖啡"),
    ("missile", "其他垃圾_导弹模型"),
    ("moped", "可回收物_电动车"),
    ("tripod", "可回收物_三脚架"),
    ("sorrel", "动物_栗色马"),
    ("Egyptian cat", "动物_埃及猫"),
    ("tiger cat", "动物_虎猫"),
    ("Mexican hairless", "动物_墨西哥无毛犬"),
];

/// The demo with Chinese class names: its photos under folders named as in CJK (plus one
/// battery that is a cat photo, and a broken file), and a config whose class file renames them.
fn cjk_demo(root_dir: &Path, out: &Path) -> (PathBuf, PathBuf) {
    let demo = root_dir.join("demo");
    let _ = std::fs::remove_dir_all(out);
    let val = out.join("val");
    for (en, zh) in CJK {
        let src = demo.join("val").join(en);
        if src.is_dir() {
            copy_tree(&src, &val.join(zh));
        }
    }
    let battery = val.join("有害垃圾_电池");
    std::fs::create_dir_all(&battery).unwrap();
    std::fs::copy(
        demo.join("val/tabby/chelsea.jpg"),
        battery.join("电池_01.jpg"),
    )
    .unwrap();
    std::fs::write(
        val.join("厨余垃圾_咖啡").join("损坏.jpg"),
        b"\xff\xd8\xff broken",
    )
    .unwrap();
    let names = std::fs::read_to_string(demo.join("model/class.txt")).unwrap();
    let mut renamed: Vec<String> = names
        .lines()
        .map(|l| {
            CJK.iter()
                .find(|(en, _)| *en == l)
                .map_or(l.to_owned(), |(_, zh)| zh.to_string())
        })
        .collect();
    // Class 1 (goldfish) becomes the battery class nothing predicts.
    renamed[1] = "有害垃圾_电池".into();
    std::fs::write(out.join("class.txt"), renamed.join("\n") + "\n").unwrap();
    let mut cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(demo.join("config/algo_config.json")).unwrap(),
    )
    .unwrap();
    cfg["model_path"] = demo.join("model/model.pt").to_str().unwrap().into();
    cfg["class_names_path"] = out.join("class.txt").to_str().unwrap().into();
    let config = out.join("algo_config.json");
    std::fs::write(&config, cfg.to_string()).unwrap();
    (val, config)
}

#[test]
#[ignore = "needs chromium and fonts-noto-cjk: `make report-check`"]
fn renders_in_chromium() {
    let root = root();
    assert!(
        root.join("demo/val").is_dir(),
        "the demo is missing: run `make demo`"
    );
    let out = root.join("target/report-check");
    std::fs::create_dir_all(&out).unwrap();

    // A font with Chinese glyphs: two different characters must draw differently (missing
    // glyphs all draw the same box).
    let glyph = |c: &str| {
        let page = out.join("glyph.html");
        std::fs::write(
            &page,
            format!(
                "<!DOCTYPE html><meta charset=utf-8><body style='margin:0;background:#fff'>\
                 <div style='font:150px sans-serif'>{c}</div>"
            ),
        )
        .unwrap();
        screenshot(&page, &out.join("glyph.png"), 200, 200)
    };
    let (a, b) = (glyph("电"), glyph("池"));
    let differ = a
        .pixels()
        .zip(b.pixels())
        .filter(|(p, q)| p.0.iter().zip(q.0).any(|(x, y)| x.abs_diff(y) > 64))
        .count();
    assert!(
        differ > 500,
        "Chinese characters render as identical boxes: is fonts-noto-cjk installed?"
    );

    // The demo and its Chinese-named copy, rendered.
    let (val, config) = cjk_demo(&root, &out.join("cjk"));
    // Relative to the package root (the tests' working directory), as a user would type them.
    let rel = |p: &Path| {
        p.strip_prefix(&root)
            .unwrap_or(p)
            .to_str()
            .unwrap()
            .to_owned()
    };
    for (name, args) in [
        ("demo", vec![]),
        ("cjk", vec!["--config".to_owned(), rel(&config), rel(&val)]),
    ] {
        let page = out.join(format!("{name}.html"));
        let json = out.join(format!("{name}.json"));
        run_ok(
            harness()
                .args(&args)
                .arg("--html")
                .arg(&page)
                .arg("--report")
                .arg(&json),
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let mis = v["misclassified"].as_array().unwrap().len();
        assert!(mis >= 2, "{name}: the demo has misclassified images");
        let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
        assert_eq!(doc.select(&sel("figure.mis img")).count(), mis);
        let png = out.join(format!("{name}.png"));
        let img = screenshot(&page, &png, 1280, 2400);
        let (share, colours) = ink(&img);
        eprintln!(
            "{name}: {} ({:.1}% non-white, {colours} colours)",
            png.display(),
            100.0 * share
        );
        assert!(share > 0.02, "{name}: the render is (nearly) blank");
        assert!(
            colours > 1000,
            "{name}: {colours} colours: no photos rendered?"
        );
        if name == "cjk" {
            let raw = std::fs::read_to_string(&page).unwrap();
            assert!(raw.contains("动物_埃及猫") && raw.contains("有害垃圾_电池"));
            assert_eq!(v["images"]["errors"], 1);
        }
    }
}

#[test]
fn compare_disagreements_are_shown_with_thumbnails() {
    let dir = temp_dir("report", "compare");
    let val = fixture("val");
    // The Python side says green for red_1 and agrees on everything else.
    let mut images = Vec::new();
    for (class, colour) in [(RED, "red"), (GREEN, "green"), (BLUE, "blue")] {
        for i in 0..3 {
            let theirs = if colour == "red" && i == 1 {
                GREEN
            } else {
                class
            };
            images.push(
                serde_json::json!({"path": format!("{class}/{colour}_{i}.jpg"),
                "topk": [{"class": theirs, "confidence": 0.9}]}),
            );
        }
    }
    let reference = dir.join("ref.json");
    std::fs::write(
        &reference,
        serde_json::json!({"images": images}).to_string(),
    )
    .unwrap();
    let page = dir.join("r.html");
    run_ok(
        harness()
            .arg("--config")
            .arg(fixture("colour.json"))
            .arg("--compare")
            .arg(&reference)
            .arg("--html")
            .arg(&page)
            .arg(&val),
    );
    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    let cards: Vec<_> = doc.select(&sel("#compare figure.dis")).collect();
    assert_eq!(cards.len(), 1);
    assert_eq!(
        cards[0].value().attr("data-path"),
        Some(&*format!("{RED}/red_1.jpg"))
    );
    check_thumbnail(
        cards[0]
            .select(&sel("img"))
            .next()
            .unwrap()
            .value()
            .attr("src")
            .unwrap(),
    );
    assert_eq!(text(cards[0].select(&sel(".pred")).next().unwrap()), RED);
    assert_eq!(text(cards[0].select(&sel(".truth")).next().unwrap()), GREEN);
    let agreement = text(doc.select(&sel("#compare table.kv tr")).nth(1).unwrap());
    assert!(
        agreement.contains("88.89%") && agreement.contains("8/9"),
        "{agreement}"
    );
    assert_eq!(doc.select(&sel("nav a[href='#compare']")).count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The judge's decode section: the images cv::imread reads otherwise than PIL, how, and the
/// result both ways; absent (with its link) when every image decodes the same.
#[test]
fn images_the_judge_decodes_differently_are_listed() {
    let dir = temp_dir("report", "decode");
    let val = dir.join("val");
    copy_tree(&fixture("val"), &val);
    let page = dir.join("same.html");
    run_ok(
        harness()
            .arg("--config")
            .arg(fixture("colour.json"))
            .arg("--html")
            .arg(&page)
            .arg(&val),
    );
    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    assert_eq!(doc.select(&sel("#decode")).count(), 0);
    assert_eq!(doc.select(&sel("nav a[href='#decode']")).count(), 0);
    let decode_row = doc
        .select(&sel("#summary table.kv tr"))
        .map(text)
        .find(|t| t.starts_with("decode"))
        .unwrap();
    assert!(decode_row.contains("cv::imread") && decode_row.contains("ji_calc_frame"));

    // A red photo whose EXIF orientation rotates it, and a CMYK one.
    let out = Command::new(python())
        .current_dir(&val)
        .arg("-c")
        .arg(format!(
            "from PIL import Image\nex = Image.Exif(); ex[0x0112] = 8\n\
             Image.new('RGB', (40, 20), (200, 30, 30)).save('{RED}/rot.jpg', exif=ex.tobytes())\n\
             Image.new('RGB', (40, 20), (200, 30, 30)).convert('CMYK').save('{RED}/cmyk.jpg')\n"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = dir.join("differs.html");
    run_ok(
        harness()
            .arg("--config")
            .arg(fixture("colour.json"))
            .arg("--html")
            .arg(&page)
            .arg(&val),
    );
    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    assert_eq!(doc.select(&sel("nav a[href='#decode']")).count(), 1);
    let note = text(doc.select(&sel("#decode p.note")).next().unwrap());
    assert!(
        note.contains("on 2 images: 1 rotated by their EXIF orientation, 1 CMYK, 0 other"),
        "{note}"
    );
    let rows: Vec<_> = doc.select(&sel("#decode table.decode tbody tr")).collect();
    assert_eq!(rows.len(), 2);
    let rot = rows
        .iter()
        .find(|r| r.value().attr("data-how") == Some("rotated"))
        .unwrap();
    let cells: Vec<String> = rot.select(&sel("td")).map(text).collect();
    assert_eq!(cells[0], format!("{RED}/rot.jpg"));
    assert!(
        cells[3].starts_with(RED) && cells[4].starts_with(RED),
        "{cells:?}"
    );
    assert!(cells[5].contains("EXIF orientation 8"), "{cells:?}");
    let acc: Vec<String> = doc.select(&sel("#decode table.kv tr")).map(text).collect();
    assert!(
        acc[0].contains("100.00% (11/11)") && acc[1].contains("100.00% (11/11)"),
        "{acc:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
