//! Percentiles and medians, as every report states them.

use serde::{Deserialize, Serialize};

/// Nearest-rank percentiles, in milliseconds.
#[derive(Clone, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Of durations in nanoseconds; sorts `ns`.
    pub fn of_ns(ns: &mut [u64]) -> Option<Percentiles> {
        let mut v: Vec<f64> = ns.iter().map(|&n| n as f64 / 1e6).collect();
        Percentiles::of_ms(&mut v)
    }

    /// Of values already in milliseconds (which may be negative, e.g. lateness); sorts `v`.
    pub fn of_ms(v: &mut [f64]) -> Option<Percentiles> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// The median (mean of the middle two for an even count); `None` when empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of_ms(&mut v).map(|p| (p.p50, p.p99, p.max));
        assert_eq!(p, Some((50.0, 99.0, 100.0)));
        assert!(Percentiles::of_ms(&mut []).is_none());
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([]), None);
    }
}
