//! BF16 matrix products for training: `C[m, n] (+)= A[m, k] · B[k, n]` with `A` in f32
//! (rounded to bf16 on the way in), `B` a frozen weight packed once in bf16, and every sum
//! accumulated in f32.
//!
//! Training spends most of its time multiplying activations and gradients by frozen weights
//! (the forward pass and the gradient through each projection). Those products do not need
//! f32 operands: the weights came from a 4-bit file, and bf16 keeps f32's range with an 8-bit
//! mantissa, so the loss curve follows the f32 one (see docs/training.md). In exchange the CPU
//! does twice the work per instruction (AVX-512 BF16 `vdpbf16ps`) or, where the CPU has AMX,
//! a 16 x 16 x 32 block per instruction.
//!
//! Three kernels give the same numbers up to the order of f32 additions: [`Kernel::Amx`]
//! (tile registers), [`Kernel::Avx512`] (`vdpbf16ps`) and [`Kernel::Scalar`] (the reference,
//! and the fallback on CPUs without BF16 instructions). [`Kernel::best`] picks the fastest the
//! CPU has; `HONE_BF16_KERNEL=amx|avx512|scalar` forces one (for benchmarks).

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod small;
mod weights;

pub use small::{pack_kn, pack_nk, small_gemm, SmallA};
pub use weights::Bf16Weights;

use std::sync::OnceLock;

/// Columns per packed panel: two AMX B tiles, or two `vdpbf16ps` registers.
pub(crate) const PANEL: usize = 32;
/// Rows per block of the output that one kernel call fills (two AMX C tile rows).
pub(crate) const MBLOCK: usize = 32;
/// The reduction dimension is padded to this (one AMX A tile row of bf16).
pub(crate) const KSTEP: usize = 32;

/// f32 to bf16, rounding to nearest even (as `vcvtne2ps2bf16`); NaN stays NaN.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 to f32 (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// The right-hand operand `B[k, n]` in bf16, laid out for the kernels: panels of [`PANEL`]
/// columns; within a panel, for each pair of rows `(2p, 2p + 1)`, the 32 columns' pairs side by
/// side (`[B[2p][j], B[2p+1][j]]` for each `j`). That is the AMX B-tile layout (one 64-byte tile
/// row per pair, 16 columns) and the `vdpbf16ps` operand layout alike. `k` is padded with zeros
/// to a multiple of [`KSTEP`], `n` to a multiple of [`PANEL`].
#[derive(Clone)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    k_pad: usize,
    data: Vec<u16>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedBf16 {{ k: {}, n: {} }}", self.k, self.n)
    }
}

impl PackedBf16 {
    fn build(k: usize, n: usize, get: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let k_pad = round_up(k.max(1), KSTEP);
        let panels = n.div_ceil(PANEL);
        let per_panel = k_pad * PANEL;
        let mut data = vec![0u16; panels * per_panel];
        let fill = |p: usize, out: &mut [u16]| {
            for kk in 0..k {
                let (pair, half) = (kk / 2, kk % 2);
                for jj in 0..PANEL.min(n - p * PANEL) {
                    out[pair * 2 * PANEL + jj * 2 + half] = to_bf16(get(kk, p * PANEL + jj));
                }
            }
        };
        if k * n >= 1 << 20 {
            use rayon::prelude::*;
            data.par_chunks_mut(per_panel)
                .enumerate()
                .for_each(|(p, out)| fill(p, out));
        } else {
            // Small operands (attention's, packed inside a parallel task) stay on this thread.
            data.chunks_mut(per_panel)
                .enumerate()
                .for_each(|(p, out)| fill(p, out));
        }
        Self { k, n, k_pad, data }
    }

    /// Packs `B` given row-major as `[k, n]`.
    pub fn from_kn(b: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(b.len(), k * n, "PackedBf16::from_kn: length");
        Self::build(k, n, |kk, j| b[kk * n + j])
    }

