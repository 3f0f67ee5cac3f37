//! Cache blocks (KC, MC, NC, NG) from the cache sizes this CPU reports.
//!
//! The macro-kernel walks the W̃ panels in groups of NG: for each MR-row tile of the
//! `MC × KC` x block, every panel of the group (JR inside IR), so the tile's x is reused from L1
//! NG times while the group's `NG·KC·NR` floats stay in L2; the `KC × NC` W̃ block is reused for
//! every row block. The micro-kernel
//! does NR·MR/… = 12 FMAs per panel load (AVX2), so the panel can stream from L2 at a fraction of
//! its bandwidth; what costs is every extra K block, which reloads and re-stores the output
//! tile. Measured on the Zen 3 test machine (seed shape, same-run ratios): KC 768 (one block for
//! d_in = 768) ran the packed layer 9 % faster than KC 256 and the one-shot call 15 % faster.
//! So:
//!
//! - KC: 1.5 × L1 ÷ 64 bytes, so a 16-wide panel fills about 1.5 × L1 (768 on 32 KiB), at
//!   least 128 and at most the ISA's cap. AVX-512's 32-wide panel is then 3 × L1 (96 KiB at
//!   KC 768) and streams from L2 at 128 bytes per 24 FMAs; the x tile (12 × 768 floats) is
//!   about L1. On the Zen 4 (in-process A/B against KC 384, the rule's old 1.5 × L1 for 32-wide
//!   panels: two K blocks at d_in 768): `forward` at the seed shape 0.982–0.983 × the time on
//!   1 thread (40 rounds, the default repeated as a control: 0.997, 1.005), 0.94 on 2 threads;
//!   ranks 16–128 0.998–1.007 (1 thread), rank 128 0.963 (2); long2048 0.987 / 0.963;
//!   prefill512 0.968–0.981; decode 0.98–1.01 (docs/PERFORMANCE.md, eighteenth session);
//! - MC: large. Each tile streams its MR x rows at MR·4 bytes per MR·NR/… k step, about 4
//!   bytes per cycle whatever MC is, which L3 sustains; a larger MC reuses each W̃ panel over
//!   more tiles and lets a one-shot call with rows ≤ MC pack each panel just in time (not a
//!   whole KC × NC block through L3). Measured (same-run pairs, Zen 3): prefill512 MC 516
//!   beat MC 168 in 3 of 3 pairs for both paths (layer 202/199/207 vs 213/202/223 ms), long2048
//!   equal or better. So MC ≈ 3 × L2 / (KC·4), at most 516, rounded up to a multiple of MR
//!   (the driver then cuts the rows into ⌈rows/MC⌉ nearly equal blocks);
//! - NC: the W̃ block fills about a quarter of L3 (shared with the other core and with x, y);
//! - NG: the panel group fills about ¾ of L2 (8 panels at KC 768 on 512 KiB). With MC rows of
//!   x larger than L2 (prefill512: 512 × 683 floats), NG = 1 streamed every x tile from L3 once
//!   per panel; grouping cut that 8× (kernel-only runs: 85.8 → 90.3 GFLOP/s at NG 8); at the
//!   seed shape it made no measurable difference.
//! - MC_packed, NG_packed: for W̃ packed beforehand (`LoraLinear`), or by a one-shot call
//!   with more rows than MC (it packs each KC × NC block whole first), where nothing is packed
//!   just in time, the x block fills half of L2 and the group three eighths (84 rows and 4
//!   panels here), so x stays in L2 across all groups and W̃ streams once per row block (with
//!   MC 516 the seed shape's 160 × 768 x block, 480 KiB, was re-read from L3 for each of 24
//!   groups). Seed, 1 thread, in-process A/B of MC/NG 84/4 against 516/8, medians of
//!   per-round ratios: 0.972, 0.977, 0.978, 0.986, 0.987, 0.996 (6 runs of 40–80 rounds; 0.990
//!   and 0.999 in two more during a noisy phase); rank 128: 0.987, 0.989, 0.997 and 1.016;
//!   prefill512 (84 → 90 rows at KC 683): 0.948, 0.992, 1.003, 1.005.
//!   With 1 MiB of L2 or more ([`PACKED_FULL_L2`]) the x block fills L2 instead: on the Zen 4
//!   (1 MiB L2, 32 MiB L3), in-process A/B of MC_packed 336 against half of L2's 168, NG 4
//!   both, seed layer (768 → 3072), medians of per-round ratios: 176–512 rows 0.960–0.992 ×
//!   the time on 1 thread (the default repeated as a control: 0.993–0.999), 1024 and 2048
//!   rows 0.989–1.002; 2 threads 0.977–1.004 at 176–512 rows (controls 1.001–1.012). Each
//!   pass of the KC × NC block from L3 costs its trip (docs/PERFORMANCE.md, twenty-first
//!   session: 3.6–8.5 points of the FMA probe), and a single row block makes one pass where
//!   two made two, while x's MR row streams come back from L3 at a rate it sustains. The
//!   160-row seed shape (one block either way) does not change. The Zen 3 A/B above changed
//!   NG with MC, and smaller L2s were not measured again, so below 1 MiB the half stays.
//! - MC_streamed: for prepacked W̃ larger than half of L3 (`w_resident_max`), which then comes
//!   from memory for every row block rather than from L3: the x block fills L2 (168 rows
//!   here), so W̃ is streamed half as often. On a Zen 1 EPYC (512 KiB L2, 8 MiB L3, so the
//!   seed shape's 9.4 MiB W̃ does not stay in L3), in-process A/B against MC 84, medians of
//!   per-round ratios: seed 0.977–0.983 (1 thread, ranks 0, 8, 64), 0.973–0.979 (2 threads);
//!   long2048 0.979–0.993 (1 thread), 0.978–0.987 (2); prefill512 0.988–1.001. With W̃ in L3
//!   (the Zen 3 runs above) MC 84 stays.
//!
//! - Lean hints: whether compute-bound calls (the lean k loop, many row tiles per W̃ panel)
//!   prefetch the next panel group into L2 (PREFETCHT2). Off on AMD family 17h (Zen 1, Zen 2),
//!   whose cores fill L1 on PREFETCHT1/T2 as on T0 (AMD documents T1/T2 filling only L2 from
//!   Zen 4 on): there each hint evicts a line of the x tile or panel in use. On a Zen 1 EPYC,
//!   in-process A/B, no hints in those calls ran every compute-bound shape in 0.974–0.997 × the
//!   time (seed ranks 0–128, long2048, prefill512, 48–160 rows; 1 and 2 threads), decode-like
//!   calls (which keep theirs) unchanged. Measured on Zen 1 only; Zen 2 shares the family.
//!   Elsewhere they stay on (on the Zen 3 they were worth ~10 % at 48 rows).
//!
//! - Streamed output (`stream_min`): a y of at least L2's size, written once (d_in in one K
//!   block) by compute-bound calls on the AVX-512 path, on whole cache lines, is stored past the
//!   caches (`gemm::Store::Stream`): its lines then cost no read for ownership and do not evict
//!   the x block and the W̃ groups from L2. Zen 4, in-process A/B against never streaming,
//!   aligned y: 0.983–0.993 × the time at 96–2048 rows × 768 → 3072 on 1 thread, 0.957–0.997
//!   on 2 (the setting repeated as a control: 0.993–1.006, 0.991–1.008); at 64 rows (a y
//!   below L2) 1.013 × in the scratch run that set the threshold (its control 0.997). On the
//!   AVX2 path 1.016–1.028 × the time, so off there (docs/PERFORMANCE.md, twenty-second
//!   session).
//!
//! `FUSED_LORA_BLOCKING=kc=256,mc=240,nc=4096,ng=4,hints=0` overrides any of them (for tuning
//! experiments; `mc` also sets MC_packed and MC_streamed, `ng` also NG_packed, `hints` 0 or 1
//! the lean hints, `stream` the streamed-output threshold in bytes: 0 streams every eligible
//! call, a huge value none; `quiet` the most rows of a call over packed W̃ that issues no
//! next-group hints, `KernelSet::quiet_max_rows`).

