//! The few vector operations the kernels need, one implementation per ISA.
//!
//! Kernel bodies are written once, generic over [`Simd`], marked `#[inline(always)]`, and
//! instantiated inside thin `#[target_feature]` wrappers (see `gemm.rs`, `dot.rs`): after inlining,
//! each wrapper is straight-line code of that ISA's instructions. The portable implementation uses
//! `wide`, which picks its instructions when *it* is compiled, so it is used only by the portable
//! path and never inside `#[target_feature]` code.
//!
//! Every method is `unsafe`: pointers must be valid for the lanes touched, and the x86/NEON
//! implementations must only run on a CPU with the feature (the dispatch in `isa.rs` ensures it).

/// Vector operations on f32 lanes.
pub(crate) trait Simd {
    /// f32 lanes per vector.
    const LANES: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` values.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Store of `LANES` values that bypasses the caches (non-temporal: no read for
    /// ownership, no line evicted to make room) where the ISA has one; an ordinary store
    /// otherwise. `p` must be aligned to the vector's size (the x86 instructions fault
    /// otherwise). Such stores are weakly ordered: a caller issues [`stream_fence`] before
    /// anything else may read them.
    #[inline(always)]
    unsafe fn store_stream(p: *mut f32, v: Self::V) {
        Self::store(p, v)
    }
    /// `a * b + c` (fused where the ISA has FMA).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes, in a fixed order (results do not depend on anything but the inputs).
    unsafe fn hsum(v: Self::V) -> f32;

    /// Hint that the cache line holding `p` is needed soon. Never faults, whatever `p` is;
    /// a no-op where the ISA has no cheap prefetch here.
    #[inline(always)]
    unsafe fn prefetch(_p: *const f32) {}

    /// As [`Simd::prefetch`], meant for L2 (data needed after the current tile). On x86 this
    /// is PREFETCHT2 (Zen 4 places T1 and T2 in L2, by AMD's documentation); on the Zen 3 test
    /// machine (AMD's older guides put every load prefetch in L1 too) T2 ran decode rows 8 with W from
    /// memory 0.941–0.973 × T1's time (four in-process A/B runs) and every other shape within
    /// ±1 % (seed 0.993–1.001, prefill512 0.991, long2048 0.996, rows 32 0.990–1.002); NTA and
    /// T0 were 2–4 % slower than T1 at rows 8, no hints 18–25 % slower.
    #[inline(always)]
    unsafe fn prefetch_l2(_p: *const f32) {}

    /// Loads `n < LANES` values, the other lanes zero. Reads only `n` values.
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self::V {
        let mut tmp = [0.0f32; 16];
        // SAFETY: caller guarantees `p` is valid for `n` reads; `n < LANES <= 16`.
        core::ptr::copy_nonoverlapping(p, tmp.as_mut_ptr(), n);
        Self::load(tmp.as_ptr())
    }

    /// Stores the first `n < LANES` lanes. Writes only `n` values.
    #[inline(always)]
    unsafe fn store_partial(p: *mut f32, v: Self::V, n: usize) {
        let mut tmp = [0.0f32; 16];
        Self::store(tmp.as_mut_ptr(), v);
        // SAFETY: caller guarantees `p` is valid for `n` writes; `n < LANES <= 16`.
        core::ptr::copy_nonoverlapping(tmp.as_ptr(), p, n);
    }
}

/// Orders the [`Simd::store_stream`] stores issued so far before any later store (SFENCE
/// on x86-64, where they are weakly ordered; elsewhere they are ordinary stores).
#[inline]
pub(crate) fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SFENCE is part of SSE, which every x86-64 CPU has.
    unsafe {
        core::arch::x86_64::_mm_sfence()
    };
}

/// Portable path: `wide::f32x8` (SSE2 pairs on baseline x86-64, NEON on aarch64).
pub(crate) struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    type V = wide::f32x8;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        wide::f32x8::ZERO
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        wide::f32x8::splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: caller guarantees 8 readable values; read_unaligned has no alignment need.
        wide::f32x8::from(core::ptr::read_unaligned(p as *const [f32; 8]))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: caller guarantees 8 writable values.
        core::ptr::write_unaligned(p as *mut [f32; 8], v.to_array())
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        a + b
    }
    #[inline(always)]
    unsafe fn hsum(v: Self::V) -> f32 {
        let a = v.to_array();
        ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use core::arch::x86_64::*;

    /// AVX2 + FMA, 8 lanes. Only called from `#[target_feature(enable = "avx2,fma")]` code.
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn store_stream(p: *mut f32, v: __m256) {
            _mm256_stream_ps(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        }
        #[inline(always)]
        unsafe fn prefetch_l2(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T2>(p as *const i8)
        }
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
            _mm_cvtss_f32(s)
        }
    }

    /// AVX-512F, 16 lanes, masked partial loads and stores. Only called from
    /// `#[target_feature(enable = "avx512f,avx2,fma")]` code.
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn store_stream(p: *mut f32, v: __m512) {
            _mm512_stream_ps(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        }
        #[inline(always)]
        unsafe fn prefetch_l2(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T2>(p as *const i8)
        }
        #[inline(always)]
        unsafe fn hsum(v: __m512) -> f32 {
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            Avx2::hsum(_mm256_add_ps(lo, hi))
        }
        /// Masked: the lanes past `n` are neither read nor faulted on.
        #[inline(always)]
        unsafe fn load_partial(p: *const f32, n: usize) -> __m512 {
            _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p)
        }
        #[inline(always)]
        unsafe fn store_partial(p: *mut f32, v: __m512, n: usize) {
            _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v)
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Simd;
    use core::arch::aarch64::*;

    /// aarch64 Advanced SIMD, 4 lanes. Only called from `#[target_feature(enable = "neon")]` code.
    pub(crate) struct Neon;

    impl Simd for Neon {
        const LANES: usize = 4;
        type V = float32x4_t;
        #[inline(always)]
        unsafe fn zero() -> float32x4_t {
            vdupq_n_f32(0.0)
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> float32x4_t {
            vdupq_n_f32(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            vld1q_f32(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            vst1q_f32(p, v)
        }
        #[inline(always)]
        unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            vfmaq_f32(c, a, b)
        }
        #[inline(always)]
        unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            vaddq_f32(a, b)
        }
        #[inline(always)]
        unsafe fn hsum(v: float32x4_t) -> f32 {
            let p = vpaddq_f32(v, v);
            vgetq_lane_f32::<0>(vpaddq_f32(p, p))
        }
    }
}