    /// Packs `B = Wᵀ` for `W` given row-major as `[n, k]` (a linear layer's `[out, in]`
    /// weight, so that `x · Wᵀ` is the layer's forward product).
    pub fn from_nk(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedBf16::from_nk: length");
        Self::build(k, n, |kk, j| w[j * k + kk])
    }

    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n(&self) -> usize {
        self.n
    }
    fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }
    /// The packed data of panel `p`: `k_pad / 2` rows of `2 * PANEL` bf16.
    pub(crate) fn panel(&self, p: usize) -> &[u16] {
        let per = self.k_pad * PANEL;
        &self.data[p * per..(p + 1) * per]
    }
    /// `B[k][j]` as stored (rounded to bf16).
    pub fn get(&self, k: usize, j: usize) -> f32 {
        let (p, jj) = (j / PANEL, j % PANEL);
        from_bf16(self.panel(p)[(k / 2) * 2 * PANEL + jj * 2 + k % 2])
    }
    /// Bytes of storage.
    pub fn storage_bytes(&self) -> usize {
        self.data.len() * 2
    }
}

/// The left-hand operand rounded to bf16, row-major `[m_pad, k_pad]`, zero-padded.
pub(crate) struct PackedA<'a> {
    pub(crate) data: &'a [u16],
    pub(crate) k_pad: usize,
}

impl<'a> PackedA<'a> {
    /// Rounds `a` into `buf` (reused between calls: a fresh zeroed buffer per product was 7%
    /// of a training step in memset and page faults).
    fn new(a: &[f32], m: usize, k: usize, k_pad: usize, buf: &'a mut Vec<u16>) -> Self {
        let m_pad = round_up(m.max(1), MBLOCK);
        buf.resize(m_pad * k_pad, 0);
        let conv = |(row, out): (usize, &mut [u16])| {
            if row < m {
                to_bf16_row(&a[row * k..(row + 1) * k], &mut out[..k]);
                out[k..].fill(0);
            } else {
                out.fill(0);
            }
        };
        let data = &mut buf[..m_pad * k_pad];
        if m * k >= 1 << 16 {
            // Row groups on the kernel pool (not rayon: two pools spinning against each other
            // on two cores cost more than the conversion).
            const GROUP: usize = 16;
            let groups: Vec<std::sync::Mutex<&mut [u16]>> = data
                .chunks_mut(GROUP * k_pad)
                .map(std::sync::Mutex::new)
                .collect();
            crate::quant::parallel_for(groups.len(), &|g| {
                let mut rows = groups[g].lock().unwrap_or_else(|e| e.into_inner());
                for (j, out) in rows.chunks_mut(k_pad).enumerate() {
                    conv((g * GROUP + j, out));
                }
            });
        } else {
            data.chunks_mut(k_pad).enumerate().for_each(conv);
        }
        let data = &buf[..m_pad * k_pad];
        Self { data, k_pad }
    }
    /// Row `r` (of the padded matrix).
    pub(crate) fn row(&self, r: usize) -> &[u16] {
        &self.data[r * self.k_pad..(r + 1) * self.k_pad]
    }
}

thread_local! {
    /// The calling thread's buffer for [`PackedA`].
    static A_BUF: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn to_bf16_row(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: the CPU has AVX-512 BF16 (checked above); lengths are equal.
        unsafe { avx512::to_bf16_row(src, dst) };
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = to_bf16(*s);
    }
}

/// Whether the CPU's vendor string is AMD's.
fn cpu_is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // leaf 0: the vendor string, in EBX, EDX, ECX
        let r = std::arch::x86_64::__cpuid(0);
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&r.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&r.edx.to_le_bytes());
        v[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &v == b"AuthenticAMD"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Which instructions run the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AMX tiles (`tdpbf16ps`), Intel Sapphire Rapids and later.
    Amx,
    /// AVX-512 BF16 (`vdpbf16ps`), Intel Cooper Lake / Sapphire Rapids, AMD Zen 4 and later.
    Avx512,
    /// Plain Rust, for CPUs without BF16 instructions and as the tests' reference.
    Scalar,
}

