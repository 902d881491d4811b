//! What one image's run produced: the parsed result JSON or the error, and its latency.

use crate::dataset::Sample;
use crate::decode::Difference;
use crate::report::csv_field;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

/// The parts of a result JSON the harness uses (see src/output.rs).
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub class: String,
    pub class_id: Option<u64>,
    pub confidence: f64,
    /// `model_data.topk` (class, confidence), best first; just the top-1 when absent.
    pub ranked: Vec<(String, f64)>,
    pub device: Option<String>,
}

/// Parses one image's result object.
pub fn parse_result(v: &Value) -> Result<Parsed, String> {
    let md = v.get("model_data").filter(|m| m.is_object());
    let class = v
        .get("class")
        .or_else(|| md.and_then(|m| m.get("class")))
        .and_then(Value::as_str)
        .ok_or("result JSON has no \"class\" string")?
        .to_owned();
    let confidence = v
        .get("confidence")
        .or_else(|| md.and_then(|m| m.get("confidence")))
        .and_then(Value::as_f64)
        .ok_or("result JSON has no numeric \"confidence\"")?;
    let class_id = md.and_then(|m| m.get("class_id")).and_then(Value::as_u64);
    let device = md
        .and_then(|m| m.get("device"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut ranked: Vec<(String, f64)> = md
        .and_then(|m| m.get("topk"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t.get("class")?.as_str()?.to_owned(),
                        t.get("confidence")?.as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if ranked.is_empty() {
        ranked.push((class.clone(), confidence));
    }
    Ok(Parsed {
        class,
        class_id,
        confidence,
        ranked,
        device,
    })
}

/// Parses a call's JSON text; for a batch call (`frames` > 1) picks frame `frame`.
pub fn parse_call(json: &str, frame: Option<usize>) -> Result<(Parsed, String), (i32, String)> {
    let v: Value = serde_json::from_str(json).map_err(|e| {
        (
            0,
            format!("the library returned invalid JSON ({e}): {json}"),
        )
    })?;
    let item = match frame {
        None => v,
        Some(i) => v
            .get("frames")
            .and_then(|f| f.get(i))
            .cloned()
            .ok_or_else(|| (0, format!("batch result has no frames[{i}]")))?,
    };
    let parsed = parse_result(&item).map_err(|e| (0, format!("{e}: {item}")))?;
    Ok((parsed, item.to_string()))
}

/// An image's result, or the code and message of its failure.
pub type ImageResult = Result<Parsed, (i32, String)>;

/// One image's outcome (the last call's, when repeated).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub result: ImageResult,
    /// The raw result JSON of this image (for --print-json).
    pub raw: Option<String>,
    /// Latency of the call that carried this image, in ms (a batch's call time for batches).
    pub latency_ms: f64,
    /// What the judge's decode did with the image (`--decode imread` only).
    pub decode: Option<DecodeNote>,
}

/// The judge's decode of one image, next to PIL's.
#[derive(Clone, Debug, Default)]
pub struct DecodeNote {
    /// Not emulated ("GIF", "TIFF"): the frame was PIL's decode.
    pub not_emulated: Option<&'static str>,
    /// How the judge's decode differs from PIL's, and the result with PIL's decode.
    pub difference: Option<(Difference, ImageResult)>,
}

/// A sample and, if it ran (not skipped by Ctrl-C), its outcome.
pub struct Record {
    pub sample: Sample,
    /// Whether the label is one of the class names (unknown labels are not scored).
    pub label_known: bool,
    pub outcome: Option<Outcome>,
}

impl Record {
    /// The label if it is a known class.
    pub fn scored_label(&self) -> Option<&str> {
        if self.label_known {
            self.sample.label.as_deref()
        } else {
            None
        }
    }

    pub fn parsed(&self) -> Option<&Parsed> {
        self.outcome.as_ref().and_then(|o| o.result.as_ref().ok())
    }

    pub fn error(&self) -> Option<&(i32, String)> {
        self.outcome.as_ref().and_then(|o| o.result.as_ref().err())
    }

    pub fn decode_note(&self) -> Option<&DecodeNote> {
        self.outcome.as_ref().and_then(|o| o.decode.as_ref())
    }

    /// The result this image gets with PIL's decode: the run's own, unless the judge's
    /// decode differs from PIL's.
    pub fn result_with_pil_decode(&self) -> Option<&ImageResult> {
        let o = self.outcome.as_ref()?;
        Some(
            match o.decode.as_ref().and_then(|d| d.difference.as_ref()) {
                Some((_, pil)) => pil,
                None => &o.result,
            },
        )
    }
}

/// One row per image that ran: `path,label,predicted,confidence,latency_ms,error`, then
/// `topN_class,topN_confidence` for each ranked class (as many as the widest row has).
/// Confidences are written as the library returned them: full precision when the call asked
/// for `"confidence_decimals": null`, as the harness does for this file.
pub fn write_predictions(path: &Path, records: &[Record]) -> std::io::Result<()> {
    let k = records
        .iter()
        .filter_map(Record::parsed)
        .map(|p| p.ranked.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut header = vec!["path,label,predicted,confidence,latency_ms,error".to_owned()];
    for i in 1..=k {
        header.push(format!("top{i}_class,top{i}_confidence"));
    }
    writeln!(w, "{}", header.join(","))?;
    for r in records {
        let Some(o) = &r.outcome else {
            continue;
        };
        let mut fields = vec![
            r.sample.rel.clone(),
            r.sample.label.clone().unwrap_or_default(),
        ];
        let ranked: &[(String, f64)] = match &o.result {
            Ok(p) => {
                fields.extend([p.class.clone(), p.confidence.to_string()]);
                fields.extend([format!("{:.3}", o.latency_ms), String::new()]);
                &p.ranked
            }
            Err((code, msg)) => {
                fields.extend([String::new(), String::new()]);
                fields.extend([format!("{:.3}", o.latency_ms), format!("{code}: {msg}")]);
                &[]
            }
        };
        for i in 0..k {
            match ranked.get(i) {
                Some((c, p)) => fields.extend([c.clone(), p.to_string()]),
                None => fields.extend([String::new(), String::new()]),
            }
        }
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        writeln!(w, "{}", line.join(","))?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_topk_and_batch() {
        let j = r#"{"class":"a","confidence":0.9,"algorithm_data":{},"model_data":{"class":"a","confidence":0.9,"class_id":2,"topk":[{"class":"a","class_id":2,"confidence":0.9},{"class":"b","class_id":0,"confidence":0.1}],"device":"cpu"}}"#;
        let (p, _) = parse_call(j, None).unwrap();
        assert_eq!(p.class, "a");
        assert_eq!(p.class_id, Some(2));
        assert_eq!(p.ranked.len(), 2);
        assert_eq!(p.device.as_deref(), Some("cpu"));
        let b = format!(r#"{{"frames":[{j},{{"class":"c","confidence":0.5}}]}}"#);
        let (p, raw) = parse_call(&b, Some(1)).unwrap();
        assert_eq!(p.class, "c");
        assert_eq!(p.ranked, [("c".to_string(), 0.5)]);
        assert!(raw.contains("\"c\""));
        assert!(parse_call(&b, Some(2)).is_err());
        assert!(parse_call("{", None).is_err());
        assert!(parse_call("{}", None).is_err());
    }
}
