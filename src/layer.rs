//! `LoraLinear`: a layer whose weights are packed once and reused by every forward.

use crate::dims::Dims;
use crate::driver::{
    mixed_shrink, padded_x, shrink, shrink_on_gemm, y_view, Gemm, LoraSpec, LoraTerm, MixedAdapter,
    MixedTerm, PackedW, ShrinkAdapter, WSrc, X_PAD,
};
use crate::error::{expect_len, mul, LoraError};
use crate::{Isa, Kernels};
use fused_lora_kernels::{KernelSet, Store};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The adapter in the layer's packed form: A kept row-major (the small-rank shrink reads it in
/// place) and, for ranks whose shrink runs on the GEMM kernel, also packed like W; B packed into
/// rank-deep NR panels (the micro-kernel's second segment). `scale` is applied to t at run
/// time, so the packed weights do not depend on it.
#[derive(Clone, Debug)]
struct PackedAdapter {
    rank: usize,
    a: Vec<f32>,
    a_packed: Option<PackedW>,
    b: PackedW,
    scale: f32,
}

/// Handle of an adapter registered in one [`LoraLinear`] (by `add_adapter`). A removed adapter's
/// id stays invalid even if its slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdapterId {
    slot: u32,
    generation: u32,
}

/// The registered adapters: slots with generations, each adapter behind an `Arc` so a forward
/// can hold the ones it uses while another thread swaps them.
#[derive(Debug, Default)]
struct Registry {
    slots: Vec<(u32, Option<Arc<PackedAdapter>>)>,
    generation: u32,
}

impl Registry {
    fn get(&self, id: AdapterId) -> Option<&Arc<PackedAdapter>> {
        match self.slots.get(id.slot as usize) {
            Some((g, Some(a))) if *g == id.generation => Some(a),
            _ => None,
        }
    }
}

/// A LoRA linear layer `y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ` with W (and the adapter) packed once
/// into the micro-kernel's panel layout. `Send + Sync`: one layer serves many threads' forwards.
///
/// Two ways to attach adapters:
/// - one current adapter, [`set_adapter`](Self::set_adapter), used by [`forward`](Self::forward);
/// - a registry of many, [`add_adapter`](Self::add_adapter) / [`replace_adapter`](Self::replace_adapter)
///   / [`remove_adapter`](Self::remove_adapter), used by [`forward_mixed`](Self::forward_mixed),
///   where each row names its adapter. These take `&self`: an engine shares the layer in an
///   `Arc` and hot-swaps adapters while other threads run forwards. A forward uses the adapters
///   registered when it starts: it takes a read lock just long enough to clone their `Arc`s, and
///   a swap packs the new weights before taking the write lock just long enough to install
///   them, so neither waits on the other's arithmetic.
///
/// ```
/// use fused_lora::LoraLinear;
/// let (d_in, d_out, rank) = (4, 3, 2);
/// let w = vec![0.5f32; d_out * d_in];
/// let mut layer = LoraLinear::new(d_in, d_out, &w, None).unwrap();
/// layer.set_adapter(rank, &vec![0.1; rank * d_in], &vec![0.2; d_out * rank], 2.0).unwrap();
/// let x = vec![1.0f32; 5 * d_in];
/// let mut y = vec![0.0f32; 5 * d_out];
/// layer.forward(5, &x, &mut y).unwrap();
/// assert!((y[0] - (2.0 + 2.0 * 2.0 * 0.4 * 0.2)).abs() < 1e-5);
/// ```
#[derive(Debug)]
pub struct LoraLinear {
    ks: &'static KernelSet,
    d_in: usize,
    d_out: usize,
    w: PackedW,
    bias: Option<Vec<f32>>,
    adapter: Option<PackedAdapter>,
    registry: RwLock<Registry>,
}

impl Clone for LoraLinear {
    /// A layer with the same packed weights and the same registered adapters (ids stay valid
    /// in the clone; the packed adapters are shared, they are immutable).
    fn clone(&self) -> Self {
        let reg = self.read_registry();
        LoraLinear {
            ks: self.ks,
            d_in: self.d_in,
            d_out: self.d_out,
            w: self.w.clone(),
            bias: self.bias.clone(),
            adapter: self.adapter.clone(),
            registry: RwLock::new(Registry {
                slots: reg.slots.clone(),
                generation: reg.generation,
            }),
        }
    }
}

