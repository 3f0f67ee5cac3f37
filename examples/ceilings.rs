//! The ceiling of each piece of the fused GEMM on this machine: the micro-kernel's k loop with
//! its operands in cache, then the same loop as W̃ comes from L3 and from memory (first with
//! the output in L2, then stored as `forward` stores y, then streamed past the caches as it
//! stores a y larger than L2), the layer's own loops, the LoRA terms,
//! edge tiles, packing and the fixed cost of a call. Each line
//! isolates one step from the line above it, so the table says where a layer's time goes
//! between the FMA probe and `LoraLinear::forward` (docs/PERFORMANCE.md quotes it).
//!
//!     cargo run --release --example ceilings
//!     cargo run --release --example ceilings -- --rows 512 --d-in 4096 --d-out 4096 --rank 16
//!     cargo run --release --example ceilings -- --threads 2
//!
//! Options: --rows N --d-in N --d-out N --rank N (the layer of the last lines; default the seed
//! shape) --rounds N (default 20) --threads N (default 1). FUSED_LORA_ISA=portable|avx2|avx512
//! lowers the ISA.
//!
//! Every piece runs once per round, after that round's FMA probe, and is reported as the
//! median over rounds of its rate ÷ the same round's probe (a slow phase of the host moves
//! both), with the quartiles. The pieces call `fused_lora_kernels::macro_kernel` directly, with
//! the block sizes the library derived for this CPU. On N threads the probe runs on N threads,
//! each macro-kernel piece runs on every thread at once (each its own copy of the operands, its
//! own core's caches; the whole layer as one column chunk per thread), the library's calls run
//! on an N-thread pool, and packing reads W's column chunks in parallel: what is lost between
//! the 1- and N-thread tables is what sharing the machine costs each piece.

mod common;

use fused_lora::{lora_linear, lora_scale, Adapter, Dims, LoraLinear};
use fused_lora_kernels::baseline::fill;
use fused_lora_kernels::blocking::Caches;
use fused_lora_kernels::pack::{pack_panels, packed_len, AlignedBuf};
use fused_lora_kernels::probe;
use fused_lora_kernels::{macro_kernel, KernelSet, Lora, MatMut, Panels, Segment, Store};
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::Instant;

struct Opts {
    dims: Dims,
    rounds: usize,
    threads: usize,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        dims: common::SEED,
        rounds: 20,
        threads: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> Result<usize, String> {
            let v = args.next().ok_or(format!("{a} needs a value"))?;
            v.parse().map_err(|_| format!("{a}: not a number: {v}"))
        };
        if let Some(field) = common::shape_field(&mut o.dims, &a) {
            *field = num()?;
            continue;
        }
        match a.as_str() {
            "--rounds" => o.rounds = num()?,
            "--threads" => o.threads = num()?,
            "--help" | "-h" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.dims.rows == 0 || o.dims.d_in == 0 || o.dims.d_out == 0 || o.rounds == 0 || o.threads == 0
    {
        return Err("rows, d-in, d-out, rounds and threads must be positive".into());
    }
    Ok(o)
}

/// Work per timed run of a piece: enough calls for about this many FLOPs (~5–10 ms here).
const RUN_FLOP: f64 = 3e8;

/// Where a [`Block`]'s output goes, call after call.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    /// One `mc × nc` C, overwritten by the first call and accumulated into by the others
    /// (loaded and stored: C stays in cache when it is small).
    Accumulate,
    /// One `mc × nc` C, overwritten by every call, as `forward` stores y when d_in fits one
    /// K block (stored only; a C larger than L2 is written back to L3).
    Overwrite,
    /// As `Overwrite`, with `Store::Stream`: the stores go past the caches (where the ISA
    /// streams; C is on whole lines), as `forward` stores a y larger than L2.
    Stream,
    /// One `mc × group` C that stays in L2: every panel group is its own macro-kernel call
    /// (hinting the next group, as the macro-kernel does between groups) overwriting it, so
    /// only W̃ travels from L3.
    GroupC,
}

/// x rows and packed W̃ panels for one macro-kernel shape (`mc × nc`, depth `kc`).
struct Block {
    mc: usize,
    nc: usize,
    kc: usize,
    group: usize,
    out: Out,
    x: Vec<f32>,
    /// Packed panels in the library's own buffer (64-byte aligned, huge pages when large): a
    /// plain `Vec` asks for no cache-line alignment, so its vector loads could cross lines.
    w: AlignedBuf,
    /// On whole cache lines, as an engine's output buffer (and `Store::Stream` needs).
    c: AlignedBuf,
}

