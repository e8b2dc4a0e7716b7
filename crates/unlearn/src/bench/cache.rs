//! A cache of trained originals and retrained references, keyed by the dataset hash, the
//! split hash and the recipe hash, so a grid trains each reference once and reruns reuse it.
//! Beside each model, `KEY.timing.json` records the machine and load its training was timed
//! under: a cached time was measured in another run and is shown as such, never divided by a
//! time measured now.

use crate::error::{Error, Result};
use crate::io::{short_hash, write_atomic};
use crate::machine::Machine;
use crate::model::Artifact;
use crate::pipeline::Experiment;
use std::path::{Path, PathBuf};

/// Models on disk under one directory, one safetensors file (+ sidecar) per key.
#[derive(Debug, Clone)]
pub struct ModelCache {
    directory: PathBuf,
}

/// Hash of everything besides the data and split that decides a trained model: the recipe
/// (including its seed), the model spec and the initialisation seed.
pub fn recipe_hash(setup: &Experiment) -> String {
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
    pub fn path(&self, role: &str, setup: &Experiment) -> PathBuf {
        let key = format!(
            "{role}-{}-{}-{}",
            setup.data.train.hash(),
            setup.split.hash(),
            recipe_hash(setup)
        );
        self.directory.join(format!("{key}.safetensors"))
    }

    /// Where and when the cached model of `role` was timed, when that was recorded.
    pub fn timing(&self, role: &str, setup: &Experiment) -> Option<Machine> {
        let path = self.path(role, setup).with_extension("timing.json");
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The cached model of `role`, or a freshly trained one (then stored, with the machine it
    /// was timed on). Returns whether it came from the cache. `fresh` ignores and overwrites
    /// the cache.
    pub fn get_or_train(
        &self,
        role: &str,
        setup: &Experiment,
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
        let timing = serde_json::to_vec_pretty(&Machine::current())
            .map_err(|e| Error::invalid(format!("cannot encode the timing: {e}")))?;
        write_atomic(path.with_extension("timing.json"), &timing)?;
        Ok((artifact, false))
    }
}
