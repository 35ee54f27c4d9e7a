//! The AMX kernel: eight tile registers of 16 rows x 64 bytes; `tdpbf16ps` multiplies a
//! 16 x 32 bf16 tile by a 32 x 16 one into 16 x 16 f32 sums in one instruction. A block of
//! 32 x 32 outputs keeps four C tiles, two A tiles and two B tiles.
//!
//! Rust has no stable AMX intrinsics, so the few instructions are written with `asm!`. Linux
//! hands out the tile state only to processes that ask (`arch_prctl(ARCH_REQ_XCOMP_PERM)`);
//! without that permission, or on another OS, the kernel is reported unavailable.

use std::arch::asm;
use std::sync::OnceLock;

use super::{PackedA, MBLOCK, PANEL};

pub(super) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_has_amx_bf16() && request_permission())
}

fn cpu_has_amx_bf16() -> bool {
    // Leaf 7 is only meaningful where the CPU reports it.
    if std::arch::x86_64::__cpuid(0).eax < 7 {
        return false;
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    let (bf16, tile) = (edx & (1 << 22) != 0, edx & (1 << 24) != 0);
    bf16 && tile
}

#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: arch_prctl only changes which extended state this process may use.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// The tile configuration (palette 1): every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn all_full() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = 16;
        }
        Self(c)
    }
}

/// Makes sure this thread has the tile configuration loaded (once per thread; it is kept, not
/// released after each product: releasing and reloading it per work item cost more in the
/// kernel's context-switch handling than the products saved at long sequences).
pub(super) struct TileGuard;

thread_local! {
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl TileGuard {
    pub(super) fn new() -> Self {
        CONFIGURED.with(|c| {
            if !c.get() {
                let cfg = TileConfig::all_full();
                // SAFETY: only constructed when `available()` (permission granted); the config
                // is valid.
                unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack)) };
                c.set(true);
            }
        });
        TileGuard
    }
}

/// One `[MBLOCK, PANEL]` block over the reduction slice `ks` into `tile` (row stride `PANEL`
/// floats).
///
/// # Safety
/// AMX must be available and a [`TileGuard`] alive on this thread; `a` holds at least
/// `row0 + MBLOCK` padded rows and the panel `a.k_pad / 2` pair rows of `2 * PANEL` bf16.
pub(super) unsafe fn block(
    a: &PackedA,
    panel: &[u16],
    row0: usize,
    ks: (usize, usize),
    tile: &mut [f32],
) {
    debug_assert!(tile.len() >= MBLOCK * PANEL);
    block_into(a, panel, row0, ks, tile.as_mut_ptr(), PANEL)
}

/// [`block`] stored straight into a `[MBLOCK, PANEL]` block of a larger matrix at `out`, row
/// stride `ld` floats (no copy through a tile buffer).
///
/// # Safety
/// As [`block`], and `out` must be valid for writes of `MBLOCK` rows of `PANEL` floats at
/// stride `ld`.
pub(super) unsafe fn block_into(
    a: &PackedA,
    panel: &[u16],
    row0: usize,
    ks: (usize, usize),
    out: *mut f32,
    ld: usize,
) {
    debug_assert!(panel.len() >= a.k_pad * PANEL);
    let a_stride = a.k_pad * 2;
    let b_stride = PANEL * 4;
    let a0 = a.row(row0).as_ptr();
    let a1 = a.row(row0 + 16).as_ptr();
    let bp = panel.as_ptr();
    asm!(
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        options(nostack)
    );
    for kk in (ks.0..ks.1).step_by(32) {
        let b0 = bp.add(kk * PANEL);
        asm!(
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tileloadd tmm6, [{b0} + {sb}*1]",
            "tileloadd tmm7, [{b1} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a0.add(kk),
            a1 = in(reg) a1.add(kk),
            b0 = in(reg) b0,
            b1 = in(reg) b0.add(PANEL),
            sa = in(reg) a_stride,
            sb = in(reg) b_stride,
            options(nostack)
        );
    }
    let c = out;
    let sc = ld * 4;
    asm!(
        "tilestored [{c0} + {sc}*1], tmm0",
        "tilestored [{c1} + {sc}*1], tmm1",
        "tilestored [{c2} + {sc}*1], tmm2",
        "tilestored [{c3} + {sc}*1], tmm3",
        c0 = in(reg) c,
        c1 = in(reg) c.add(16),
        c2 = in(reg) c.add(16 * ld),
        c3 = in(reg) c.add(16 * ld + 16),
        sc = in(reg) sc,
        options(nostack)
    );
}
