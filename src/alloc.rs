//! The global allocator: a bump arena for start-up, the system allocator
//! after. musl's malloc maps and unmaps pages for small allocations; the
//! few hundred that argument parsing and planning make cost more system
//! calls than everything else smartem-init does before the service starts.
//! The arena is a static buffer: allocations are carved from it in order
//! and never reused (start-up allocates ~100 KB once); when it is full,
//! or for large blocks, the system allocator takes over. Memory from the
//! arena is never returned, which bounds it at ARENA bytes for the life of
//! the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const ARENA: usize = 256 * 1024;
/// Larger blocks go to the system allocator directly.
const LARGE: usize = 32 * 1024;

#[repr(C, align(4096))]
struct Buffer(UnsafeCell<[u8; ARENA]>);

// SAFETY: the buffer is only handed out in disjoint pieces via the atomic cursor.
unsafe impl Sync for Buffer {}

pub struct Arena {
    buf: Buffer,
    next: AtomicUsize,
}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            buf: Buffer(UnsafeCell::new([0; ARENA])),
            next: AtomicUsize::new(0),
        }
    }

    fn start(&self) -> usize {
        self.buf.0.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.start() && p < self.start() + ARENA
    }

    fn carve(&self, layout: Layout) -> Option<*mut u8> {
        if layout.size() > LARGE {
            return None;
        }
        let base = self.start();
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let aligned = (base + cur).next_multiple_of(layout.align()) - base;
            let end = aligned.checked_add(layout.size())?;
            if end > ARENA {
                return None;
            }
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some((base + aligned) as *mut u8),
                Err(now) => cur = now,
            }
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

// SAFETY: every pointer returned is either a fresh, exclusive, suitably
// aligned piece of the arena or comes from System; dealloc and realloc
// tell the two apart by address.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.carve(layout) {
            Some(p) => p,
            None => System.alloc(layout),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.carve(layout) {
            // The arena starts zeroed, and pieces are never reused.
            Some(p) => p,
            None => System.alloc_zeroed(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            return System.realloc(ptr, layout, new_size);
        }
        if new_size <= layout.size() {
            return ptr;
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_aligned_disjoint_and_fall_back_when_large_or_full() {
        let arena = Box::new(Arena::new());
        unsafe {
            let a = arena.alloc(Layout::from_size_align(3, 1).unwrap());
            let b = arena.alloc(Layout::from_size_align(16, 16).unwrap());
            assert!(arena.owns(a) && arena.owns(b));
            assert_eq!(b as usize % 16, 0);
            assert!(b as usize >= a as usize + 3);
            // Growing keeps the contents.
            std::ptr::copy_nonoverlapping(b"abc".as_ptr(), a, 3);
            let grown = arena.realloc(a, Layout::from_size_align(3, 1).unwrap(), 100);
            assert_eq!(std::slice::from_raw_parts(grown, 3), b"abc");
            // Large blocks come from the system allocator and go back to it.
            let big_layout = Layout::from_size_align(LARGE + 1, 8).unwrap();
            let big = arena.alloc(big_layout);
            assert!(!arena.owns(big));
            arena.dealloc(big, big_layout);
            // When full, the system allocator takes over.
            let chunk = Layout::from_size_align(LARGE, 8).unwrap();
            let mut last = std::ptr::null_mut();
            for _ in 0..(ARENA / LARGE + 2) {
                last = arena.alloc(chunk);
            }
            assert!(!last.is_null() && !arena.owns(last));
            arena.dealloc(last, chunk);
        }
    }
}