impl Kernel {
    /// Whether this CPU (and OS) can run the kernel.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => amx::available(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::available(),
            Kernel::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest kernel this CPU runs, unless `HONE_BF16_KERNEL` names one.
    pub fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            let forced = match std::env::var("HONE_BF16_KERNEL").ok().as_deref() {
                Some("amx") => Some(Kernel::Amx),
                Some("avx512") => Some(Kernel::Avx512),
                Some("scalar") => Some(Kernel::Scalar),
                _ => None,
            };
            if let Some(k) = forced.filter(|k| k.available()) {
                return k;
            }
            [Kernel::Amx, Kernel::Avx512]
                .into_iter()
                .find(|k| k.available())
                .unwrap_or(Kernel::Scalar)
        })
    }

    /// Whether products through this kernel outrun the f32 gemm on this CPU, so that a
    /// training `dtype = "auto"` should use it. AMX does everywhere. `vdpbf16ps` does on AMD
    /// (Zen 4 and later issue it at full 512-bit rate, two products per lane: `hone bench
    /// train` 1,050 against 748 tok/s on an EPYC) but not on Intel, where it shares one port
    /// while f32 FMAs have two (170-190 against 265-300 GFLOP/s on a Sapphire Rapids Xeon).
    pub fn beats_f32(self) -> bool {
        match self {
            Kernel::Amx => true,
            Kernel::Avx512 => cpu_is_amd(),
            Kernel::Scalar => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Avx512 => "avx512_bf16",
            Kernel::Scalar => "scalar",
        }
    }
}

/// `C[m, n] (+)= A[m, k] · B` with the fastest kernel; `a` is row-major `[m, k]`, `c` row-major
/// `[m, n]`. With `acc` the product is added to `c`.
pub fn gemm(m: usize, a: &[f32], b: &PackedBf16, c: &mut [f32], acc: bool) {
    gemm_with(Kernel::best(), m, a, b, c, acc)
}

/// [`gemm`] with a chosen kernel (which must be [`Kernel::available`]).
pub fn gemm_with(kernel: Kernel, m: usize, a: &[f32], b: &PackedBf16, c: &mut [f32], acc: bool) {
    let (k, n) = (b.k, b.n);
    assert_eq!(a.len(), m * k, "bf16::gemm: A length");
    assert_eq!(c.len(), m * n, "bf16::gemm: C length");
    assert!(
        kernel.available(),
        "bf16 kernel {kernel:?} is not available"
    );
    if m == 0 || n == 0 {
        return;
    }
    A_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => product(kernel, m, a, b, c, acc, &mut buf),
        // Re-entered on this thread (a product inside a product's job): a buffer of its own.
        Err(_) => product(kernel, m, a, b, c, acc, &mut Vec::new()),
    })
}

fn product(
    kernel: Kernel,
    m: usize,
    a: &[f32],
    b: &PackedBf16,
    c: &mut [f32],
    acc: bool,
    buf: &mut Vec<u16>,
) {
    let (k, n) = (b.k, b.n);
    let pa = PackedA::new(a, m, k, b.k_pad, buf);
    let plan = Plan::new(m, b.k_pad, b.panels());
    let out = SyncPtr(c.as_mut_ptr());
    let job = |i: usize| {
        let (gi, gj) = (i / plan.pgroups, i % plan.pgroups);
        let mut tile = [0f32; MBLOCK * PANEL];
        let blocks = gi * plan.mgroup..((gi + 1) * plan.mgroup).min(plan.mblocks);
        let panels = gj * plan.pgroup..((gj + 1) * plan.pgroup).min(b.panels());
        let _amx = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => Some(amx::TileGuard::new()),
            _ => None,
        };
        for k0 in (0..b.k_pad).step_by(plan.kc) {
            let k1 = (k0 + plan.kc).min(b.k_pad);
            // The first slice of the sum writes (or adds to) C as asked, later ones add.
            let add = acc || k0 > 0;
            for p in panels.clone() {
                for mb in blocks.clone() {
                    block(kernel, &pa, b, mb * MBLOCK, p, (k0, k1), &mut tile);
                    let rows = MBLOCK.min(m - mb * MBLOCK);
                    let cols = PANEL.min(n - p * PANEL);
                    for r in 0..rows {
                        let off = (mb * MBLOCK + r) * n + p * PANEL;
                        // SAFETY: each (row block, panel) pair is written by exactly one work
                        // item, and `off + cols <= m * n` by construction.
                        let dst =
                            unsafe { std::slice::from_raw_parts_mut(out.get().add(off), cols) };
                        let src = &tile[r * PANEL..r * PANEL + cols];
                        if add {
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                        } else {
                            dst.copy_from_slice(src);
                        }
                    }
                }
            }
        }
    };
    crate::quant::parallel_for(plan.mgroups * plan.pgroups, &job);
}

