//! Where a prompt's prefill chunks begin and end.
//!
//! A prompt is read in chunks, and a chunk's cost grows with its position: every row attends
//! to all the positions before it. On 2 threads, 256 rows of SmolLM2-135M take 145 ms at
//! position 0 and 960 ms at position 7,168, where attention is 85% of the work (2.6 s before
//! the prompt kernel's softmax was vectorised). The serving engine puts other requests' rows
//! into the same forward calls, so a fixed chunk size late in a long prompt made a short
//! request wait that long for its first token (issue 26).
//!
//! So chunks shrink as the prompt grows: each is as long as it can be, up to
//! [`PREFILL_CHUNK`] rows, while its estimated cost stays under [`PrefillSchedule::cap`]
//! (twice the matmul work of a full chunk). The estimate counts a row at position `t` as
//! `1 + t / crossover`, in units of one row's matmul work; `crossover` is the position where
//! a row's attention costs as much as its matmuls, from the model's shape (see
//! [`ATTENTION_SLOWDOWN`]). For SmolLM2-135M it is 1,280: prompts of up to 1,024 tokens keep
//! their 256-row chunks, and chunks near position 8k hold 64 rows (about 0.3 s each where 256
//! rows took 1 s). Smaller chunks cost some throughput (each packs and gathers the keys and
//! values it attends to): an 8k prompt is read in 22.9 s instead of 19.1 s.
//!
//! Boundaries depend on the position and the model alone, never on what shares a forward
//! call. Attention takes a different (equally exact) path for long and short runs of rows,
//! so fixed boundaries are what make a sequence's numbers depend on the sequence alone:
//! `generate` and the serving engine give the same tokens.

use crate::llama::Llama;

/// The most rows in one chunk (the size of every chunk early in a prompt).
pub const PREFILL_CHUNK: usize = 256;

/// Chunk sizes are multiples of this (a KV block), and at least this.
const GRAIN: usize = 16;

/// How much slower attention runs per multiply-add than the linear layers. Measured on
/// SmolLM2-135M (Q4_1, 2 threads, AVX-512, chunks of 256 rows): a row costs 0.57 ms in the
/// matmuls and 0.44 µs more per position it attends to, so attention breaks even at position
/// 1,280, where its flops are 2.4 times fewer than the matmuls'.
pub const ATTENTION_SLOWDOWN: f64 = 2.4;

/// Chunk boundaries for one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefillSchedule {
    /// The position at which a row's attention costs as much as its matmuls.
    crossover: f64,
    /// Sliding-window attention: a row attends to this many positions at most.
    window: Option<usize>,
}

impl PrefillSchedule {
    /// The schedule for `model`'s shape: matmul flops per row against attention flops per
    /// position attended to.
    pub fn for_model(model: &Llama) -> Self {
        let c = &model.config;
        let h = c.hidden_size as f64;
        let qd = (model.n_heads() * model.head_dim()) as f64;
        let kvd = model.kv_dim() as f64;
        let ffn = c.intermediate_size as f64;
        // q, k, v, o and the three MLP projections; the lm_head runs on the last row only.
        let matmul = 2.0 * (h * qd + 2.0 * h * kvd + qd * h + 3.0 * h * ffn);
        // Scores and the weighted sum of values: two multiply-adds per head dimension.
        let attention = 4.0 * qd * ATTENTION_SLOWDOWN;
        Self {
            crossover: (matmul / attention).max(1.0),
            // A window bounds the cost only when every layer has it (Gemma 3's global layers
            // read the whole context).
            window: c
                .sliding_window
                .filter(|&w| w > 0 && (0..c.num_hidden_layers).all(|l| c.is_sliding_layer(l))),
        }
    }

    /// A schedule with the given crossover position (tests, other cost models).
    pub fn with_crossover(crossover: f64) -> Self {
        Self {
            crossover: crossover.max(1.0),
            window: None,
        }
    }

    /// Fixed chunks of [`PREFILL_CHUNK`] rows wherever they are.
    pub fn uniform() -> Self {
        Self {
            crossover: f64::INFINITY,
            window: None,
        }
    }

    /// The position at which a row's attention costs as much as its matmuls.
    pub fn crossover(&self) -> f64 {
        self.crossover
    }

    /// The most a chunk may cost: twice the matmul work of [`PREFILL_CHUNK`] rows.
    pub fn cap(&self) -> f64 {
        2.0 * PREFILL_CHUNK as f64
    }

    /// Estimated cost of rows `[a, b)`, in units of one row's matmul work.
    pub fn cost(&self, a: usize, b: usize) -> f64 {
        if b <= a {
            return 0.0;
        }
        // Sum of the positions attended to beyond the row's own, each capped by the window.
        let sum = |lo: usize, hi: usize| -> f64 {
            // Σ t for t in [lo, hi)
            (hi - lo) as f64 * (lo + hi - 1) as f64 / 2.0
        };
        let attended = match self.window {
            None => sum(a, b),
            Some(w) => {
                let split = b.min(w).max(a);
                sum(a, split) + (b - split) as f64 * w as f64
            }
        };
        (b - a) as f64 + attended / self.crossover
    }

