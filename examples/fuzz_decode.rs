//! A deterministic mutation fuzzer for the decode + preprocess path (stable Rust, no
//! sanitizer toolchain needed). Seeds are real files of every format; each execution applies
//! a few structure-blind mutations (bit flips, magic values, 16/32-bit field overwrites that
//! hit image dimensions, truncation, chunk duplication, insertion) and runs
//! `decode_image` + the preprocessing of three resize modes under `catch_unwind`, and checks
//! that the engine's windowed decode (`decode_image_window`) gives the same outcome.
//! A panic is a bug: the input is saved to tests/fuzz_regressions/ (replayed by
//! tests/fuzz_regressions.rs) and the run fails.
//!
//! cargo run --release --example fuzz_decode -- [EXECUTIONS] [SEED] [SEED_FILES_DIR...]

use ji::config::{PreprocessConfig, ResizeMode, Size};
use ji::decode::{decode_image, decode_image_window, DecodeOptions};
use ji::preprocess::{source_window, Preprocessor};
use std::path::{Path, PathBuf};

/// splitmix64: tiny, deterministic, good enough for choosing mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next() as u8);
        }
        let pos = rng.below(b.len());
        match rng.below(8) {
            0 => b[pos] ^= 1 << rng.below(8),
            1 => b[pos] = [0, 0xFF, 0x7F, 0x80, 1][rng.below(5)],
            2 => {
                // A 16-bit big- or little-endian field: where image sizes live.
                let v = [0u16, 1, 0xFFFF, 0x7FFF, 0x8000, 65000][rng.below(6)].to_be_bytes();
                for (i, x) in v.iter().enumerate() {
                    if pos + i < b.len() {
                        b[pos + i] = *x;
                    }
                }
            }
            3 => {
                let v = [0u32, 1, u32::MAX, 0x7FFF_FFFF, 100_000][rng.below(5)].to_be_bytes();
                for (i, x) in v.iter().enumerate() {
                    if pos + i < b.len() {
                        b[pos + i] = *x;
                    }
                }
            }
            4 => b.truncate(pos.max(1)),
            5 => {
                let len = rng.below(64).min(b.len() - pos);
                let chunk = b[pos..pos + len].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, chunk);
            }
            6 => {
                let n = 1 + rng.below(16);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(pos..pos, junk);
            }
            _ => {
                let end = (pos + rng.below(32)).min(b.len());
                b.drain(pos..end);
            }
        }
    }
    b
}

fn configs() -> Vec<PreprocessConfig> {
    let base = PreprocessConfig {
        max_image_pixels: 20_000_000,
        ..Default::default()
    };
    vec![
        base.clone(),
        PreprocessConfig {
            resize_mode: ResizeMode::ShorterSide,
            resize_size: Size {
                height: 64,
                width: 64,
            },
            crop_size: Some(Size {
                height: 56,
                width: 56,
            }),
            ..base.clone()
        },
        // A crop well inside the image: JPEGs are decoded only in part.
        PreprocessConfig {
            resize_size: Size {
                height: 64,
                width: 64,
            },
            crop_size: Some(Size {
                height: 24,
                width: 20,
            }),
            ..base.clone()
        },
        PreprocessConfig {
            resize_mode: ResizeMode::Letterbox,
            resize_size: Size {
                height: 48,
                width: 64,
            },
            crop_size: Some(Size {
                height: 40,
                width: 72,
            }),
            ..base
        },
    ]
}

/// Runs one input through decode + every preprocessing config; `Err` = a panic message.
pub fn exercise(
    bytes: &[u8],
    pre: &mut Preprocessor,
    cfgs: &[PreprocessConfig],
) -> Result<(), String> {
    let opts = DecodeOptions {
        exif_transpose: bytes.len().is_multiple_of(2),
        max_pixels: 20_000_000,
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let full = decode_image(bytes, &opts);
        if let Ok(img) = &full {
            let mut out = Vec::new();
            for cfg in cfgs {
                let _ = pre.append_tensor(img, cfg, &mut out);
            }
        }
        // Differential check of the engine's windowed decode (JPEG decoded only where the
        // preprocessing reads): the same outcome and the same tensor as the full decode, for
        // the configs that crop part of the image.
        for cfg in cfgs.iter().filter(|c| {
            matches!(c.resize_mode, ResizeMode::Stretch | ResizeMode::ShorterSide)
                && c.crop_size.is_some()
        }) {
            let part =
                decode_image_window(bytes, &opts, Vec::new(), &|w, h| source_window(w, h, cfg));
            match (&full, part) {
                (Err(a), Err(b)) => assert_eq!(
                    a.to_string(),
                    b.to_string(),
                    "windowed decode: another error"
                ),
                (Ok(a), Ok((b, _))) => {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    let rx = pre.append_tensor(a, cfg, &mut x).map_err(|e| e.to_string());
                    let ry = pre
                        .append_tensor(&b, cfg, &mut y)
                        .map_err(|e| e.to_string());
                    assert!(
                        rx == ry && x == y,
                        "windowed decode: another tensor ({rx:?} vs {ry:?})"
                    );
                }
                (a, b) => panic!(
                    "windowed decode: {:?} vs full decode {:?}",
                    b.map(|_| ()),
                    a.as_ref().map(|_| ())
                ),
            }
        }
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn seed_files(dirs: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| m.len() < 2_000_000)
                    .unwrap_or(false)
            {
                if let Ok(b) = std::fs::read(&p) {
                    out.push((p, b));
                }
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let executions: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs: Vec<PathBuf> = if args.len() > 3 {
        args[3..].iter().map(PathBuf::from).collect()
    } else {
        vec![
            root.join("tests/fixtures/generated/core/images"),
            root.join("tests/fixtures/generated/parity/inputs"),
            root.join("tests/fuzz_regressions"),
        ]
    };
    let seeds = seed_files(&dirs);
    assert!(
        !seeds.is_empty(),
        "no seed files in {dirs:?} (run `make fixtures`)"
    );
    // Keep seeds small so each execution is fast (saved crashes always stay).
    let seeds: Vec<_> = seeds
        .into_iter()
        .filter(|(p, b)| b.len() < 300_000 || p.starts_with(root.join("tests/fuzz_regressions")))
        .collect();
    eprintln!(
        "fuzz_decode: {} seeds, {executions} executions, seed {seed}",
        seeds.len()
    );
    let cfgs = configs();
    let mut pre = Preprocessor::new();
    let mut rng = Rng(seed);
    let mut crashes = 0;
    let start = std::time::Instant::now();
    // Panics are caught and reported here; keep the default hook from flooding stderr.
    std::panic::set_hook(Box::new(|_| {}));
    // Every seed (saved crashes included) once as it is, then the mutants.
    for (path, bytes) in &seeds {
        if let Err(msg) = exercise(bytes, &mut pre, &cfgs) {
            crashes += 1;
            eprintln!("seed {}: panic: {msg}", path.display());
        }
    }
    for i in 0..executions {
        let (_, base) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base);
        if let Err(msg) = exercise(&input, &mut pre, &cfgs) {
            crashes += 1;
            let hash = input.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
            let path = root.join(format!("tests/fuzz_regressions/crash-{hash:016x}.bin"));
            std::fs::write(&path, &input).unwrap();
            eprintln!("execution {i}: panic: {msg} -> {}", path.display());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz_decode: {executions} executions in {secs:.1} s ({:.0}/s), {crashes} crashes",
        executions as f64 / secs
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}