impl Block {
    fn new(ks: &KernelSet, mc: usize, nc: usize, kc: usize, group: usize) -> Block {
        Block::with_out(ks, (mc, nc, kc), group, Out::Accumulate)
    }

    fn with_out(
        ks: &KernelSet,
        (mc, nc, kc): (usize, usize, usize),
        group: usize,
        out: Out,
    ) -> Block {
        let raw = fill(nc * kc, 2);
        let mut w = AlignedBuf::zeroed_huge(packed_len(nc, kc, ks.nr).expect("size"));
        pack_panels(&raw, kc, nc, 0, kc, ks.nr, w.as_mut_slice());
        let c_cols = match out {
            Out::GroupC => nc.min(group * ks.nr),
            _ => nc,
        };
        Block {
            mc,
            nc,
            kc,
            group,
            out,
            x: fill(mc * kc, 1),
            w,
            c: AlignedBuf::zeroed(mc * c_cols),
        }
    }

    fn flop(&self) -> f64 {
        2.0 * (self.mc * self.nc * self.kc) as f64
    }

    /// Calls for about [`RUN_FLOP`], at least `min_calls`.
    fn calls(&self, min_calls: usize) -> usize {
        ((RUN_FLOP / self.flop().max(1.0)).ceil() as usize).max(min_calls)
    }

    /// `calls` back-to-back passes over the block, the output as `self.out` says.
    fn run(&mut self, ks: &KernelSet, calls: usize) {
        let segment = |b| Segment {
            kc: self.kc,
            a: &self.x,
            lda: self.kc,
            b: Panels::Packed(b),
        };
        for i in 0..calls {
            if self.out == Out::GroupC {
                // Whole groups of whole panels: `nc` is a multiple of the group here.
                // The last group hints the first, as the next pass starts there.
                let w = self.w.as_slice();
                let group_len = self.group * ks.nr * self.kc;
                let cols = self.c.as_slice().len() / self.mc;
                let nexts = w.chunks(group_len).cycle().skip(1);
                for (panels, next) in w.chunks(group_len).zip(nexts) {
                    let c = MatMut::new(self.c.as_mut_slice(), self.mc, cols, cols).expect("C");
                    let store = Store::Overwrite(None);
                    macro_kernel(ks, segment(panels), Lora::None, store, c, self.group, next);
                }
                continue;
            }
            let c = MatMut::new(self.c.as_mut_slice(), self.mc, self.nc, self.nc).expect("C");
            let store = match self.out {
                Out::Stream => Store::Stream(None),
                _ if i == 0 || self.out == Out::Overwrite => Store::Overwrite(None),
                _ => Store::Accumulate,
            };
            let main = segment(self.w.as_slice());
            macro_kernel(ks, main, Lora::None, store, c, self.group, &[]);
        }
    }
}

/// One [`Block`] per thread of the pool, each on its own copy of the operands.
struct Team(Vec<Mutex<Block>>);

impl Team {
    fn new(threads: usize, make: impl FnMut(usize) -> Block) -> Team {
        Team((0..threads).map(make).map(Mutex::new).collect())
    }

    /// Every thread runs its own block back to back, about [`RUN_FLOP`] each (at least
    /// `min_calls`), all at once: (FLOPs of all threads, seconds).
    fn timed_run(&self, pool: &rayon::ThreadPool, ks: &KernelSet, min_calls: usize) -> (f64, f64) {
        on_every_thread(pool, |i| {
            // Each thread locks only its own block: never contended.
            let mut b = self.0[i].lock().unwrap_or_else(|e| e.into_inner());
            let calls = b.calls(min_calls);
            b.run(ks, calls);
            calls as f64 * b.flop()
        })
    }
}

/// Runs `f(i)` on every thread `i` of `pool` at once, started together after a barrier (so
/// the pool's wake-up is not timed): (the sum of what the threads return, seconds from the
/// first start to the last end).
fn on_every_thread(pool: &rayon::ThreadPool, f: impl Fn(usize) -> f64 + Sync) -> (f64, f64) {
    let bar = Barrier::new(pool.current_num_threads());
    let spans = pool.broadcast(|ctx| {
        bar.wait();
        let t0 = Instant::now();
        let units = f(ctx.index());
        (units, t0, Instant::now())
    });
    let units = spans.iter().map(|s| s.0).sum();
    let first = spans.iter().map(|s| s.1).min();
    let last = spans.iter().map(|s| s.2).max();
    let secs = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    (units, secs)
}

