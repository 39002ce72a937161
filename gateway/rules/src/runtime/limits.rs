//! The store limits of one rule call. The memory cap is the rule's total:
//! a component holds several core instances (wit-bindgen's shim modules,
//! componentize-js' engine and adapters), each may define its own linear
//! memory, and one module may define several (multi-memory). A cap per
//! memory would let a rule use the cap as many times as it has memories, so
//! growth is summed over every memory of the store.

use wasmtime::ResourceLimiter;

/// Memories a rule's store may create: enough for components made of several
/// core modules, few enough that bookkeeping stays trivial.
pub(super) const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 32;
const MAX_INSTANCES: usize = 32;
const MAX_TABLE_ELEMENTS: usize = 100_000;

pub(super) struct Limiter {
    memory_cap: usize,
    /// Bytes of linear memory granted so far, over all memories.
    memory_total: usize,
    /// The last growth granted, taken back if the engine could not apply it.
    last_growth: usize,
    exceeded: bool,
    /// Bytes the refused growth would have brought the total to.
    asked: usize,
}

impl Limiter {
    pub(super) fn new(memory_cap: usize) -> Limiter {
        Limiter {
            memory_cap,
            memory_total: 0,
            last_growth: 0,
            exceeded: false,
            asked: 0,
        }
    }

    /// Bytes of linear memory in use over all memories (what counts
    /// against the cap).
    pub(super) fn in_use(&self) -> usize {
        self.memory_total
    }

    /// Whether the rule asked for more memory than its cap.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The cap, and the total the refused growth asked for (0 if none was
    /// refused).
    pub(super) fn refused(&self) -> (usize, usize) {
        (self.memory_cap, self.asked)
    }
}

impl ResourceLimiter for Limiter {
    /// Also called when a memory is created (`current` 0, `desired` its
    /// initial size), so initial sizes count too.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_total.saturating_add(growth);
        if total > self.memory_cap {
            self.exceeded = true;
            self.asked = total;
            // Trap right away instead of letting the guest see a failed grow.
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes exceeded ({} bytes in use, {growth} more asked for)",
                self.memory_cap,
                self.memory_total
            ));
        }
        self.memory_total = total;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_total -= core::mem::take(&mut self.last_growth);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_cap_is_the_sum_over_all_memories() {
        let mut l = Limiter::new(8 * MIB);
        // Three memories created at 1 MiB, each grown to 3 MiB: every one
        // stays under the cap, together they pass it.
        for _ in 0..3 {
            assert!(l.memory_growing(0, MIB, None).unwrap());
        }
        assert!(l.memory_growing(MIB, 3 * MIB, None).unwrap());
        assert!(l.memory_growing(MIB, 3 * MIB, None).unwrap());
        assert!(!l.exceeded());
        let e = l.memory_growing(MIB, 3 * MIB, None).unwrap_err();
        assert!(e.to_string().contains("memory cap of 8388608 bytes"), "{e}");
        assert!(l.exceeded());
    }

    #[test]
    fn a_failed_growth_is_not_counted() {
        let mut l = Limiter::new(4 * MIB);
        assert!(l.memory_growing(0, 3 * MIB, None).unwrap());
        l.memory_grow_failed(wasmtime::format_err!("over the module's maximum"))
            .unwrap();
        assert!(l.memory_growing(0, 4 * MIB, None).unwrap());
        assert!(!l.exceeded());
    }
}
