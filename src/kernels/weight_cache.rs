//! Transformed convolution weights kept between inference calls on the same weight tensor.
//!
//! A model run for inference convolves every batch with the same weights, and Winograd's weight
//! transform (`G g Gᵀ` for each 3x3 kernel, `n²/9` times the weights' size) is redone on each
//! call without this cache: about 4% of a ResNet-18 forward at 8 x 224, and the reason the
//! late layers, few tiles against many weights, could not take Winograd at all. Kept, they can
//! (see `winograd::choose`): ResNet-18's inference at 8 x 224 went from 23-29 to 33-37 images a
//! second, its peak RSS from 123 to 266 MB.
//!
//! A transform is keyed by the address and length of the weight's values and by the weight's
//! first dimension (the same values read as another shape transform differently), and the
//! entry holds a clone of the weight tensor itself. Both CPU backends copy a shared buffer
//! before writing to it (copy on write), so while the entry holds its clone the buffer can
//! neither change nor be freed and its address reused: a later call with the same key has the
//! same values. An
//! optimizer updating the weight in place writes a fresh copy instead (once), and the entry,
//! its tensor held by nobody else, is released at the next convolution; so are the entries of a
//! dropped model. Past [`CAPACITY_FLOATS`] the least recently used entries go first, so a
//! process holds at most that much (and the weight tensors of its entries) whatever it runs.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Floats of transformed weights the process keeps in all (256 MiB; ResNet-18's in F(4x4, 3x3)
/// take 151 MB).
const CAPACITY_FLOATS: usize = 64 << 20;

/// The process's cache, which the convolutions use.
pub(crate) static WEIGHT_CACHE: WeightCache = WeightCache::new(CAPACITY_FLOATS);

/// A tensor's `f32` values, read only: its buffer is copied before anyone writes to it while
/// this value is alive (the CPU backends' copy on write).
pub(crate) trait SharedValues: Send + Sync {
    /// The values, row-major.
    fn values(&self) -> &[f32];

    /// Whether another tensor still shares the buffer: once none does, no later call can come
    /// with these values (the model was dropped, or an optimizer wrote a new copy).
    fn held_elsewhere(&self) -> bool;
}

/// A convolution's weight as the kernels take it.
pub(crate) enum Weight<'a> {
    /// Values for this call only: transforms of them are not kept.
    Once(&'a [f32]),
    /// A tensor whose transforms may be kept for later calls with the same tensor.
    Shared(Arc<dyn SharedValues>),
}

impl Weight<'_> {
    /// The weight's values, row-major.
    pub(crate) fn values(&self) -> &[f32] {
        match self {
            Weight::Once(values) => values,
            Weight::Shared(tensor) => tensor.values(),
        }
    }
}

/// Transforms of weight tensors, at most `capacity` floats of them.
pub(crate) struct WeightCache {
    entries: Mutex<Entries>,
    capacity: usize,
}

/// What a transform is of: the weight's values by address and length, and which transform of
/// them at which first dimension (see [`WeightCache::transformed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    address: usize,
    len: usize,
    transform: (u8, usize),
}

struct Entry {
    key: Key,
    /// Keeps the weight's buffer alive and unchanged while the entry exists.
    tensor: Arc<dyn SharedValues>,
    transformed: Arc<Vec<f32>>,
    /// The clock at the entry's last use.
    used: u64,
}

struct Entries {
    list: Vec<Entry>,
    clock: u64,
}

impl WeightCache {
    const fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                list: Vec::new(),
                clock: 0,
            }),
            capacity,
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // The entries hold no invariant a panicking thread could break halfway.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the entries whose tensor nobody else holds any more, and their transforms. Called
    /// by every convolution, so that a training loop that evaluates now and then does not keep
    /// the transforms of weights an optimizer has since replaced.
    pub(crate) fn release_orphans(&self) {
        self.entries().list.retain(|e| e.tensor.held_elsewhere());
    }

    /// A transform of `tensor`'s values: kept from an earlier call with the same tensor and
    /// `transform`, or `build` of its values (then kept, when it fits). `transform` is the
    /// caller's number for the transform and the first dimension it reads the values with: a
    /// view of the same buffer with another shape is another entry. `build` runs without the
    /// cache's lock held, so it may run other kernels on the thread pool.
    pub(crate) fn transformed(
        &self,
        tensor: &Arc<dyn SharedValues>,
        transform: (u8, usize),
        build: impl FnOnce(&[f32]) -> Vec<f32>,
    ) -> Arc<Vec<f32>> {
        let values = tensor.values();
        let key = Key {
            address: values.as_ptr() as usize,
            len: values.len(),
            transform,
        };
        if let Some(kept) = self.entries().find(key) {
            return kept;
        }
        let transformed = Arc::new(build(values));
        let entry = Entry {
            key,
            tensor: Arc::clone(tensor),
            transformed: Arc::clone(&transformed),
            used: 0,
        };
        self.entries().insert(entry, self.capacity);
        transformed
    }
}

