//! `--compare reference.json`: agreement with tools/reference_predict.py (the Python pipeline),
//! matched by path relative to VAL_DIR.

use crate::record::Record;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

pub struct Reference {
    path: String,
    /// How the reference read its images (`"decode"`: "imread" or "pil"; absent in files
    /// written before it had the choice, which read them as PIL does).
    pub decode: Option<String>,
    /// rel path -> ranked (class, confidence), best first.
    images: HashMap<String, Vec<(String, f64)>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Disagreement {
    pub path: String,
    pub ours: String,
    pub theirs: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub reference: String,
    /// The reference's decode, when it says.
    pub reference_decode: Option<String>,
    /// Images with a result on both sides.
    pub matched: usize,
    pub agree: usize,
    /// Largest |ours - theirs| of the reference's top-1 class's confidence, and where.
    pub max_confidence_diff: Option<(f64, String)>,
    pub disagreements: Vec<Disagreement>,
    /// Images we classified that the reference lacks.
    pub only_ours: Vec<String>,
    /// Reference images that we did not classify (not in this run, failed or not run).
    pub only_theirs: usize,
}

impl Comparison {
    pub fn agreement(&self) -> Option<f64> {
        (self.matched > 0).then(|| self.agree as f64 / self.matched as f64)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "reference": self.reference,
            "reference_decode": self.reference_decode,
            "matched": self.matched,
            "agree": self.agree,
            "top1_agreement": self.agreement(),
            "max_top1_confidence_diff": self.max_confidence_diff.as_ref().map(|d| d.0),
            "max_top1_confidence_diff_path": self.max_confidence_diff.as_ref().map(|d| &d.1),
            "disagreements": self.disagreements.iter().map(|d| json!({
                "path": d.path, "ours": d.ours, "theirs": d.theirs,
            })).collect::<Vec<_>>(),
            "only_ours": self.only_ours,
            "only_theirs": self.only_theirs,
        })
    }
}

impl Reference {
    pub fn load(path: &Path) -> Result<Reference, String> {
        let what = || format!("reference file {}", path.display());
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", what()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", what()))?;
        Self::from_json(&v, &path.display().to_string()).map_err(|e| format!("{}: {e}", what()))
    }

    pub fn from_json(v: &Value, name: &str) -> Result<Reference, String> {
        let list = v
            .get("images")
            .and_then(Value::as_array)
            .ok_or("no \"images\" array")?;
        let mut images = HashMap::new();
        for (i, item) in list.iter().enumerate() {
            let p = item
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("images[{i}] has no \"path\""))?;
            let ranked: Vec<(String, f64)> = item
                .get("topk")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("images[{i}] has no \"topk\" array"))?
                .iter()
                .filter_map(|t| {
                    Some((
                        t.get("class")?.as_str()?.to_owned(),
                        t.get("confidence")?.as_f64()?,
                    ))
                })
                .collect();
            if ranked.is_empty() {
                return Err(format!("images[{i}] ({p}) has an empty \"topk\""));
            }
            images.insert(p.trim_start_matches("./").to_owned(), ranked);
        }
        Ok(Reference {
            path: name.to_owned(),
            decode: v.get("decode").and_then(Value::as_str).map(str::to_owned),
            images,
        })
    }

    pub fn compare(&self, records: &[Record]) -> Comparison {
        let mut c = Comparison {
            reference: self.path.clone(),
            reference_decode: self.decode.clone(),
            matched: 0,
            agree: 0,
            max_confidence_diff: None,
            disagreements: Vec::new(),
            only_ours: Vec::new(),
            only_theirs: 0,
        };
        let mut seen = 0;
        for r in records {
            let Some(ours) = r.parsed() else {
                continue;
            };
            let rel = &r.sample.rel;
            let Some(theirs) = self.images.get(rel) else {
                c.only_ours.push(rel.clone());
                continue;
            };
            seen += 1;
            c.matched += 1;
            let (their_class, their_conf) = &theirs[0];
            if ours.class == *their_class {
                c.agree += 1;
            } else {
                c.disagreements.push(Disagreement {
                    path: rel.clone(),
                    ours: ours.class.clone(),
                    theirs: their_class.clone(),
                });
            }
            if let Some((_, our_conf)) = ours.ranked.iter().find(|(n, _)| n == their_class) {
                let d = (our_conf - their_conf).abs();
                if c.max_confidence_diff.as_ref().is_none_or(|m| d > m.0) {
                    c.max_confidence_diff = Some((d, rel.clone()));
                }
            }
        }
        c.only_theirs = self.images.len() - seen;
        c
    }
}