/// Columns `0..n` cut into `threads` chunks of whole `unit`s, as even as they go (an empty
/// chunk when there are fewer units than threads): (first column, width) per thread.
fn column_chunks(n: usize, unit: usize, threads: usize) -> Vec<(usize, usize)> {
    let per = n.div_ceil(unit).div_ceil(threads) * unit;
    (0..threads)
        .map(|i| {
            let c0 = (i * per).min(n);
            (c0, per.min(n - c0))
        })
        .collect()
}

/// What a piece measures per timed run: (units done, seconds); units are FLOPs, bytes or calls.
type Piece<'a> = Box<dyn FnMut() -> (f64, f64) + 'a>;

enum Unit {
    /// GFLOP/s, also as % of the round's FMA probe.
    Flops,
    /// GB/s of W read, also as % of the read-bandwidth probe.
    Bytes,
    /// µs per call.
    Calls,
}

fn timed(mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    f();
    t0.elapsed().as_secs_f64()
}

/// Seconds for `calls` calls of `f`, back to back, called from a thread of `pool` (the
/// library's calls inside split their work over that pool).
fn back_to_back(pool: &rayon::ThreadPool, calls: usize, mut f: impl FnMut() + Send) -> f64 {
    pool.install(|| {
        timed(|| {
            for _ in 0..calls {
                f();
            }
        })
    })
}

