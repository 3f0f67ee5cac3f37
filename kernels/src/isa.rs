//! Runtime CPU dispatch: which instruction set runs, detected once and cached.
//!
//! The library is built for the default target (x86-64 baseline or aarch64) and still runs the
//! best kernels the CPU has: AVX-512F, AVX2+FMA, NEON, or the portable `wide` fallback. The
//! environment variable `FUSED_LORA_ISA` (`portable`, `avx2`, `avx512`, `neon`) caps the choice at a
//! lower path, so tests and benchmarks can cover every path on one machine; it can never select
//! an ISA the CPU lacks (that would be undefined behaviour), it only lowers.

use std::sync::OnceLock;

/// An instruction-set path. Ordered from the most portable to the widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust with `wide` vectors: runs everywhere.
    Portable,
    /// aarch64 Advanced SIMD (128-bit).
    Neon,
    /// x86-64 AVX2 + FMA (256-bit).
    Avx2,
    /// x86-64 AVX-512F (512-bit, masked edges).
    Avx512,
}

/// The environment variable that caps the ISA (read once per process).
pub const ISA_ENV: &str = "FUSED_LORA_ISA";

impl Isa {
    /// Every path, most portable first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Neon, Isa::Avx2, Isa::Avx512];

    /// Lower-case name, as accepted by `FUSED_LORA_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Neon => "neon",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a name as written in `FUSED_LORA_ISA` (case-insensitive).
    pub fn from_name(s: &str) -> Option<Isa> {
        let s = s.trim().to_ascii_lowercase();
        Isa::ALL.into_iter().find(|i| i.name() == s)
    }

    /// Whether this CPU can run the path (cached detection; the portable path always can).
    pub fn is_available(self) -> bool {
        let f = features();
        match self {
            Isa::Portable => true,
            Isa::Neon => f.neon,
            Isa::Avx2 => f.avx2_fma,
            Isa::Avx512 => f.avx512f && f.avx2_fma,
        }
    }

    /// The widest path this CPU runs, ignoring the environment.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// Every path this CPU runs, most portable first (what the tests iterate over).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The path the library uses: the best one, lowered by `FUSED_LORA_ISA` when set.
    /// Read once per process; an unknown name, or a path the CPU lacks, is ignored with a
    /// message on stderr (the library never refuses to run because of the variable).
    pub fn selected() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let best = Isa::best();
            match std::env::var(ISA_ENV) {
                Ok(v) if !v.trim().is_empty() => match Isa::from_name(&v) {
                    Some(isa) if isa.is_available() => isa,
                    Some(isa) => {
                        eprintln!("fused-lora: {ISA_ENV}={} is not supported by this CPU; using {}", isa.name(), best.name());
                        best
                    }
                    None => {
                        eprintln!("fused-lora: unknown {ISA_ENV}={v:?} (expected portable|neon|avx2|avx512); using {}", best.name());
                        best
                    }
                },
                _ => best,
            }
        })
    }

    /// `self` if the CPU runs it, else the best available path below it. Every kernel entry
    /// point goes through this, so no `Isa` value can run an instruction the CPU lacks.
    pub fn usable(self) -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .filter(|i| *i <= self)
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Default)]
struct Features {
    avx512f: bool,
    avx2_fma: bool,
    neon: bool,
}

/// CPU features, detected once (`std`'s detection macros cache too, but one struct keeps the
/// rule "AVX-512 path needs AVX2+FMA as well" in one place).
fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    Features {
        avx512f: std::arch::is_x86_feature_detected!("avx512f"),
        avx2_fma: std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"),
        neon: false,
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Features {
    Features {
        neon: std::arch::is_aarch64_feature_detected!("neon"),
        ..Features::default()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Features {
    Features::default()
}