/// How a product is cut into work items: groups of row blocks and of panels whose slices of
/// the operands (`kc` of the reduction at a time) stay in L2 while every pair is multiplied.
/// Without the slicing, the lm_head's gradient (a sum over 49,152 vocabulary entries)
/// streamed 6 MB of operands from memory per 32 x 32 block.
struct Plan {
    mblocks: usize,
    kc: usize,
    mgroup: usize,
    pgroup: usize,
    mgroups: usize,
    pgroups: usize,
}

impl Plan {
    /// Bytes of each operand's slice a work item keeps in L2 (the caches are 2 MB per core).
    const BUDGET: usize = 512 << 10;
    /// The longest slice of the reduction per pass.
    const KC: usize = 2048;

    fn new(m: usize, k_pad: usize, panels: usize) -> Self {
        let mblocks = m.div_ceil(MBLOCK);
        let kc = k_pad.min(Self::KC);
        let mut mgroup = (Self::BUDGET / (MBLOCK * kc * 2)).clamp(1, mblocks);
        let mut pgroup = (Self::BUDGET / (PANEL * kc * 2)).clamp(1, panels);
        // Enough items for every thread to claim several (dynamic claiming evens them out).
        let want = 4 * crate::quant::num_threads();
        while mblocks.div_ceil(mgroup) * panels.div_ceil(pgroup) < want
            && (mgroup > 1 || pgroup > 1)
        {
            if pgroup >= mgroup {
                pgroup = pgroup.div_ceil(2);
            } else {
                mgroup = mgroup.div_ceil(2);
            }
        }
        Self {
            mblocks,
            kc,
            mgroup,
            pgroup,
            mgroups: mblocks.div_ceil(mgroup),
            pgroups: panels.div_ceil(pgroup),
        }
    }
}

/// One `[MBLOCK, PANEL]` block of the product over the reduction slice `k0..k1` into `tile`
/// (overwritten).
fn block(
    kernel: Kernel,
    a: &PackedA,
    b: &PackedBf16,
    row0: usize,
    p: usize,
    ks: (usize, usize),
    tile: &mut [f32],
) {
    match kernel {
        // SAFETY: availability was asserted by `gemm_with`; the operands are padded to whole
        // blocks and `ks` to multiples of KSTEP, which is all the kernels read.
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx => unsafe { amx::block(a, b.panel(p), row0, ks, tile) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { avx512::block(a, b.panel(p), row0, ks, tile) },
        _ => scalar_block(a, b.panel(p), row0, ks, tile),
    }
}

fn scalar_block(a: &PackedA, panel: &[u16], row0: usize, ks: (usize, usize), tile: &mut [f32]) {
    tile.fill(0.0);
    for r in 0..MBLOCK {
        let ar = a.row(row0 + r);
        let out = &mut tile[r * PANEL..(r + 1) * PANEL];
        for pair in ks.0 / 2..ks.1 / 2 {
            let bp = &panel[pair * 2 * PANEL..(pair + 1) * 2 * PANEL];
            let (a0, a1) = (from_bf16(ar[2 * pair]), from_bf16(ar[2 * pair + 1]));
            if a0 == 0.0 && a1 == 0.0 {
                continue;
            }
            for (o, bb) in out.iter_mut().zip(bp.chunks_exact(2)) {
                *o += a0 * from_bf16(bb[0]) + a1 * from_bf16(bb[1]);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: the pointer is only used for disjoint writes (see `gemm_with`).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
pub(crate) mod tests;
