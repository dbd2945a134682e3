//! Paired bootstrap: a confidence interval for the mean of per-item differences
//! (candidate score − baseline score), resampling items with replacement. Deterministic for a
//! given seed (SplitMix64), so a verdict can be reproduced.

/// SplitMix64: small, fast and good enough for resampling indices.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Percentile interval at `confidence` (e.g. 0.95) of the mean of `diffs` over `resamples`
/// bootstrap resamples. Empty input gives a zero-width interval at 0.
pub fn paired_bootstrap(diffs: &[f64], resamples: usize, confidence: f64, seed: u64) -> Interval {
    let n = diffs.len();
    if n == 0 {
        return Interval {
            mean: 0.0,
            lo: 0.0,
            hi: 0.0,
        };
    }
    let mean = diffs.iter().sum::<f64>() / n as f64;
    let resamples = resamples.max(1);
    let mut rng = SplitMix64::new(seed);
    let mut means = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut sum = 0.0;
        for _ in 0..n {
            sum += diffs[rng.below(n)];
        }
        means.push(sum / n as f64);
    }
    means.sort_by(f64::total_cmp);
    let alpha = ((1.0 - confidence) / 2.0).clamp(0.0, 0.5);
    let pick = |q: f64| {
        let idx = ((q * (resamples - 1) as f64).round() as usize).min(resamples - 1);
        means[idx]
    };
    Interval {
        mean,
        lo: pick(alpha),
        hi: pick(1.0 - alpha),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_the_mean_and_narrows_with_more_items() {
        let mut rng = SplitMix64::new(7);
        let small: Vec<f64> = (0..30).map(|_| (rng.below(3) as f64) - 1.0).collect();
        let large: Vec<f64> = (0..3000).map(|_| (rng.below(3) as f64) - 1.0).collect();
        let a = paired_bootstrap(&small, 2000, 0.95, 1);
        let b = paired_bootstrap(&large, 2000, 0.95, 1);
        assert!(a.lo <= a.mean && a.mean <= a.hi);
        assert!(b.lo <= b.mean && b.mean <= b.hi);
        assert!(b.hi - b.lo < a.hi - a.lo);
        assert_eq!(
            paired_bootstrap(&small, 2000, 0.95, 1),
            a,
            "seeded: reproducible"
        );
    }

    #[test]
    fn constant_differences_give_a_point_interval() {
        let i = paired_bootstrap(&[-0.5; 40], 500, 0.95, 3);
        assert_eq!((i.mean, i.lo, i.hi), (-0.5, -0.5, -0.5));
        assert_eq!(paired_bootstrap(&[], 10, 0.95, 3).mean, 0.0);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(0);
        assert!((0..10_000).all(|_| r.below(7) < 7));
    }
}
