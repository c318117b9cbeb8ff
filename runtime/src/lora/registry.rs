//! The registry of adapters loaded for a model.

use super::loaded::LoadedAdapter;
use crate::model::Model;
use crate::model_error::ModelError;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The handle of an adapter in an [`AdapterSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdapterId(pub u64);

/// Adapters loaded for one model, shared by its sessions. Adding and removing is thread-safe;
/// removing an adapter only drops the registry's reference: sessions that have it active keep
/// it alive until their next `set_adapters`.
#[derive(Debug, Default)]
pub struct AdapterSet {
    inner: Mutex<(u64, BTreeMap<AdapterId, Arc<LoadedAdapter>>)>,
}

impl AdapterSet {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<AdapterId, Arc<LoadedAdapter>>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads and validates an adapter file for `model` and registers it.
    pub fn load(&self, model: &Model, path: impl AsRef<Path>) -> Result<AdapterId, ModelError> {
        let a = LoadedAdapter::load(model, path)?;
        Ok(self.insert(a))
    }

    /// Registers an already loaded adapter.
    pub fn insert(&self, adapter: Arc<LoadedAdapter>) -> AdapterId {
        let mut g = self.lock();
        g.0 += 1;
        let id = AdapterId(g.0);
        g.1.insert(id, adapter);
        id
    }

    /// The adapter registered as `id`.
    pub fn get(&self, id: AdapterId) -> Option<Arc<LoadedAdapter>> {
        self.lock().1.get(&id).cloned()
    }

    /// Unregisters `id`, returning it.
    pub fn remove(&self, id: AdapterId) -> Option<Arc<LoadedAdapter>> {
        self.lock().1.remove(&id)
    }

    /// The registered ids, oldest first.
    pub fn ids(&self) -> Vec<AdapterId> {
        self.lock().1.keys().copied().collect()
    }

    /// Resolves `(id, scale)` pairs; an unknown id is an error.
    pub fn resolve(
        &self,
        ids: &[(AdapterId, f32)],
    ) -> Result<Vec<(Arc<LoadedAdapter>, f32)>, ModelError> {
        ids.iter()
            .map(|&(id, s)| {
                self.get(id)
                    .map(|a| (a, s))
                    .ok_or_else(|| ModelError::InvalidParam(format!("no adapter with id {}", id.0)))
            })
            .collect()
    }
}