use std::sync::OnceLock;

/// Per-core data cache sizes in bytes (L3: the whole cache the core sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caches {
    pub l1d: usize,
    pub l2: usize,
    pub l3: usize,
}

impl Caches {
    /// Used when the OS does not say (typical of current x86 server cores).
    pub const DEFAULT: Caches = Caches {
        l1d: 32 << 10,
        l2: 512 << 10,
        l3: 32 << 20,
    };

    /// The caches of CPU 0, read once (Linux sysfs; the defaults elsewhere).
    pub fn detect() -> Caches {
        static C: OnceLock<Caches> = OnceLock::new();
        *C.get_or_init(|| read_sysfs().unwrap_or(Caches::DEFAULT))
    }
}

fn read_sysfs() -> Option<Caches> {
    let mut c = Caches {
        l1d: 0,
        l2: 0,
        l3: 0,
    };
    for i in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let Ok(level) = std::fs::read_to_string(format!("{dir}/level")) else {
            break;
        };
        let kind = std::fs::read_to_string(format!("{dir}/type")).ok()?;
        let size = parse_size(&std::fs::read_to_string(format!("{dir}/size")).ok()?)?;
        match (level.trim(), kind.trim()) {
            ("1", "Data") => c.l1d = size,
            ("2", "Unified" | "Data") => c.l2 = size,
            ("3", "Unified") => c.l3 = size,
            _ => {}
        }
    }
    let l3 = if c.l3 > 0 { c.l3 } else { c.l2 };
    (c.l1d > 0 && c.l2 > 0).then_some(Caches { l3, ..c })
}

fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mult)
}

/// The cache blocks of one ISA on one CPU (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    pub kc: usize,
    /// MC and NG when W̃ is packed during the call (the one-shot API).
    pub mc: usize,
    pub ng: usize,
    pub nc: usize,
    /// MC and NG for W̃ packed beforehand (a `LoraLinear`): the x block fits half of L2 and
    /// the panel group three eighths, so x stays in L2 across all groups.
    pub mc_packed: usize,
    pub ng_packed: usize,
    /// MC for prepacked W̃ of more than `w_resident_max` bytes (half of L3), which streams
    /// from memory once per row block: the x block fills L2.
    pub mc_streamed: usize,
    pub w_resident_max: usize,
    /// Whether compute-bound calls issue next-group L2 hints (see the module doc).
    pub lean_hints: bool,
    /// Outputs from this many bytes on are stored past the caches (see the module doc).
    pub stream_min: usize,
    /// `FUSED_LORA_BLOCKING=quiet=N`: overrides the ISA's `KernelSet::quiet_max_rows`.
    pub quiet_max_rows: Option<usize>,
}

/// Whether compute-bound calls should issue next-group L2 hints on a CPU of this vendor and
/// family: not on AMD family 17h (Zen 1, Zen 2), where PREFETCHT2 fills L1.
fn lean_hints_for(amd: bool, family: u32) -> bool {
    !(amd && family == 0x17)
}

