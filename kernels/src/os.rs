//! The one OS call the kernels make: huge-page advice for packed weights (Linux).

/// Advises the pages wholly inside `buf` as transparent huge pages (Linux `MADV_HUGEPAGE`), so
/// their first faults may be served with 2 MiB pages. Advice only: the contents and the
/// mapping do not change, and a kernel without THP support (an error return) is ignored.
pub(crate) fn advise_huge_pages(buf: &[f32]) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf reads a constant of the running system; no memory is involved.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = usize::try_from(page).unwrap_or(0);
        if page == 0 {
            return;
        }
        let lo = buf.as_ptr() as usize;
        let (start, end) = (
            lo.next_multiple_of(page),
            (lo + size_of_val(buf)) / page * page,
        );
        if end > start {
            // SAFETY: [start, end) lies inside `buf`, memory this process owns, and is page
            // aligned at both ends; MADV_HUGEPAGE changes only how later page faults there are
            // served, never the contents or the validity of the mapping.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}
