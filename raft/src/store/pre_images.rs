//! A consistent view of the state-machine trees for a snapshot build, without stopping applies.
//!
//! sled iteration is not snapshot-isolated, and reading a large state takes seconds. Instead of
//! holding applies off for that long, a build *freezes* the state at an apply boundary: from then
//! on, every apply records the value a key had at the freeze (its pre-image) before it first
//! writes that key. The build reads the live trees and, for every key recorded, uses the
//! pre-image instead; keys that existed at the freeze but were deleted before the iteration
//! reached them are emitted from their pre-images at the end. Applies only pay one extra read
//! per key they touch while a build runs.
//!
//! Why a live read is safe: an apply records a pre-image before its transaction commits. So
//! when the builder reads a value written after the freeze, the pre-image of that key is
//! already recorded, and the builder (which looks it up after the read) finds it.

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

    /// The freeze-time value of a key the builder just read live: `Some(image)` if the key was
    /// written since the freeze, `None` if the live value is the freeze-time one.
    pub(crate) fn image_of(&self, tree: usize, key: &IVec) -> Option<Option<IVec>> {
        let guard = self.lock();
        let images = guard.as_ref()?;
        if images.is_empty() {
            return None;
        }
        images.get(&(tree as u8, key.clone())).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Images>> {
        // A panic while holding this lock leaves a plain map behind; still usable.
        self.images.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