    /// Rows of the chunk that starts at boundary `a`: the most (a multiple of the grain, up
    /// to [`PREFILL_CHUNK`]) that stay under the cap, and never fewer than the grain.
    fn size_at(&self, a: usize) -> usize {
        let mut n = PREFILL_CHUNK;
        while n > GRAIN && self.cost(a, a + n) > self.cap() {
            n -= GRAIN;
        }
        n
    }

    /// The end of the chunk holding position `fed` of a prompt of `len` tokens: the first
    /// boundary after `fed`, at most `len`. A sequence that starts mid-chunk (on cached
    /// prefix blocks) reads up to the same boundary as a cold one.
    pub fn chunk_end(&self, fed: usize, len: usize) -> usize {
        let mut b = 0;
        while b <= fed {
            b += self.size_at(b);
        }
        b.min(len)
    }

    /// Every chunk of a prompt of `len` tokens, as `[start, end)`.
    pub fn chunks(&self, len: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut a = 0;
        while a < len {
            let b = self.chunk_end(a, len);
            out.push((a, b));
            a = b;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_chunks_are_fixed_multiples_of_the_chunk_size() {
        let s = PrefillSchedule::uniform();
        assert_eq!(
            s.chunks(2 * PREFILL_CHUNK + 5),
            vec![(0, 256), (256, 512), (512, 517)]
        );
        assert_eq!(s.chunk_end(300, 10_000), 512);
    }

    #[test]
    fn chunks_shrink_so_that_none_costs_more_than_the_cap() {
        let s = PrefillSchedule::with_crossover(680.0);
        let chunks = s.chunks(8192);
        // Early chunks are full; the cost model keeps them so up to position 768.
        assert_eq!(&chunks[..3], &[(0, 256), (256, 512), (512, 768)]);
        assert!(chunks[3].1 - chunks[3].0 < PREFILL_CHUNK, "{chunks:?}");
        for w in chunks.windows(2) {
            assert_eq!(w[0].1, w[1].0, "contiguous");
            assert!(w[1].1 - w[1].0 <= w[0].1 - w[0].0, "never growing: {w:?}");
        }
        for &(a, b) in &chunks[..chunks.len() - 1] {
            assert!(
                s.cost(a, b) <= s.cap(),
                "chunk {a}..{b} costs {}",
                s.cost(a, b)
            );
            assert!(
                s.cost(a, b + GRAIN) > s.cap() || b - a == PREFILL_CHUNK,
                "chunk {a}..{b} could have been longer"
            );
            assert_eq!((b - a) % GRAIN, 0);
        }
        // Near 8k a row costs about 1 + 8150/680 ≈ 13: 48 rows (625) are over the cap of
        // 512, 32 rows (416) under it.
        let (a, b) = chunks[chunks.len() - 2];
        assert_eq!(b - a, 32, "last chunk {a}..{b}");
        // The whole prompt costs the same however it is cut.
        let total: f64 = chunks.iter().map(|&(a, b)| s.cost(a, b)).sum();
        assert!((total - s.cost(0, 8192)).abs() < 1e-6 * total);
    }

    #[test]
    fn chunk_end_from_inside_a_chunk_is_the_same_boundary() {
        let s = PrefillSchedule::with_crossover(100.0);
        for (a, b) in s.chunks(3000) {
            for fed in [a, a + 1, b - 1] {
                assert_eq!(s.chunk_end(fed, 3000), b, "from {fed}");
            }
        }
        assert_eq!(s.chunk_end(2999, 3000), 3000);
    }

    #[test]
    fn a_tiny_crossover_still_moves_forward_by_the_grain() {
        let s = PrefillSchedule::with_crossover(1.0);
        let chunks = s.chunks(100);
        assert!(chunks.iter().all(|&(a, b)| b > a));
        assert_eq!(chunks[1], (16, 32));
    }

    #[test]
    fn a_sliding_window_bounds_the_cost_of_late_chunks() {
        let mut s = PrefillSchedule::with_crossover(680.0);
        s.window = Some(1024);
        let chunks = s.chunks(100_000);
        let (a, b) = chunks[chunks.len() - 2];
        // Past the window every row costs 1 + 1024/680: 204 rows fit, rounded to 192.
        assert_eq!(b - a, 192, "late chunk {a}..{b}");
        assert_eq!(
            s.cost(50_000, 50_010),
            10.0 * (1.0 + 1024.0 / 680.0),
            "cost past the window"
        );
    }
}