/// (AMD?, family) of this CPU from CPUID; `None` off x86-64.
fn cpu_vendor_family() -> Option<(bool, u32)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // SAFETY: CPUID and its leaves 0 (vendor) and 1 (family) exist on every x86-64 CPU.
        // (`__cpuid` is a safe function in newer toolchains; the block keeps older ones, down
        // to the workspace's rust-version, compiling.)
        #[allow(unused_unsafe)]
        let (l0, l1) = unsafe { (__cpuid(0), __cpuid(1)) };
        let amd = (l0.ebx, l0.edx, l0.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
        let base = (l1.eax >> 8) & 0xf;
        let family = if base == 0xf {
            base + ((l1.eax >> 20) & 0xff)
        } else {
            base
        };
        Some((amd, family))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// From this L2 size on, a prepacked W̃'s row blocks are x blocks that fill L2, not half of it
/// (MC_packed; see the module doc).
pub const PACKED_FULL_L2: usize = 1 << 20;

/// The blocks for an MR × NR tile with these caches; `kc_cap` bounds KC for the ISA.
pub fn derive(mr: usize, nr: usize, kc_cap: usize, c: Caches) -> Blocks {
    let kc = (c.l1d * 3 / 2 / 64).clamp(128, kc_cap.max(128)) / 8 * 8;
    let mc = ((3 * c.l2 / (kc * 4)).min(516).div_ceil(mr) * mr).max(mr);
    let nc = ((c.l3 / 4 / (kc * 4)) / nr * nr).clamp(nr, 16384);
    let (mut kc, mut mc, mut nc, mut ng) = (kc, mc, nc, 0);
    let (mut mc_packed, mut ng_packed, mut mc_streamed) = (0, 0, 0);
    let mut lean_hints = cpu_vendor_family().is_none_or(|(amd, f)| lean_hints_for(amd, f));
    let mut stream_min = c.l2;
    let mut quiet_max_rows = None;
    if let Ok(v) = std::env::var("FUSED_LORA_BLOCKING") {
        for part in v.split(',') {
            let mut it = part.splitn(2, '=');
            let (Some(key), Some(val)) = (
                it.next(),
                it.next().and_then(|x| x.trim().parse::<usize>().ok()),
            ) else {
                continue;
            };
            match key.trim() {
                "kc" if val > 0 => kc = val,
                "mc" if val > 0 => {
                    mc = val.div_ceil(mr) * mr;
                    mc_packed = mc;
                    mc_streamed = mc;
                }
                "nc" if val > 0 => nc = val.div_ceil(nr) * nr,
                "ng" if val > 0 => {
                    ng = val;
                    ng_packed = val;
                }
                "hints" => lean_hints = val != 0,
                "stream" => stream_min = val,
                "quiet" => quiet_max_rows = Some(val),
                _ => {}
            }
        }
    }
    if ng == 0 {
        ng = (c.l2 * 3 / 4 / (kc * nr * 4)).max(1);
    }
    if mc_packed == 0 {
        // x fills half of L2, or all of it from 1 MiB of L2 on (see the module doc).
        let x_bytes = if c.l2 >= PACKED_FULL_L2 {
            c.l2
        } else {
            c.l2 / 2
        };
        mc_packed = ((x_bytes / (kc * 4)) / mr * mr).clamp(mr, mc);
    }
    if ng_packed == 0 {
        ng_packed = (c.l2 * 3 / 8 / (kc * nr * 4)).max(1);
    }
    if mc_streamed == 0 {
        mc_streamed = ((c.l2 / (kc * 4)) / mr * mr).clamp(mc_packed, mc.max(mc_packed));
    }
    Blocks {
        kc,
        mc,
        ng,
        nc,
        mc_packed,
        ng_packed,
        mc_streamed,
        w_resident_max: c.l3 / 2,
        lean_hints,
        stream_min,
        quiet_max_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn derived_blocks_fit() {
        let c = Caches {
            l1d: 32 << 10,
            l2: 512 << 10,
            l3: 32 << 20,
        };
        let b = derive(6, 16, 768, c);
        assert_eq!(b.ng, 8);
        assert_eq!(b.kc, 768);
        assert_eq!((b.mc, b.mc % 6), (516, 0));
        // Packed W̃: 84 rows of x (252 KiB) and 4 panels (192 KiB) in the 512 KiB L2.
        assert_eq!((b.mc_packed, b.ng_packed), (84, 4));
        // W̃ beyond half of L3: x blocks of 168 rows (504 KiB), the whole L2.
        assert_eq!((b.mc_streamed, b.w_resident_max), (168, 16 << 20));
        // Outputs stream from L2's size on.
        assert_eq!(b.stream_min, 512 << 10);
        // AVX-512 (32-wide panels): the same KC, its panel 3 × L1.
        assert_eq!(derive(12, 32, 768, c).kc, 768);
        assert_eq!(derive(12, 32, 384, c).kc, 384);
        // Zen 4 (1 MiB L2): prepacked W̃'s x block fills L2, as the streamed one does.
        let zen4 = derive(12, 32, 768, Caches { l2: 1 << 20, ..c });
        assert_eq!(
            (zen4.mc_packed, zen4.mc_streamed, zen4.ng_packed),
            (336, 336, 4)
        );
        // Just under 1 MiB: half of L2.
        let under = derive(
            12,
            32,
            768,
            Caches {
                l2: (1 << 20) - 4096,
                ..c
            },
        );
        assert_eq!(under.mc_packed, 168);
        // Zen 1 EPYC: 8 MiB L3, so W̃ beyond 4 MiB (the seed shape's 9 MiB) counts as streamed.
        let zen1 = derive(6, 16, 768, Caches { l3: 8 << 20, ..c });
        assert_eq!((zen1.mc_packed, zen1.mc_streamed), (84, 168));
        assert_eq!(zen1.w_resident_max, 4 << 20);
        // A small L2: the streamed MC never drops below the packed one.
        let small = derive(6, 16, 768, Caches { l2: 128 << 10, ..c });
        assert!(small.mc_streamed >= small.mc_packed && small.mc_streamed.is_multiple_of(6));
        assert_eq!(b.nc % 16, 0);
    }

    #[test]
    fn lean_hints_off_only_on_amd_family_17h() {
        assert!(!lean_hints_for(true, 0x17)); // Zen 1, Zen 2
        assert!(lean_hints_for(true, 0x19)); // Zen 3, Zen 4
        assert!(lean_hints_for(true, 0x1a));
        assert!(lean_hints_for(false, 0x17)); // not AMD: family numbers mean other cores
        assert!(lean_hints_for(false, 6));
    }
}