impl Entries {
    fn find(&mut self, key: Key) -> Option<Arc<Vec<f32>>> {
        self.clock += 1;
        let clock = self.clock;
        self.list.iter_mut().find(|e| e.key == key).map(|e| {
            e.used = clock;
            Arc::clone(&e.transformed)
        })
    }

    /// Adds `entry` (unless another thread has meanwhile), dropping the least recently used
    /// entries while the transforms pass `capacity` floats. A transform larger than the whole
    /// cache is not kept.
    fn insert(&mut self, mut entry: Entry, capacity: usize) {
        let size = entry.transformed.len();
        if size > capacity || self.list.iter().any(|e| e.key == entry.key) {
            return;
        }
        while self.floats() + size > capacity {
            let oldest = (0..self.list.len())
                .min_by_key(|&i| self.list[i].used)
                .expect("entries past the capacity");
            self.list.swap_remove(oldest);
        }
        self.clock += 1;
        entry.used = self.clock;
        self.list.push(entry);
    }

    fn floats(&self) -> usize {
        self.list.iter().map(|e| e.transformed.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values and a stand-in for the other holders of their buffer.
    struct Values(Vec<f32>, Arc<()>);

    impl SharedValues for Values {
        fn values(&self) -> &[f32] {
            &self.0
        }

        fn held_elsewhere(&self) -> bool {
            Arc::strong_count(&self.1) > 1
        }
    }

    /// A tensor of `values`, and its other holder.
    fn held(values: Vec<f32>) -> (Arc<dyn SharedValues>, Arc<()>) {
        let holder = Arc::new(());
        (Arc::new(Values(values, Arc::clone(&holder))), holder)
    }

    fn doubled(values: &[f32]) -> Vec<f32> {
        values.iter().map(|v| 2.0 * v).collect()
    }

    #[test]
    fn keeps_a_transform_per_tensor_and_transform_and_evicts_the_least_recently_used() {
        let cache = WeightCache::new(1024);
        let transformed = |t: &Arc<dyn SharedValues>, n, build: fn(&[f32]) -> Vec<f32>| {
            cache.transformed(t, (n, 10), build)
        };
        let (a, _a) = held(vec![1.0; 300]);
        let (b, _b) = held(vec![3.0; 300]);
        let first = transformed(&a, 7, doubled);
        assert_eq!(first[0], 2.0);
        let again = transformed(&a, 7, |_| panic!("kept: not built again"));
        assert!(Arc::ptr_eq(&first, &again));
        // Another transform of the same tensor, and another tensor with equal length.
        assert_eq!(transformed(&a, 8, |v| vec![v[0] + 1.0])[0], 2.0);
        assert_eq!(transformed(&b, 7, doubled)[0], 6.0);
        // The same values read with another first dimension: built, not the kept one.
        let reshaped = cache.transformed(&a, (7, 30), |v| vec![v[0] + 2.0]);
        assert_eq!(reshaped[0], 3.0);
        // `a`'s 7 used last: the next entry past the capacity (1024 floats) evicts `a`'s 8 and
        // `b`'s 7, not `a`'s 7.
        transformed(&a, 7, |_| panic!("kept"));
        let (big, _big) = held(vec![0.5; 700]);
        transformed(&big, 7, doubled);
        transformed(&a, 7, |_| panic!("still kept"));
        assert_eq!(
            transformed(&b, 7, |v| vec![v[0]])[0],
            3.0,
            "evicted, so built again"
        );
        // Larger than the whole cache: built, not kept.
        let (huge, _huge) = held(vec![1.0; 2000]);
        assert_eq!(transformed(&huge, 7, doubled).len(), 2000);
        assert_eq!(transformed(&huge, 7, |_| vec![5.0])[0], 5.0);
        assert!(cache.entries().floats() <= 1024);
    }

    #[test]
    fn releases_the_transforms_of_tensors_nobody_else_holds() {
        let cache = WeightCache::new(1024);
        let (dropped, holder) = held(vec![1.0; 10]);
        let (kept, _kept) = held(vec![2.0; 10]);
        cache.transformed(&dropped, (0, 1), doubled);
        cache.transformed(&kept, (0, 1), doubled);
        cache.release_orphans();
        assert_eq!(cache.entries().list.len(), 2);
        drop(holder);
        cache.release_orphans();
        assert_eq!(cache.entries().list.len(), 1);
        cache.transformed(&kept, (0, 1), |_| panic!("kept"));
    }
}