/// Reads one float of every line of `flush` (twice the L3 or more): caches hold none of W after.
fn flush_caches(flush: &[f32]) {
    black_box(flush.iter().step_by(16).sum::<f32>());
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            let code = if e.is_empty() { 0 } else { 2 };
            eprintln!(
                "{e}\nusage: ceilings [--rows N] [--d-in N] [--d-out N] [--rank N] [--rounds N] [--threads N]"
            );
            std::process::exit(code);
        }
    };
    let ks = KernelSet::selected();
    let caches = Caches::detect();
    let (mr, nr, kc) = (ks.mr, ks.nr, ks.kc);
    let (dims, threads) = (o.dims, o.threads);
    let Dims {
        rows,
        d_in,
        d_out,
        rank,
    } = dims;
    println!(
        "fused-lora ceilings, {threads} thread(s), ISA {}: MR×NR {mr}×{nr}, KC {kc}, MC (prepacked) {}, NC {}, NG (prepacked) {}; caches L1d {} KiB, L2 {} KiB, L3 {} KiB",
        ks.isa.name(),
        ks.mc_packed,
        ks.nc,
        ks.ng_packed,
        caches.l1d >> 10,
        caches.l2 >> 10,
        caches.l3 >> 10
    );
    println!(
        "layer: {rows} × {d_in} → {d_out}, rank {rank}; {} rounds\n",
        o.rounds
    );

    let group_cols = ks.ng_packed * nr;
    let team =
        |mc: usize, nc: usize| Team::new(threads, |_| Block::new(ks, mc, nc, kc, ks.ng_packed));
    let tile = team(mr, group_cols);
    let row_block = team(ks.mc_packed, group_cols);
    let nc_block = team(ks.mc_packed, ks.nc);
    // The same NC block (rounded to whole groups) with its output overwritten per call, or
    // kept in L2 (see `Out`).
    let nc_groups = (ks.nc / group_cols).max(1) * group_cols;
    let nc_out = |out| {
        Team::new(threads, |_| {
            Block::with_out(ks, (ks.mc_packed, nc_groups, kc), ks.ng_packed, out)
        })
    };
    let (nc_overwrite, nc_group_c) = (nc_out(Out::Overwrite), nc_out(Out::GroupC));
    let nc_stream = nc_out(Out::Stream);
    // Edge tiles: one full row tile and one of MR − 2 rows; a last panel half full.
    let edge_rows = team(2 * mr - 2, group_cols);
    let edge_cols = team(mr, group_cols - nr / 2);
    // The whole layer, one column chunk of whole panels per thread.
    let layer_chunks = column_chunks(d_out, nr, threads);
    let one_call = Team::new(threads, |i| {
        Block::new(ks, rows, layer_chunks[i].1, d_in, ks.ng_packed)
    });

    let x = fill(rows * d_in, 1);
    let w = fill(d_out * d_in, 2);
    let a = fill(rank * d_in, 3);
    let b = fill(d_out * rank, 4);
    let base = LoraLinear::new(d_in, d_out, &w, None).expect("layer");
    let mut lora = LoraLinear::new(d_in, d_out, &w, None).expect("layer");
    lora.set_adapter(rank, &a, &b, lora_scale(16.0, rank))
        .expect("adapter");
    // One output per layer piece (each closure holds its own).
    // 64-byte aligned, as an engine's tensors (and as `forward` needs to stream a large y).
    let (mut y0, mut y1, mut y2, mut y3) = (
        AlignedBuf::zeroed(rows * d_out),
        AlignedBuf::zeroed(rows * d_out),
        AlignedBuf::zeroed(rows * d_out),
        AlignedBuf::zeroed(rows * d_out),
    );
    let tiny = LoraLinear::new(16, 16, &fill(256, 5), None).expect("layer");
    let (tx, mut ty) = (fill(6 * 16, 6), vec![0.0f32; 6 * 16]);
    // Flushing the caches: read an array of twice the L3 (and at least 64 MiB).
    let flush: Vec<f32> = fill((2 * caches.l3).max(64 << 20) / 4, 7);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");

    let base_flop = 2.0 * (rows * d_in * d_out) as f64;
    let lora_flop = 2.0 * (rows * (d_in * d_out + d_in * rank + rank * d_out)) as f64;
    let layer_calls = (RUN_FLOP / base_flop).ceil().max(3.0) as usize;
    // One panel group's scratch per thread, as the one-shot call packs W just in time (it
    // stays in L2); each thread packs its own column chunk of whole groups.
    let pack_len = packed_len(ks.ng * nr, d_in.min(kc), nr).expect("size");
    let pack_dst: Vec<Mutex<Vec<f32>>> = (0..threads)
        .map(|_| Mutex::new(vec![0.0f32; pack_len]))
        .collect();
    let pack_chunks = column_chunks(d_out, ks.ng * nr, threads);
    let w_bytes = (d_out * d_in * 4) as f64;

    let mut pieces: Vec<(&str, &str, Unit, Piece<'_>)> = vec![
        (
            "k loop in cache",
            "MR rows × one panel group, KC deep: x tile in L1, the group's W̃ panels in L2",
            Unit::Flops,
            Box::new(|| tile.timed_run(&pool, ks, 1)),
        ),
        (
            "row block",
            "MC rows × one panel group: each x tile from L2 in turn",
            Unit::Flops,
            Box::new(|| row_block.timed_run(&pool, ks, 1)),
        ),
        (
            "NC block, C in L2",
            "MC rows × NC columns as one call per panel group, each overwriting one group's C (in L2): only W̃ comes from L3",
            Unit::Flops,
            Box::new(|| nc_group_c.timed_run(&pool, ks, 1)),
        ),
        (
            "NC block, C stored",
            "the same in one call, C (MC × NC) overwritten: stored, written back to L3 when larger than L2, as forward stores y",
            Unit::Flops,
            Box::new(|| nc_overwrite.timed_run(&pool, ks, 1)),
        ),
        (
            "NC block, C streamed",
            "the same with Store::Stream: C's whole lines stored past the caches (AVX-512; elsewhere as C stored), as forward stores a y larger than L2",
            Unit::Flops,
            Box::new(|| nc_stream.timed_run(&pool, ks, 1)),
        ),
        (
            "NC block, W̃ in L3",
            "MC rows × NC columns: each panel group comes from L3 once per call, C (MC × NC) accumulated",
            Unit::Flops,
            Box::new(|| nc_block.timed_run(&pool, ks, 1)),
        ),
        (
            "edge rows",
            "MR + (MR − 2) rows × one group: an edge row tile in every second call",
            Unit::Flops,
            Box::new(|| edge_rows.timed_run(&pool, ks, 1)),
        ),
        (
            "edge columns",
            "MR rows × a group whose last panel is half full",
            Unit::Flops,
            Box::new(|| edge_cols.timed_run(&pool, ks, 1)),
        ),
        (
            "layer, one macro-kernel call",
            "all rows × d_in × its column chunk of d_out in one call per thread, back to back (W̃ as hot as its size allows)",
            Unit::Flops,
            Box::new(|| one_call.timed_run(&pool, ks, 3)),
        ),
        (
            "forward, rank 0",
            "LoraLinear::forward without adapter, back to back: the library's loops",
            Unit::Flops,
            Box::new(|| {
                let s = back_to_back(&pool, layer_calls, || {
                    base.forward(rows, &x, y0.as_mut_slice()).expect("forward")
                });
                (layer_calls as f64 * base_flop, s)
            }),
        ),
        (
            "forward, rank 0, W cold",
            "the same, caches flushed before each call (only the call is timed)",
            Unit::Flops,
            Box::new(|| {
                let mut s = 0.0;
                for _ in 0..layer_calls {
                    flush_caches(&flush);
                    s += pool.install(|| timed(|| base.forward(rows, &x, y1.as_mut_slice()).expect("fwd")));
                }
                (layer_calls as f64 * base_flop, s)
            }),
        ),
        (
            "forward, rank r",
            "LoraLinear::forward with the adapter (FLOPs include the LoRA terms), back to back",
            Unit::Flops,
            Box::new(|| {
                let s = back_to_back(&pool, layer_calls, || {
                    lora.forward(rows, &x, y2.as_mut_slice()).expect("forward")
                });
                (layer_calls as f64 * lora_flop, s)
            }),
        ),
        (
            "lora_linear, rank r",
            "the one-shot call (W read in place as yᵀ's broadcast operand, by the small-rows kernel, or packed per call), back to back",
            Unit::Flops,
            Box::new(|| {
                let ad = Adapter::new(&a, &b, lora_scale(16.0, rank));
                let s = back_to_back(&pool, layer_calls, || {
                    lora_linear(dims, &x, &w, None, ad, y3.as_mut_slice()).expect("lora_linear")
                });
                (layer_calls as f64 * lora_flop, s)
            }),
        ),
        (
            "packing W",
            "W's first K block packed group by group into one group's scratch, as lora_linear does per call (each thread its column chunk); W cold",
            Unit::Bytes,
            Box::new(|| {
                let k = d_in.min(kc);
                flush_caches(&flush);
                on_every_thread(&pool, |i| {
                    let mut dst = pack_dst[i].lock().unwrap_or_else(|e| e.into_inner());
                    let (c0, width) = pack_chunks[i];
                    for j in (c0..c0 + width).step_by(ks.ng * nr) {
                        let n = (ks.ng * nr).min(c0 + width - j);
                        pack_panels(&w[j * d_in..], d_in, n, 0, k, nr, &mut dst);
                    }
                    (width * k * 4) as f64
                })
            }),
        ),
        (
            "fixed cost of a call",
            "forward of a 6 × 16 → 16 layer (validation, one tile; too small to split over the pool)",
            Unit::Calls,
            Box::new(|| {
                let n = 2000;
                let s = back_to_back(&pool, n, || tiny.forward(6, &tx, &mut ty).expect("forward"));
                (n as f64, s)
            }),
        ),
    ];

    // Warm-up: every piece once, untimed.
    for p in pieces.iter_mut() {
        (p.3)();
    }
    let bw = probe::read_bandwidth_gbs(256 << 20, threads);
    let mut probes = Vec::with_capacity(o.rounds);
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(o.rounds); pieces.len()];
    for _ in 0..o.rounds {
        let peak = probe::fma_peak_gflops(ks.isa, threads);
        probes.push(peak);
        for (i, p) in pieces.iter_mut().enumerate() {
            let (units, secs) = (p.3)();
            rates[i].push(match p.2 {
                // The portable path has no FMA probe (0): its rows show GFLOP/s only.
                Unit::Flops => units / secs / 1e9 / if peak > 0.0 { peak } else { 1.0 },
                Unit::Bytes => units / secs / 1e9,
                Unit::Calls => secs / units * 1e6,
            });
        }
    }
    let (_, peak, _) = quartiles(probes);
    println!(
        "FMA probe: {peak:.1} GFLOP/s (median of the rounds); read bandwidth, one stream per thread: {bw:.1} GB/s\n"
    );
    println!("| piece | what it isolates | rate | of the probe (quartiles) |");
    println!("|---|---|---:|---:|");
    for ((name, what, unit, _), r) in pieces.iter().zip(rates) {
        let (q1, m, q3) = quartiles(r);
        match unit {
            Unit::Flops if peak > 0.0 => println!(
                "| {name} | {what} | {:.1} GFLOP/s | {:.1} % ({:.1}–{:.1}) |",
                m * peak,
                100.0 * m,
                100.0 * q1,
                100.0 * q3
            ),
            Unit::Flops => println!("| {name} | {what} | {m:.1} GFLOP/s ({q1:.1}–{q3:.1}) | – |"),
            Unit::Bytes => println!(
                "| {name} | {what} | {m:.1} GB/s | {:.0} % of the read probe ({:.1}–{:.1} GB/s) |",
                100.0 * m / bw,
                q1,
                q3
            ),
            Unit::Calls => println!("| {name} | {what} | {m:.2} µs ({q1:.2}–{q3:.2}) | |"),
        }
    }
    println!(
        "\nW is {:.1} MiB ({:.1} × the L3); the layer's packing line covers its first K block of {} ({:.1} MiB).",
        w_bytes / (1 << 20) as f64,
        w_bytes / caches.l3 as f64,
        d_in.min(kc),
        (d_out * d_in.min(kc) * 4) as f64 / (1 << 20) as f64
    );
}
