//! The error type: every public function validates before it writes anything.

use std::fmt;

/// Why a call was refused. Nothing was written when one of these is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoraError {
    /// A slice does not have the length its dimensions give.
    Length {
        /// The argument, e.g. `"x"`, `"w"`, `"adapter.b"`.
        arg: &'static str,
        /// What the dimensions require.
        expected: usize,
        /// What was passed.
        actual: usize,
    },
    /// The dimensions' products (or the packed sizes derived from them) overflow `usize`.
    Overflow {
        /// Which product, e.g. `"rows * d_in"`.
        what: &'static str,
    },
    /// One adapter of a mixed batch has an A or B whose length does not match its rank.
    AdapterLength {
        /// Position of the adapter in the slice passed.
        adapter: usize,
        /// `"a"` or `"b"`.
        arg: &'static str,
        /// What the adapter's rank and the layer's dimensions require.
        expected: usize,
        /// What was passed.
        actual: usize,
    },
    /// A row of a mixed batch names an adapter index past the end of the adapter slice.
    AdapterIndex {
        /// The row.
        row: usize,
        /// The index it names.
        index: usize,
        /// How many adapters there are.
        count: usize,
    },
    /// An [`AdapterId`](crate::AdapterId) that is not (or no longer) registered in this layer.
    UnknownAdapter {
        /// The row that named it (`None` for `replace_adapter` / `remove_adapter`).
        row: Option<usize>,
    },
}

impl fmt::Display for LoraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoraError::Length {
                arg,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "`{arg}` has length {actual}, but the dimensions require {expected}"
                )
            }
            LoraError::Overflow { what } => write!(f, "dimensions overflow usize: {what}"),
            LoraError::AdapterLength {
                adapter,
                arg,
                expected,
                actual,
            } => {
                write!(f, "adapter {adapter}: `{arg}` has length {actual}, but its rank and the layer require {expected}")
            }
            LoraError::AdapterIndex { row, index, count } => {
                write!(
                    f,
                    "row {row} names adapter {index}, but there are only {count}"
                )
            }
            LoraError::UnknownAdapter { row: Some(row) } => {
                write!(
                    f,
                    "row {row} names an adapter id that is not registered in this layer"
                )
            }
            LoraError::UnknownAdapter { row: None } => {
                write!(f, "adapter id is not registered in this layer")
            }
        }
    }
}

impl std::error::Error for LoraError {}

/// `a * b`, or `Overflow { what }`.
pub(crate) fn mul(what: &'static str, a: usize, b: usize) -> Result<usize, LoraError> {
    a.checked_mul(b).ok_or(LoraError::Overflow { what })
}

/// `a + b`, or `Overflow { what }`.
pub(crate) fn add(what: &'static str, a: usize, b: usize) -> Result<usize, LoraError> {
    a.checked_add(b).ok_or(LoraError::Overflow { what })
}

/// `Ok` if `actual == expected`, else the `Length` error naming `arg`.
pub(crate) fn expect_len(
    arg: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), LoraError> {
    if expected == actual {
        Ok(())
    } else {
        Err(LoraError::Length {
            arg,
            expected,
            actual,
        })
    }
}
