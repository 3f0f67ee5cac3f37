//! `MatMut`: a mutable row-major matrix view that can be split into disjoint column or row
//! blocks and sent to other threads. Safe Rust cannot split a row-major `&mut [f32]` by columns;
//! this view can, because each piece only ever touches its own rectangle.

use core::marker::PhantomData;

/// A `rows × cols` window of a row-major f32 buffer with row stride `ld`.
///
/// It behaves like `&'a mut` over its rectangle: pieces made by [`MatMut::split_cols`] /
/// [`MatMut::split_rows`] never overlap, so they can be written from different threads.
pub struct MatMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    ld: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a MatMut is a unique borrow of its rectangle (like `&mut [f32]`, which is Send);
// the constructors and splits keep rectangles of live views disjoint.
unsafe impl Send for MatMut<'_> {}
// SAFETY: `&MatMut` gives no access to the data (every accessor takes `&mut self` or `self`).
unsafe impl Sync for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// Views `data` as `rows × cols` with row stride `ld`. `None` if the rectangle does not fit
    /// in `data` (checked arithmetic) or `cols > ld`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Option<Self> {
        if rows > 0 && cols > 0 {
            let need = (rows - 1).checked_mul(ld)?.checked_add(cols)?;
            if cols > ld || need > data.len() {
                return None;
            }
        }
        Some(MatMut {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            ld,
            _borrow: PhantomData,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Whether every row starts on a 64-byte cache line: the first element's address and the
    /// row stride (`ld`·4 bytes) are multiples of 64. Streamed stores (`Store::Stream`) need
    /// whole, aligned lines.
    pub fn line_aligned(&self) -> bool {
        (self.ptr as usize).is_multiple_of(64) && (self.ld * 4).is_multiple_of(64)
    }

    /// Splits into columns `[0, j)` and `[j, cols)`. Panics if `j > cols`.
    pub fn split_cols(self, j: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(j <= self.cols, "split_cols: {j} > {}", self.cols);
        // The right half starts `j` elements in; with no rows or no columns there it is never
        // dereferenced, so a wrapping offset keeps the pointer arithmetic defined.
        let right = self.ptr.wrapping_add(j);
        (
            MatMut {
                ptr: self.ptr,
                rows: self.rows,
                cols: j,
                ld: self.ld,
                _borrow: PhantomData,
            },
            MatMut {
                ptr: right,
                rows: self.rows,
                cols: self.cols - j,
                ld: self.ld,
                _borrow: PhantomData,
            },
        )
    }

    /// Splits into rows `[0, i)` and `[i, rows)`. Panics if `i > rows`.
    pub fn split_rows(self, i: usize) -> (MatMut<'a>, MatMut<'a>) {
        assert!(i <= self.rows, "split_rows: {i} > {}", self.rows);
        let below = self.ptr.wrapping_add(i.wrapping_mul(self.ld));
        (
            MatMut {
                ptr: self.ptr,
                rows: i,
                cols: self.cols,
                ld: self.ld,
                _borrow: PhantomData,
            },
            MatMut {
                ptr: below,
                rows: self.rows - i,
                cols: self.cols,
                ld: self.ld,
                _borrow: PhantomData,
            },
        )
    }

    /// Splits into consecutive column blocks of the given widths (which must sum to `cols`).
    pub fn split_cols_into(self, widths: &[usize]) -> Vec<MatMut<'a>> {
        let mut out = Vec::with_capacity(widths.len());
        let mut rest = self;
        for &w in widths {
            let (l, r) = rest.split_cols(w);
            out.push(l);
            rest = r;
        }
        assert_eq!(
            rest.cols, 0,
            "split_cols_into: widths do not cover the matrix"
        );
        out
    }

    /// Splits into consecutive row blocks of the given heights (which must sum to `rows`).
    pub fn split_rows_into(self, heights: &[usize]) -> Vec<MatMut<'a>> {
        let mut out = Vec::with_capacity(heights.len());
        let mut rest = self;
        for &h in heights {
            let (t, b) = rest.split_rows(h);
            out.push(t);
            rest = b;
        }
        assert_eq!(
            rest.rows, 0,
            "split_rows_into: heights do not cover the matrix"
        );
        out
    }

    /// A shorter-lived view of the same rectangle.
    pub fn rb(&mut self) -> MatMut<'_> {
        MatMut {
            ptr: self.ptr,
            rows: self.rows,
            cols: self.cols,
            ld: self.ld,
            _borrow: PhantomData,
        }
    }

    /// The sub-rectangle rows `r0..r0+rows`, columns `c0..c0+cols`. Panics if out of range.
    pub fn sub(&mut self, r0: usize, rows: usize, c0: usize, cols: usize) -> MatMut<'_> {
        assert!(
            r0 <= self.rows && rows <= self.rows - r0,
            "sub: rows out of range"
        );
        assert!(
            c0 <= self.cols && cols <= self.cols - c0,
            "sub: columns out of range"
        );
        MatMut {
            ptr: self
                .ptr
                .wrapping_add(r0.wrapping_mul(self.ld))
                .wrapping_add(c0),
            rows,
            cols,
            ld: self.ld,
            _borrow: PhantomData,
        }
    }

    /// Row `i` as a slice.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "row_mut: {i} >= {}", self.rows);
        // SAFETY: the rectangle is in bounds of the original buffer (checked in `new`, kept by
        // the splits) and uniquely borrowed through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(i * self.ld), self.cols) }
    }

    /// Pointer to element (i, j); for kernels that stay inside the rectangle.
    pub(crate) fn ptr_at(&mut self, i: usize, j: usize) -> *mut f32 {
        self.ptr.wrapping_add(i * self.ld + j)
    }
}
