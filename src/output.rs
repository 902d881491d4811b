//! The result JSON in the platform's output protocol (v1.0, single-label classification),
//! plus the top-level `class`/`confidence` the 2021 contest's Python template returned.

use crate::config::RunOptions;
use serde_json::{json, Value};

/// One scored class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub class_id: usize,
    pub confidence: f32,
}

/// The ranked predictions for one image, best first (at least one).
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub ranked: Vec<Prediction>,
}

impl Classification {
    /// Ranks `probs` and keeps the best `k` (ties keep the lower class id first).
    pub fn from_probabilities(probs: &[f32], k: usize) -> Classification {
        let k = k.clamp(1, probs.len().max(1));
        let mut idx: Vec<usize> = (0..probs.len()).collect();
        // total_cmp keeps NaN from breaking the sort; NaN scores sink to the end.
        let key = |i: usize| {
            if probs[i].is_nan() {
                f32::NEG_INFINITY
            } else {
                probs[i]
            }
        };
        // A total order (ties broken by class id), so selecting the best k and sorting them
        // gives exactly the first k of a full sort, without sorting every class.
        let order = |a: &usize, b: &usize| key(*b).total_cmp(&key(*a)).then(a.cmp(b));
        if k < idx.len() {
            idx.select_nth_unstable_by(k - 1, order);
            idx.truncate(k);
        }
        idx.sort_by(order);
        Classification {
            ranked: idx
                .into_iter()
                .map(|i| Prediction {
                    class_id: i,
                    confidence: probs[i],
                })
                .collect(),
        }
    }

    pub fn top1(&self) -> Prediction {
        self.ranked[0]
    }
}

/// Rounds a confidence for output: `decimals` places, or f32's shortest form when `None`.
pub fn round_confidence(c: f32, decimals: Option<u32>) -> f64 {
    match decimals {
        Some(d) => {
            let scale = 10f64.powi(d as i32);
            (c as f64 * scale).round() / scale
        }
        // Via f32's shortest decimal so 0.912f32 prints as 0.912, not 0.9120000004768372.
        None => c.to_string().parse().unwrap_or(c as f64),
    }
}

/// A rendered result: the alarm decision and the target, typed, next to the JSON they were
/// written into, so the ji_* layer maps them to event codes without reading its JSON back.
/// The default (no alarm, null JSON) stands for calls that render nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// `algorithm_data.is_alert`: the platform's alarm (`JISDK_CODE_ALARM`).
    pub alert: bool,
    /// `algorithm_data.target_info`: the top-1 class and confidence when `alert`, else null
    /// (for combined frames: one entry per frame).
    pub target_info: Value,
    /// The whole result object.
    pub json: Value,
}

impl Rendered {
    /// The result of one call on several frames: one frame's result as it is; several as
    /// `{"algorithm_data": {"is_alert": any, "target_info": [per frame]}, "model_data":
    /// {"frames": n}, "frames": [per-frame results in order]}`.
    pub fn combine(mut results: Vec<Rendered>) -> Rendered {
        if results.len() == 1 {
            return results.remove(0);
        }
        let alert = results.iter().any(|r| r.alert);
        let target_info = Value::Array(results.iter().map(|r| r.target_info.clone()).collect());
        let n = results.len();
        let frames: Vec<Value> = results.into_iter().map(|r| r.json).collect();
        Rendered {
            alert,
            json: json!({
                "algorithm_data": {"is_alert": alert, "target_info": target_info},
                "model_data": {"frames": n},
                "frames": frames,
            }),
            target_info,
        }
    }
}

/// Renders the result for one image.
pub fn render(cls: &Classification, names: &[String], opts: &RunOptions, device: &str) -> Rendered {
    let top = cls.top1();
    let name = names.get(top.class_id).map(String::as_str).unwrap_or("");
    let conf = round_confidence(top.confidence, opts.confidence_decimals);
    let alert = (top.confidence as f64) >= opts.thresh;
    let target_info = if alert {
        json!({"class": name, "confidence": conf})
    } else {
        Value::Null
    };
    let mut model_data = json!({"class": name, "confidence": conf, "class_id": top.class_id});
    if opts.topk > 1 {
        let topk: Vec<Value> = cls
            .ranked
            .iter()
            .take(opts.topk)
            .map(|p| {
                json!({
                    "class": names.get(p.class_id).map(String::as_str).unwrap_or(""),
                    "class_id": p.class_id,
                    "confidence": round_confidence(p.confidence, opts.confidence_decimals),
                })
            })
            .collect();
        model_data["topk"] = Value::Array(topk);
    }
    model_data["device"] = Value::String(device.to_owned());
    Rendered {
        alert,
        json: json!({
            "class": name,
            "confidence": conf,
            "algorithm_data": {"is_alert": alert, "target_info": target_info},
            "model_data": model_data,
        }),
        target_info,
    }
}

