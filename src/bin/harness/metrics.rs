//! Accuracy, per-class precision / recall / F1, confusions and latency percentiles, computed
//! from plain (truth, ranked predictions) pairs so they can be tested without a model.

use std::collections::{BTreeMap, HashMap};

/// One evaluated image: its true class and the predicted classes, best first (at least one).
#[derive(Clone, Debug)]
pub struct Eval {
    pub truth: String,
    pub ranked: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClassStats {
    pub class: String,
    /// Images whose true class this is.
    pub images: usize,
    /// Of those, predicted correctly (top-1).
    pub correct: usize,
    /// Images predicted as this class (any truth).
    pub predicted: usize,
    /// correct / images (= recall).
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    pub truth: String,
    pub predicted: String,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub evaluated: usize,
    pub top1_correct: usize,
    pub topk_correct: usize,
    /// The k used for `topk_correct` (5 unless fewer classes were ranked).
    pub k: usize,
    /// Over the classes present as a true label; worst accuracy first.
    pub per_class: Vec<ClassStats>,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    /// Off-diagonal (truth != predicted) pairs, most frequent first.
    pub confusions: Vec<Confusion>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Summary {
    pub fn top1(&self) -> Option<f64> {
        (self.evaluated > 0).then(|| ratio(self.top1_correct, self.evaluated))
    }

    pub fn topk(&self) -> Option<f64> {
        (self.evaluated > 0).then(|| ratio(self.topk_correct, self.evaluated))
    }
}

/// Top-1 and top-`k` accuracy, macro P/R/F1 over the classes present as a true label
/// (a class never predicted has precision 0, as scikit-learn's `zero_division=0`), per-class
/// stats sorted worst accuracy first (then more images first, then name), and confusions.
pub fn evaluate(items: &[Eval], k: usize) -> Summary {
    let mut truth_n: BTreeMap<&str, usize> = BTreeMap::new();
    let mut correct_n: HashMap<&str, usize> = HashMap::new();
    let mut pred_n: HashMap<&str, usize> = HashMap::new();
    let mut pairs: HashMap<(&str, &str), usize> = HashMap::new();
    let (mut top1, mut topk) = (0, 0);
    for e in items {
        let t = e.truth.as_str();
        let p = e.ranked.first().map_or("", String::as_str);
        *truth_n.entry(t).or_default() += 1;
        *pred_n.entry(p).or_default() += 1;
        if t == p {
            top1 += 1;
            *correct_n.entry(t).or_default() += 1;
        } else {
            *pairs.entry((t, p)).or_default() += 1;
        }
        if e.ranked.iter().take(k).any(|c| c == t) {
            topk += 1;
        }
    }
    let mut per_class: Vec<ClassStats> = truth_n
        .iter()
        .map(|(&c, &n)| {
            let correct = correct_n.get(c).copied().unwrap_or(0);
            let predicted = pred_n.get(c).copied().unwrap_or(0);
            let precision = ratio(correct, predicted);
            let recall = ratio(correct, n);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassStats {
                class: c.to_owned(),
                images: n,
                correct,
                predicted,
                accuracy: recall,
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let m = per_class.len().max(1) as f64;
    let macro_precision = per_class.iter().map(|c| c.precision).sum::<f64>() / m;
    let macro_recall = per_class.iter().map(|c| c.recall).sum::<f64>() / m;
    let macro_f1 = per_class.iter().map(|c| c.f1).sum::<f64>() / m;
    per_class.sort_by(|a, b| {
        a.accuracy
            .total_cmp(&b.accuracy)
            .then(b.images.cmp(&a.images))
            .then(a.class.cmp(&b.class))
    });
    let mut confusions: Vec<Confusion> = pairs
        .into_iter()
        .map(|((t, p), count)| Confusion {
            truth: t.to_owned(),
            predicted: p.to_owned(),
            count,
        })
        .collect();
    confusions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.truth.cmp(&b.truth))
            .then_with(|| a.predicted.cmp(&b.predicted))
    });
    Summary {
        evaluated: items.len(),
        top1_correct: top1,
        topk_correct: topk,
        k,
        per_class,
        macro_precision,
        macro_recall,
        macro_f1,
        confusions,
    }
}

/// The confusion matrix over `classes` (rows = truth, columns = predicted), extended with any
/// class that occurs in `items` but is not listed (appended in sorted order).
pub fn confusion_matrix(items: &[Eval], classes: &[String]) -> (Vec<String>, Vec<Vec<usize>>) {
    let mut names: Vec<String> = classes.to_vec();
    let mut index: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let mut extra: Vec<String> = items
        .iter()
        .flat_map(|e| {
            [
                e.truth.clone(),
                e.ranked.first().cloned().unwrap_or_default(),
            ]
        })
        .filter(|n| !index.contains_key(n))
        .collect();
    extra.sort();
    extra.dedup();
    for n in extra {
        index.insert(n.clone(), names.len());
        names.push(n);
    }
    let mut m = vec![vec![0usize; names.len()]; names.len()];
    for e in items {
        let t = index[&e.truth];
        let p = index[e.ranked.first().map_or("", String::as_str)];
        m[t][p] += 1;
    }
    (names, m)
}

/// Keeps only the classes that occur (a non-zero row or column) when there are more than
/// `max` classes, so a 1000-class model's picture stays readable.
pub fn shrink_matrix(
    names: Vec<String>,
    m: Vec<Vec<usize>>,
    max: usize,
) -> (Vec<String>, Vec<Vec<usize>>) {
    if names.len() <= max {
        return (names, m);
    }
    let keep: Vec<usize> = (0..names.len())
        .filter(|&i| m[i].iter().any(|&v| v > 0) || m.iter().any(|row| row[i] > 0))
        .collect();
    let names = keep.iter().map(|&i| names[i].clone()).collect();
    let m = keep
        .iter()
        .map(|&r| keep.iter().map(|&c| m[r][c]).collect())
        .collect();
    (names, m)
}

#[derive(Clone, Debug, PartialEq)]
pub struct LatencyStats {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 / p90 / p99 / max / mean of latencies (any unit); `None` when there are none.
pub fn latency_stats(values: &[f64]) -> Option<LatencyStats> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(LatencyStats {
        count: v.len(),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: percentile(&v, 50.0),
        p90: percentile(&v, 90.0),
        p99: percentile(&v, 99.0),
        max: v[v.len() - 1],
    })
}

/// Call latencies binned for the report's histogram: `counts[i]` holds the values in
/// `[lo + i * bin, lo + (i + 1) * bin)` (the last bin is closed); `above` counts the outliers
/// past the range, which stops at 1.1 x p99 when the slowest call is over twice p99 (so one
/// stall does not squeeze every other call into the first bin).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub lo: f64,
    pub bin: f64,
    pub counts: Vec<usize>,
    pub above: usize,
}

/// About sqrt(n) bins, between 5 and 40; `None` when there are no values.
pub fn histogram(values: &[f64]) -> Option<Histogram> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let lo = v[0];
    let max = v[v.len() - 1];
    let p99 = percentile(&v, 99.0);
    let mut hi = if max > 2.0 * p99 { 1.1 * p99 } else { max };
    if hi - lo < 1e-6 {
        hi = lo + 1e-3; // all equal: one visible bin
    }
    let nbins = ((v.len() as f64).sqrt().ceil() as usize).clamp(5, 40);
    let bin = (hi - lo) / nbins as f64;
    let mut counts = vec![0usize; nbins];
    let mut above = 0;
    for &x in &v {
        if x > hi {
            above += 1;
        } else {
            counts[(((x - lo) / bin) as usize).min(nbins - 1)] += 1;
        }
    }
    Some(Histogram {
        lo,
        bin,
        counts,
        above,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(t: &str, ranked: &[&str]) -> Eval {
        Eval {
            truth: t.into(),
            ranked: ranked.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn accuracy_prf_and_confusions() {
        // a: 3 images, 2 right, 1 predicted b; b: 2 images, both right; c: 1 image predicted a.
        let items = [
            e("a", &["a", "b"]),
            e("a", &["a", "c"]),
            e("a", &["b", "a"]),
            e("b", &["b", "a"]),
            e("b", &["b", "c"]),
            e("c", &["a", "b"]),
        ];
        let s = evaluate(&items, 5);
        assert_eq!(s.evaluated, 6);
        assert_eq!(s.top1_correct, 4);
        assert_eq!(s.topk_correct, 5); // the c image never lists c
        assert_eq!(s.top1(), Some(4.0 / 6.0));
        let by = |n: &str| s.per_class.iter().find(|c| c.class == n).unwrap().clone();
        let a = by("a");
        assert_eq!((a.images, a.correct, a.predicted), (3, 2, 3));
        assert!((a.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.recall - 2.0 / 3.0).abs() < 1e-12);
        let b = by("b");
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(b.recall, 1.0);
        assert!((b.f1 - 0.8).abs() < 1e-12);
        let c = by("c");
        assert_eq!((c.precision, c.recall, c.f1), (0.0, 0.0, 0.0));
        let p = (2.0 / 3.0 + 2.0 / 3.0 + 0.0) / 3.0;
        assert!((s.macro_precision - p).abs() < 1e-12);
        assert!((s.macro_recall - (2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        assert!((s.macro_f1 - (2.0 / 3.0 + 0.8) / 3.0).abs() < 1e-12);
        // Worst first: c (0), a (0.67), b (1).
        let order: Vec<&str> = s.per_class.iter().map(|c| c.class.as_str()).collect();
        assert_eq!(order, ["c", "a", "b"]);
        assert_eq!(
            s.confusions,
            [
                Confusion {
                    truth: "a".into(),
                    predicted: "b".into(),
                    count: 1
                },
                Confusion {
                    truth: "c".into(),
                    predicted: "a".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(evaluate(&items, 1).topk_correct, 4);
    }

    #[test]
    fn confusions_sorted_by_count_and_empty_input() {
        let items = [
            e("a", &["b"]),
            e("c", &["a"]),
            e("c", &["a"]),
            e("a", &["a"]),
        ];
        let s = evaluate(&items, 5);
        assert_eq!(s.confusions[0].count, 2);
        assert_eq!(s.confusions[0].truth, "c");
        let empty = evaluate(&[], 5);
        assert_eq!(empty.top1(), None);
        assert!(empty.per_class.is_empty());
        assert_eq!(empty.macro_f1, 0.0);
    }

    #[test]
    fn matrix_extends_unknown_classes() {
        let items = [e("a", &["z"]), e("b", &["b"]), e("a", &["a"])];
        let (names, m) = confusion_matrix(&items, &["a".into(), "b".into()]);
        assert_eq!(names, ["a", "b", "z"]);
        assert_eq!(m, [[1, 0, 1], [0, 1, 0], [0, 0, 0]]);
    }

    #[test]
    fn shrink_keeps_present_classes_only_above_max() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let m = vec![
            vec![1, 0, 0, 0],
            vec![0, 0, 0, 0],
            vec![0, 0, 0, 2],
            vec![0, 0, 0, 0],
        ];
        let (n, s) = shrink_matrix(names.clone(), m.clone(), 4);
        assert_eq!((n.len(), s.len()), (4, 4));
        let (n, s) = shrink_matrix(names, m, 3);
        assert_eq!(n, ["a", "c", "d"]);
        assert_eq!(s, [[1, 0, 0], [0, 0, 2], [0, 0, 0]]);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = latency_stats(&v).unwrap();
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(s.mean, 50.5);
        let s = latency_stats(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.p50, s.p90, s.p99, s.max, s.count),
            (2.0, 3.0, 3.0, 3.0, 3)
        );
        assert_eq!(latency_stats(&[7.0]).unwrap().p50, 7.0);
        assert_eq!(latency_stats(&[]), None);
    }

    #[test]
    fn histogram_bins_and_outliers() {
        let v: Vec<f64> = (0..100).map(|i| 10.0 + i as f64 * 0.1).collect();
        let h = histogram(&v).unwrap();
        assert_eq!(h.counts.len(), 10);
        assert_eq!(h.counts.iter().sum::<usize>(), 100);
        assert_eq!(h.above, 0);
        assert_eq!(h.lo, 10.0);
        // One stall of 500 ms among 200 calls of ~10 ms: the range stops near p99.
        let mut v: Vec<f64> = (0..199).map(|i| 10.0 + (i % 10) as f64 * 0.1).collect();
        v.push(500.0);
        let h = histogram(&v).unwrap();
        assert_eq!(h.above, 1);
        assert_eq!(h.counts.iter().sum::<usize>(), 199);
        assert!(h.lo + h.bin * h.counts.len() as f64 <= 12.0);
        let h = histogram(&[3.0, 3.0]).unwrap();
        assert_eq!(h.counts.iter().sum::<usize>(), 2);
        assert_eq!(histogram(&[]), None);
    }
}
