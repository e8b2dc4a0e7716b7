//! A cache of trained originals and retrained references, keyed by the dataset hash, the
//! split hash and the recipe hash, so a grid trains each reference once and reruns reuse it.

use crate::error::{Error, Result};
use crate::io::short_hash;
use crate::model::Artifact;
use crate::pipeline::Setup;
use std::path::{Path, PathBuf};

/// Models on disk under one directory, one safetensors file (+ sidecar) per key.
#[derive(Debug, Clone)]
pub struct ModelCache {
    directory: PathBuf,
}

/// Hash of everything besides the data and split that decides a trained model: the recipe
/// (including its seed), the model spec and the initialisation seed.
pub fn recipe_hash(setup: &Setup) -> String {
    let description = serde_json::json!({
        "recipe": setup.recipe,
        "spec": setup.spec,
        "seed": setup.seed,
    });
    short_hash(description.to_string().as_bytes())
}

impl ModelCache {
    /// A cache in `directory` (created on first write).
    pub fn new(directory: impl AsRef<Path>) -> ModelCache {
        ModelCache {
            directory: directory.as_ref().to_path_buf(),
        }
    }

    /// The file for a model of `role` (`original` or `retrain`) in `setup`.
    pub fn path(&self, role: &str, setup: &Setup) -> PathBuf {
        let key = format!(
            "{role}-{}-{}-{}",
            setup.data.train.hash(),
            setup.split.hash(),
            recipe_hash(setup)
        );
        self.directory.join(format!("{key}.safetensors"))
    }

    /// The cached model of `role`, or a freshly trained one (then stored). Returns whether it
    /// came from the cache. `fresh` ignores and overwrites the cache.
    pub fn get_or_train(
        &self,
        role: &str,
        setup: &Setup,
        fresh: bool,
        train: impl FnOnce() -> Result<Artifact>,
    ) -> Result<(Artifact, bool)> {
        let path = self.path(role, setup);
        if !fresh && path.exists() {
            match Artifact::load(&path, &setup.device) {
                Ok(artifact) => return Ok((artifact, true)),
                Err(error) => {
                    return Err(Error::invalid(format!(
                        "cached model {} is unreadable ({error}); rerun with --fresh",
                        path.display()
                    )));
                }
            }
        }
        let artifact = train()?;
        artifact.save(&path)?;
        Ok((artifact, false))
    }
}