impl LoraLinear {
    /// Packs W `[d_out, d_in]` (and copies bias `[d_out]`) for the selected ISA.
    ///
    /// # Errors
    /// [`LoraError::Length`] if `w` or `bias` has the wrong length, [`LoraError::Overflow`] if
    /// `d_out·d_in` (or the packed size) overflows.
    pub fn new(
        d_in: usize,
        d_out: usize,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, LoraError> {
        Self::with_kernels(Kernels::selected(), d_in, d_out, w, bias)
    }

    /// As [`LoraLinear::new`], on a chosen ISA path (or the best available below it).
    pub fn with_isa(
        isa: Isa,
        d_in: usize,
        d_out: usize,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, LoraError> {
        Self::with_kernels(Kernels::for_isa(isa), d_in, d_out, w, bias)
    }

    fn with_kernels(
        k: Kernels,
        d_in: usize,
        d_out: usize,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, LoraError> {
        expect_len("w", mul("d_out * d_in", d_out, d_in)?, w.len())?;
        if let Some(b) = bias {
            expect_len("bias", d_out, b.len())?;
        }
        let ks = k.set();
        Ok(LoraLinear {
            ks,
            d_in,
            d_out,
            w: PackedW::new(ks, w, d_out, d_in, true)?,
            bias: bias.map(<[f32]>::to_vec),
            adapter: None,
            registry: RwLock::new(Registry::default()),
        })
    }

    /// Checks an adapter's lengths and packs it (no lock held).
    fn pack_adapter(
        &self,
        rank: usize,
        a: &[f32],
        b: &[f32],
        scale: f32,
    ) -> Result<PackedAdapter, LoraError> {
        expect_len("a", mul("rank * d_in", rank, self.d_in)?, a.len())?;
        expect_len("b", mul("d_out * rank", self.d_out, rank)?, b.len())?;
        let packed = PackedW::new(self.ks, b, self.d_out, rank, false)?;
        let a_packed = if shrink_on_gemm(self.ks, rank) {
            Some(PackedW::new(self.ks, a, rank, self.d_in, true)?)
        } else {
            None
        };
        Ok(PackedAdapter {
            rank,
            a: a.to_vec(),
            a_packed,
            b: packed,
            scale,
        })
    }

    // The registry lock is only held for a few vector operations that cannot panic, so it
    // cannot be poisoned by this crate; a poisoned lock (a panic elsewhere while holding a
    // guard) is used as it is.
    fn read_registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_registry(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an adapter (A `[rank, d_in]`, B `[d_out, rank]`, final `scale`), packed once,
    /// and returns its id for [`forward_mixed`](Self::forward_mixed).
    ///
    /// # Errors
    /// [`LoraError::Length`] / [`LoraError::Overflow`] for a and b; nothing is registered then.
    pub fn add_adapter(
        &self,
        rank: usize,
        a: &[f32],
        b: &[f32],
        scale: f32,
    ) -> Result<AdapterId, LoraError> {
        let packed = Arc::new(self.pack_adapter(rank, a, b, scale)?);
        let mut reg = self.write_registry();
        reg.generation = reg.generation.wrapping_add(1);
        let generation = reg.generation;
        let slot = match reg.slots.iter().position(|(_, a)| a.is_none()) {
            Some(i) => {
                reg.slots[i] = (generation, Some(packed));
                i
            }
            None => {
                reg.slots.push((generation, Some(packed)));
                reg.slots.len() - 1
            }
        };
        let slot = u32::try_from(slot).map_err(|_| LoraError::Overflow {
            what: "adapter count",
        })?;
        Ok(AdapterId { slot, generation })
    }

    /// Replaces a registered adapter (hot swap, any rank): forwards that start afterwards use
    /// the new weights; forwards already running finish with the old ones. The id stays valid.
    ///
    /// # Errors
    /// [`LoraError::UnknownAdapter`] if `id` is not registered, else as [`add_adapter`](Self::add_adapter);
    /// the old adapter stays on error.
    pub fn replace_adapter(
        &self,
        id: AdapterId,
        rank: usize,
        a: &[f32],
        b: &[f32],
        scale: f32,
    ) -> Result<(), LoraError> {
        if self.read_registry().get(id).is_none() {
            return Err(LoraError::UnknownAdapter { row: None });
        }
        let packed = Arc::new(self.pack_adapter(rank, a, b, scale)?);
        let mut reg = self.write_registry();
        match reg.slots.get_mut(id.slot as usize) {
            Some((g, slot @ Some(_))) if *g == id.generation => {
                *slot = Some(packed);
                Ok(())
            }
            _ => Err(LoraError::UnknownAdapter { row: None }),
        }
    }

    /// Unregisters an adapter; its id becomes invalid. Running forwards finish with it.
    ///
    /// # Errors
    /// [`LoraError::UnknownAdapter`] if `id` is not registered.
    pub fn remove_adapter(&self, id: AdapterId) -> Result<(), LoraError> {
        let mut reg = self.write_registry();
        match reg.slots.get_mut(id.slot as usize) {
            Some((g, slot @ Some(_))) if *g == id.generation => {
                *slot = None;
                Ok(())
            }
            _ => Err(LoraError::UnknownAdapter { row: None }),
        }
    }

    /// The ids of the registered adapters, in slot order.
    pub fn adapter_ids(&self) -> Vec<AdapterId> {
        let reg = self.read_registry();
        reg.slots
            .iter()
            .enumerate()
            .filter(|(_, (_, a))| a.is_some())
            .map(|(i, (g, _))| AdapterId {
                slot: i as u32,
                generation: *g,
            })
            .collect()
    }

    /// Rank and scale of a registered adapter.
    pub fn adapter_info(&self, id: AdapterId) -> Option<(usize, f32)> {
        self.read_registry().get(id).map(|a| (a.rank, a.scale))
    }

    /// A mixed batch: row r gets `x[r]·Wᵀ + bias` plus the LoRA term of the registered
    /// adapter `row_adapters[r]` (`None`: base layer only). Rows may come in any order and
    /// name any adapters; each row's result is bitwise the same whatever the batch around it
    /// and the thread count. y `[rows, d_out]` is overwritten.
    ///
    /// # Errors
    /// [`LoraError::Length`] / [`LoraError::Overflow`] for x, y and `row_adapters` (one per
    /// row), [`LoraError::UnknownAdapter`] naming the first row whose id is not registered.
    /// y is untouched on error.
    pub fn forward_mixed(
        &self,
        rows: usize,
        x: &[f32],
        row_adapters: &[Option<AdapterId>],
        y: &mut [f32],
    ) -> Result<(), LoraError> {
        let s = Dims {
            rows,
            d_in: self.d_in,
            d_out: self.d_out,
            rank: 0,
        }
        .sizes()?;
        expect_len("x", s.x, x.len())?;
        expect_len("y", s.y, y.len())?;
        expect_len("row_adapters", rows, row_adapters.len())?;
        // Resolve ids to the adapters registered now (read lock held only for this).
        let mut used: Vec<(AdapterId, Arc<PackedAdapter>)> = Vec::new();
        let mut row_adapter: Vec<Option<usize>> = Vec::with_capacity(rows);
        {
            let reg = self.read_registry();
            for (row, id) in row_adapters.iter().enumerate() {
                row_adapter.push(match id {
                    None => None,
                    Some(id) => Some(match used.iter().position(|(u, _)| u == id) {
                        Some(i) => i,
                        None => {
                            let a = reg
                                .get(*id)
                                .ok_or(LoraError::UnknownAdapter { row: Some(row) })?;
                            used.push((*id, Arc::clone(a)));
                            used.len() - 1
                        }
                    }),
                });
            }
        }
        if rows == 0 || self.d_out == 0 {
            return Ok(());
        }
        let shrink_ads: Vec<ShrinkAdapter<'_>> = used
            .iter()
            .map(|(_, a)| ShrinkAdapter {
                rank: a.rank,
                a: &a.a,
                packed: a.a_packed.as_ref(),
                scale: a.scale,
            })
            .collect();
        let (st, offsets) = mixed_shrink(self.ks, self.d_in, x, &row_adapter, &shrink_ads)?;
        let mixed_ads: Vec<MixedAdapter<'_>> = used
            .iter()
            .map(|(_, a)| MixedAdapter {
                rank: a.rank,
                b: WSrc::Packed(&a.b),
            })
            .collect();
        let y = y_view(y, rows, self.d_out, s.y)?;
        let lora = LoraSpec::PerRow(MixedTerm {
            adapters: &mixed_ads,
            row_adapter: &row_adapter,
            st: &st,
            offsets: &offsets,
        });
        Gemm {
            ks: self.ks,
            rows,
            k: self.d_in,
            n: self.d_out,
            x,
            ldx: self.d_in,
            w: WSrc::Packed(&self.w),
            lora,
            store: Store::Stream(self.bias.as_deref()),
        }
        .run(y)
    }

    /// Installs (or replaces) the adapter: A `[rank, d_in]`, B `[d_out, rank]`, final `scale`.
    /// `rank = 0` removes it.
    ///
    /// # Errors
    /// [`LoraError::Length`] / [`LoraError::Overflow`] for a and b; the old adapter stays on error.
    pub fn set_adapter(
        &mut self,
        rank: usize,
        a: &[f32],
        b: &[f32],
        scale: f32,
    ) -> Result<(), LoraError> {
        // pack_adapter checks a and b; rank 0 (removal) takes empty ones.
        self.adapter = if rank == 0 {
            expect_len("a", 0, a.len())?;
            expect_len("b", 0, b.len())?;
            None
        } else {
            Some(self.pack_adapter(rank, a, b, scale)?)
        };
        Ok(())
    }

    /// Removes the adapter: forward becomes the plain linear layer.
    pub fn clear_adapter(&mut self) {
        self.adapter = None;
    }

    /// `y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ` for `rows` rows; y `[rows, d_out]` is overwritten.
    ///
    /// A y larger than L2 on whole cache lines (starting on a 64-byte boundary, as an
    /// [`AlignedBuf`](crate::AlignedBuf) does, with d_out a multiple of 16) is written past the
    /// caches when d_in fits one K block (AVX-512): about 1 % faster, and its reader then finds
    /// it in memory rather than in L3 (docs/DESIGN.md, "Output stores"). Same results either way.
    ///
    /// # Errors
    /// [`LoraError::Length`] if x is not rows·d_in or y not rows·d_out long,
    /// [`LoraError::Overflow`] if those products overflow. y is untouched on error.
    pub fn forward(&self, rows: usize, x: &[f32], y: &mut [f32]) -> Result<(), LoraError> {
        let rank = self.rank();
        let dims = Dims {
            rows,
            d_in: self.d_in,
            d_out: self.d_out,
            rank,
        };
        let s = dims.sizes()?;
        expect_len("x", s.x, x.len())?;
        expect_len("y", s.y, y.len())?;
        if rows == 0 || self.d_out == 0 {
            return Ok(());
        }
        // One padded copy of x (when its row stride needs one) for the shrink and the GEMM.
        let pad = padded_x(self.ks, x, rows, self.d_in)?;
        let (x, ldx) = pad
            .as_deref()
            .map_or((x, self.d_in), |p| (p, self.d_in + X_PAD));
        let mut t = vec![0.0f32; s.t];
        let lora = match &self.adapter {
            Some(ad) => {
                shrink(
                    self.ks,
                    rows,
                    self.d_in,
                    rank,
                    x,
                    ldx,
                    &ad.a,
                    ad.a_packed.as_ref(),
                    &mut t,
                    dims.flops(),
                )?;
                LoraSpec::Shared(LoraTerm {
                    rank,
                    t: &t,
                    scale: ad.scale,
                    b: WSrc::Packed(&ad.b),
                })
            }
            None => LoraSpec::None,
        };
        let y = y_view(y, rows, self.d_out, s.y)?;
        let gemm = Gemm {
            ks: self.ks,
            rows,
            k: self.d_in,
            n: self.d_out,
            x,
            ldx,
            w: WSrc::Packed(&self.w),
            lora,
            store: Store::Stream(self.bias.as_deref()),
        };
        gemm.run(y)
    }

    /// Input features.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Output features.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// The adapter's rank (0 without one).
    pub fn rank(&self) -> usize {
        self.adapter.as_ref().map_or(0, |a| a.rank)
    }

    /// The adapter's scale, if any.
    pub fn scale(&self) -> Option<f32> {
        self.adapter.as_ref().map(|a| a.scale)
    }

    /// The ISA path this layer was packed for.
    pub fn isa(&self) -> Isa {
        self.ks.isa
    }

    /// Bytes of packed weights held (W panels, plus the adapter's A, its panels when the
    /// shrink runs on the GEMM kernel, and B's panels).
    pub fn packed_bytes(&self) -> usize {
        self.w.bytes()
            + self.adapter.as_ref().map_or(0, |a| {
                a.b.bytes() + a.a.len() * 4 + a.a_packed.as_ref().map_or(0, PackedW::bytes)
            })
    }
}
