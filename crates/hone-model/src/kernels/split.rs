//! Elementwise and row-wise work split over the kernel pool's threads: each thread takes one
//! contiguous range of rows of every output. The training passes call these between the
//! matrix products, where one thread would otherwise work while the others wait.

use std::mem::MaybeUninit;
use std::sync::Mutex;

/// Below this many elements (over all outputs) the work stays on the calling thread: waking
/// the pool costs more than it saves.
const SERIAL_BELOW: usize = 1 << 15;

/// Runs `f(first_row, chunks)` over the rows of `K` outputs at once, one contiguous range of
/// rows per pool thread; output `k` has rows of `outs[k].1` elements and all have the same
/// number of rows. `f` sees the same rows of every output.
pub fn par_rows<T: Send, const K: usize>(
    outs: [(&mut [T], usize); K],
    f: impl Fn(usize, [&mut [T]; K]) + Sync,
) {
    if K == 0 {
        return;
    }
    let width = outs[0].1.max(1);
    let rows = outs[0].0.len() / width;
    for (o, w) in &outs {
        assert_eq!(o.len(), rows * w, "par_rows: outputs of unequal rows");
    }
    let total: usize = outs.iter().map(|(o, _)| o.len()).sum();
    let parts = crate::quant::num_threads().min(rows).max(1);
    if parts == 1 || total < SERIAL_BELOW {
        return f(0, outs.map(|(o, _)| o));
    }
    let per = rows.div_ceil(parts);
    let mut iters = outs.map(|(o, w)| o.chunks_mut((per * w).max(1)));
    let chunks: Vec<Mutex<Option<[&mut [T]; K]>>> = (0..rows.div_ceil(per))
        .map(|_| {
            let arr: [&mut [T]; K] =
                std::array::from_fn(|k| iters[k].next().expect("one chunk per part"));
            Mutex::new(Some(arr))
        })
        .collect();
    super::par_map(chunks.len(), |i| {
        let taken = chunks[i].lock().ok().and_then(|mut c| c.take());
        if let Some(arr) = taken {
            f(i * per, arr);
        }
    });
}

/// `n` zeros, written by the pool's threads (a freed buffer the allocator hands out again is
/// cleared by one thread otherwise).
pub fn zeros(n: usize) -> Vec<f32> {
    filled(n, |_, out| out.fill(MaybeUninit::new(0.0)))
}

/// A copy of `src`, made by the pool's threads.
pub fn copied(src: &[f32]) -> Vec<f32> {
    filled(src.len(), |start, out| {
        for (o, s) in out.iter_mut().zip(&src[start..]) {
            *o = MaybeUninit::new(*s);
        }
    })
}

/// A vector of `n` elements, every one written by `fill(first_index, chunk)`.
fn filled(n: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    let spare = &mut v.spare_capacity_mut()[..n];
    par_rows([(spare, 1)], |start, [chunk]| fill(start, chunk));
    // SAFETY: `par_rows` hands every element of `spare[..n]` to exactly one `fill` call, and
    // each call writes every element of its chunk, so the first `n` are initialised.
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_every_output_line_up() {
        crate::quant::set_num_threads(2);
        let rows = 5_000;
        let (mut a, mut b) = (vec![0f32; rows * 8], vec![0f32; rows * 3]);
        par_rows([(&mut a[..], 8), (&mut b[..], 3)], |r0, [ca, cb]| {
            assert_eq!(ca.len() / 8, cb.len() / 3);
            for (i, (ra, rb)) in ca
                .chunks_exact_mut(8)
                .zip(cb.chunks_exact_mut(3))
                .enumerate()
            {
                ra.fill((r0 + i) as f32);
                rb.fill(-((r0 + i) as f32));
            }
        });
        for r in 0..rows {
            assert!(
                a[r * 8..(r + 1) * 8].iter().all(|v| *v == r as f32),
                "row {r}"
            );
            assert!(
                b[r * 3..(r + 1) * 3].iter().all(|v| *v == -(r as f32)),
                "row {r}"
            );
        }
        // Small work runs once, on this thread, with every row.
        let mut small = vec![0f32; 10];
        par_rows([(&mut small[..], 2)], |r0, [c]| {
            assert_eq!((r0, c.len()), (0, 10));
            c.fill(1.0);
        });
        assert_eq!(small, vec![1.0; 10]);
    }

    #[test]
    fn zeros_and_copies_are_whole() {
        crate::quant::set_num_threads(2);
        for n in [0, 7, 100_003] {
            assert_eq!(zeros(n), vec![0.0; n]);
            let src: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            assert_eq!(copied(&src), src);
        }
    }
}
