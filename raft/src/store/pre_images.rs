//! A consistent view of the state-machine trees for a snapshot build, without stopping applies.
//!
//! sled iteration is not snapshot-isolated, and reading a large state takes seconds. Instead of
//! holding applies off for that long, a build *freezes* the state at an apply boundary: from then
//! on, every apply records the value a key had at the freeze (its pre-image) before it first
//! writes that key. The build writes the live value of every key with no pre-image, then every
//! pre-image (which also covers keys deleted before the iteration reached them). Applies only
//! pay one extra read per key they touch while a build runs.
//!
//! Why a live read is safe: an apply records a pre-image before its transaction commits. So
//! when the builder reads a value written after the freeze, the pre-image of that key is
//! already recorded, and the builder (which looks it up after the read) skips the live value.
//! A key read live before its first write since the freeze is written twice, both times with
//! its freeze-time value; installing it twice gives the same state.

use std::collections::HashMap;
use std::sync::Mutex;

use sled::IVec;

/// The freeze point's values of the keys written since it: `(tree, key)` → the value then
/// (`None`: the key did not exist).
type Images = HashMap<(u8, IVec), Option<IVec>>;

/// Shared between the applier and the snapshot builder.
#[derive(Default)]
pub(crate) struct PreImages {
    images: Mutex<Option<Images>>,
}

impl PreImages {
    /// Starts recording. Call with applies held off, right after reading the applied state
    /// the snapshot will claim.
    pub(crate) fn freeze(&self) {
        *self.lock() = Some(Images::new());
    }

    /// Stops recording and returns what was recorded.
    pub(crate) fn thaw(&self) -> Images {
        self.lock().take().unwrap_or_default()
    }

    /// Before an apply writes `key` of `tree`: records the value it has now, read by `current`,
    /// if a freeze is on and this is the key's first write since. `current` is only called then.
    pub(crate) fn before_write<E>(
        &self,
        tree: usize,
        key: &[u8],
        current: impl FnOnce() -> Result<Option<IVec>, E>,
    ) -> Result<(), E> {
        let mut guard = self.lock();
        let Some(images) = guard.as_mut() else { return Ok(()) };
        if let std::collections::hash_map::Entry::Vacant(slot) = images.entry((tree as u8, IVec::from(key))) {
            slot.insert(current()?);
        }
        Ok(())
    }

    /// Whether a key the builder just read live was written since the freeze (so that its
    /// live value is not the freeze-time one, which [`PreImages::thaw`] returns instead).
    pub(crate) fn written_since_freeze(&self, tree: usize, key: &IVec) -> bool {
        let guard = self.lock();
        guard.as_ref().is_some_and(|images| !images.is_empty() && images.contains_key(&(tree as u8, key.clone())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Images>> {
        // A panic while holding this lock leaves a plain map behind; still usable.
        self.images.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
