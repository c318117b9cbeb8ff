//! Token sampling with llama.cpp's semantics and a small seeded PRNG.
//!
//! The chain is llama.cpp's default order: repetition penalty → top-k → top-p → min-p →
//! temperature → draw. A temperature `<= 0` means greedy (argmax after the penalty). The PRNG is
//! xoshiro256** seeded through splitmix64, so a given seed gives the same tokens on every
//! platform.

/// Sampling parameters (defaults as llama.cpp's `common_params_sampling`).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// Temperature; `<= 0` selects greedy decoding.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `<= 0` keeps all.
    pub top_k: i32,
    /// Nucleus sampling: keep the smallest set whose probability mass reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` × the top probability (0 = off).
    pub min_p: f32,
    /// Repetition penalty over the last `repeat_last_n` tokens (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    /// PRNG seed.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5EED,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding (argmax), no penalty.
    pub fn greedy() -> Self {
        SamplerParams {
            temperature: 0.0,
            ..SamplerParams::default()
        }
    }
}

/// xoshiro256** (Blackman & Vigna), seeded with splitmix64: small, fast, portable.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform double in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A sampler: parameters, PRNG state, recent-token history and a reusable candidate buffer.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    history: Vec<u32>,
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler with the given parameters, seeded from `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        Sampler {
            rng: Rng::new(params.seed),
            params,
            history: Vec::new(),
            cand: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token as part of the context (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, id: u32) {
        let n = self.params.repeat_last_n;
        if n == 0 {
            return;
        }
        if self.history.len() == n {
            self.history.remove(0);
        }
        self.history.push(id);
    }

    /// Forgets the token history and reseeds the PRNG.
    pub fn reset(&mut self) {
        self.history.clear();
        self.rng = Rng::new(self.params.seed);
    }

    /// Picks the next token from one row of logits (length = vocabulary size).
    ///
    /// # Panics
    /// Never for a non-empty `logits`; an empty slice returns token 0.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let p = &self.params;
        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        if self.cand.is_empty() {
            return 0;
        }
        // Repetition penalty (llama.cpp: divide positive logits, multiply negative ones; each
        // distinct token once).
        if p.repeat_penalty != 1.0 {
            for (i, &id) in self.history.iter().enumerate() {
                if self.history[..i].contains(&id) {
                    continue;
                }
                if let Some(c) = self.cand.get_mut(id as usize) {
                    c.1 = if c.1 <= 0.0 {
                        c.1 * p.repeat_penalty
                    } else {
                        c.1 / p.repeat_penalty
                    };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(&self.cand);
        }
        // Sort descending by logit, ties by id for determinism.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && (p.top_k as usize) < self.cand.len() {
            let k = p.top_k as usize;
            self.cand.select_nth_unstable_by(k - 1, by_logit);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(by_logit);
        if p.top_p < 1.0 {
            let probs = softmax_of(&self.cand);
            let mut cum = 0.0f64;
            let mut keep = self.cand.len();
            for (i, &pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  l_i >= l_max + ln(min_p)
            let thr = self.cand[0].1 + p.min_p.ln();
            let keep = self.cand.iter().take_while(|c| c.1 >= thr).count();
            self.cand.truncate(keep.max(1));
        }
        for c in self.cand.iter_mut() {
            c.1 /= p.temperature;
        }
        let probs = softmax_of(&self.cand);
        let r = self.rng.next_f64();
        let mut cum = 0.0f64;
        for (c, pr) in self.cand.iter().zip(&probs) {
            cum += pr;
            if r < cum {
                return c.0;
            }
        }
        self.cand[self.cand.len() - 1].0
    }
}

fn argmax(c: &[(u32, f32)]) -> u32 {
    let mut best = c[0];
    for &x in &c[1..] {
        if x.1 > best.1 {
            best = x;
        }
    }
    best.0
}

/// Softmax of the candidates' logits, in f64 (candidates sorted, largest first, or not).
fn softmax_of(c: &[(u32, f32)]) -> Vec<f64> {
    let max = c.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut v: Vec<f64> = c.iter().map(|x| (x.1 as f64 - max).exp()).collect();
    let s: f64 = v.iter().sum();
    for x in v.iter_mut() {
        *x /= s;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37 % 100) as f32) / 10.0).collect()
    }

    #[test]
    fn greedy_is_argmax() {
        let l = logits();
        let best = l
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|x| x.0 as u32);
        assert_eq!(Some(Sampler::new(SamplerParams::greedy()).sample(&l)), best);
    }

    #[test]
    fn same_seed_same_stream_different_seed_differs() {
        let l = logits();
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams {
                temperature: 1.5,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed,
                ..SamplerParams::default()
            });
            (0..64).map(|_| s.sample(&l)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let l = logits();
        let mut s = Sampler::new(SamplerParams {
            temperature: 5.0,
            top_k: 1,
            ..SamplerParams::default()
        });
        let g = Sampler::new(SamplerParams::greedy()).sample(&l);
        for _ in 0..20 {
            assert_eq!(s.sample(&l), g);
        }
    }

    #[test]
    fn min_p_cuts_unlikely_tokens() {
        // Two strong tokens, the rest far below: min-p 0.1 must never pick the rest.
        let mut l = vec![-10.0f32; 50];
        l[3] = 5.0;
        l[9] = 4.9;
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.1,
            ..SamplerParams::default()
        });
        let mut seen = [false; 50];
        for _ in 0..200 {
            seen[s.sample(&l) as usize] = true;
        }
        assert!(seen[3] && seen[9]);
        assert_eq!(seen.iter().filter(|&&x| x).count(), 2);
    }

    #[test]
    fn repetition_penalty_follows_llama_cpp_sign_rule() {
        let mut l = vec![0.0f32; 4];
        l[0] = 2.0;
        l[1] = 1.5;
        let mut s = Sampler::new(SamplerParams {
            repeat_penalty: 2.0,
            ..SamplerParams::greedy()
        });
        assert_eq!(s.sample(&l), 0);
        s.accept(0); // 2.0 / 2 = 1.0 < 1.5
        assert_eq!(s.sample(&l), 1);
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut r = Rng::new(1);
        let mean = (0..10000).map(|_| r.next_f64()).sum::<f64>() / 10000.0;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}