/// The JSON object the ji_* API puts in `event->json` when a call fails; `code` is the
/// return code of that call.
pub fn error_json(err: &crate::Error, code: i32) -> Value {
    json!({
        "algorithm_data": {"is_alert": false, "target_info": null},
        "model_data": null,
        "error": {"code": code, "kind": err.kind(), "message": err.to_string()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["有害垃圾_杀虫剂".into(), "b".into(), "c".into()]
    }

    #[test]
    fn json_shape_and_utf8() {
        let cls = Classification::from_probabilities(&[0.9123, 0.05, 0.0377], 3);
        let opts = RunOptions {
            topk: 2,
            ..Default::default()
        };
        let v = render(&cls, &names(), &opts, "cpu").json;
        assert_eq!(v["class"], "有害垃圾_杀虫剂");
        assert_eq!(v["confidence"], 0.912);
        assert_eq!(v["algorithm_data"]["is_alert"], true);
        assert_eq!(
            v["algorithm_data"]["target_info"]["class"],
            "有害垃圾_杀虫剂"
        );
        assert_eq!(v["model_data"]["class_id"], 0);
        assert_eq!(v["model_data"]["topk"].as_array().unwrap().len(), 2);
        assert_eq!(v["model_data"]["topk"][1]["class"], "b");
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains("有害垃圾_杀虫剂") && !text.contains("\\u"));
        assert!(text.starts_with("{\"class\""));
    }

    #[test]
    fn below_thresh_has_null_target_and_no_topk_for_k1() {
        let cls = Classification::from_probabilities(&[0.2, 0.5, 0.3], 1);
        let opts = RunOptions {
            thresh: 0.6,
            ..Default::default()
        };
        let v = render(&cls, &names(), &opts, "cpu").json;
        assert_eq!(v["class"], "b");
        assert_eq!(v["algorithm_data"]["is_alert"], false);
        assert!(v["algorithm_data"]["target_info"].is_null());
        assert!(v["model_data"].get("topk").is_none());
    }

    #[test]
    fn typed_fields_match_the_json_and_combine() {
        let opts = RunOptions {
            thresh: 0.6,
            ..Default::default()
        };
        let hi = render(
            &Classification::from_probabilities(&[0.9, 0.1], 1),
            &names(),
            &opts,
            "cpu",
        );
        let lo = render(
            &Classification::from_probabilities(&[0.45, 0.55], 1),
            &names(),
            &opts,
            "cpu",
        );
        for r in [&hi, &lo] {
            assert_eq!(r.json["algorithm_data"]["is_alert"], r.alert);
            assert_eq!(r.json["algorithm_data"]["target_info"], r.target_info);
        }
        assert!(hi.alert && !lo.alert);
        let both = Rendered::combine(vec![lo.clone(), hi.clone()]);
        assert!(both.alert);
        assert_eq!(both.json["algorithm_data"]["is_alert"], true);
        assert_eq!(both.target_info, json!([null, hi.target_info]));
        assert_eq!(both.json["algorithm_data"]["target_info"], both.target_info);
        assert_eq!(both.json["frames"], json!([lo.json, hi.json]));
        assert_eq!(both.json["model_data"]["frames"], 2);
        assert!(!Rendered::combine(vec![lo.clone(), lo.clone()]).alert);
        assert_eq!(Rendered::combine(vec![hi.clone()]), hi);
    }

    #[test]
    fn rounding() {
        assert_eq!(round_confidence(0.91251, Some(3)), 0.913);
        assert_eq!(round_confidence(0.912, None), 0.912);
        assert_eq!(round_confidence(0.5, Some(0)), 1.0);
    }

    #[test]
    fn ranking_ties_and_nan() {
        let c = Classification::from_probabilities(&[0.3, f32::NAN, 0.3, 0.4], 4);
        let ids: Vec<usize> = c.ranked.iter().map(|p| p.class_id).collect();
        assert_eq!(ids, [3, 0, 2, 1]);
    }

    /// Selecting the best k equals the first k of a full, stable sort, ties and NaN included.
    #[test]
    fn top_k_equals_the_head_of_a_full_sort() {
        let mut state = 7u32;
        for n in [1usize, 2, 5, 146, 1000] {
            // Few distinct values, so that ties are common; some NaN.
            let probs: Vec<f32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                    match state >> 28 {
                        0 => f32::NAN,
                        v => v as f32 / 16.0,
                    }
                })
                .collect();
            let key = |i: usize| {
                if probs[i].is_nan() {
                    f32::NEG_INFINITY
                } else {
                    probs[i]
                }
            };
            let mut all: Vec<usize> = (0..n).collect();
            all.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
            for k in [1, 2, 3, 5, n] {
                let got: Vec<usize> = Classification::from_probabilities(&probs, k)
                    .ranked
                    .iter()
                    .map(|p| p.class_id)
                    .collect();
                assert_eq!(got, all[..k.min(n)], "n {n} k {k}");
            }
        }
    }
}
