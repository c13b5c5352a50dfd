//! The numbers that say how even a distribution is. The mean load per replica is always
//! requests / N, so the spread around it (max/mean, standard deviation, CV) is what compares
//! hash families.

use serde::Serialize;

/// Spread of per-replica counts.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Spread {
    /// Replicas.
    pub n: usize,
    /// Mean count.
    pub mean: f64,
    /// Smallest count.
    pub min: f64,
    /// Largest count.
    pub max: f64,
    /// Population standard deviation.
    pub std: f64,
    /// max / mean: how much the busiest replica must be over-provisioned.
    pub max_over_mean: f64,
    /// std / mean.
    pub cv: f64,
}

/// The spread of `counts`; replicas that got nothing must be included as zeros.
pub fn spread(counts: &[f64]) -> Spread {
    let n = counts.len();
    if n == 0 {
        return Spread::default();
    }
    let mean = counts.iter().sum::<f64>() / n as f64;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n as f64;
    let min = counts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = counts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let std = var.sqrt();
    let ratio = |x: f64| if mean > 0.0 { x / mean } else { 0.0 };
    Spread {
        n,
        mean,
        min,
        max,
        std,
        max_over_mean: ratio(max),
        cv: ratio(std),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_known_counts() {
        let s = spread(&[8438.0, 469.0, 1093.0]);
        assert!((s.mean - 3333.333).abs() < 0.01);
        assert!((s.max_over_mean - 2.5314).abs() < 0.001);
        assert_eq!(s.min, 469.0);
        let even = spread(&[5.0, 5.0]);
        assert_eq!(even.std, 0.0);
        assert_eq!(even.max_over_mean, 1.0);
    }
}
