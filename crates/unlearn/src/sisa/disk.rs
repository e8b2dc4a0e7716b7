//! The on-disk form of a SISA ensemble (Bourtoule et al. 2021): a self-describing directory.
//!
//! ```text
//! DIR/plan.json                      the SisaPlan (config, model, recipe, seed, data and
//!                                    split hashes, removed ids, per-shard members hashes)
//! DIR/split.json                     the split (its forget set: every removed id)
//! DIR/shard-007/slice-0.safetensors  checkpoint after slice 0 (… up to slice R−2)
//! DIR/shard-007/weights.safetensors  the shard's model (the checkpoint after slice R−1)
//! DIR/shard-007/shard.json           the ShardRecord: plan hash, members hash, each file's
//!                                    name, size, SHA-256 and model hash
//! DIR/sisa.json                      the SisaManifest, written by assembly: the plan and
//!                                    every shard record, and what the last run recomputed
//! ```
//!
//! Each shard directory is written by whoever trains the shard (one process, or one job of
//! an array), every file atomically; `plan.json` and `split.json` are identical for every job
//! of one ensemble. Assembly checks every shard against the plan and every file against its
//! record, and refuses a missing, truncated or mismatched artifact with one line naming it.

use super::{
    FORMAT, RetrainSummary, ShardModel, ShardRetraining, SisaEnsemble, SisaPlan, ensemble_hash,
};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::{Network, TOOL_VERSION, model_hash};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The plan file of an ensemble directory.
pub const PLAN_FILE: &str = "plan.json";
/// The split file of an ensemble directory.
pub const SPLIT_FILE: &str = "split.json";
/// The manifest written by assembly.
pub const MANIFEST_FILE: &str = "sisa.json";
/// The record file in each shard directory.
pub const SHARD_FILE: &str = "shard.json";

/// Directory name of shard `index`: `shard-007`.
pub fn shard_dir(index: usize) -> String {
    format!("shard-{index:03}")
}

/// File name of the checkpoint after stage `slice` of `slices`: `slice-R.safetensors`, and
/// `weights.safetensors` for the last (the shard's model).
pub fn checkpoint_file(slice: usize, slices: usize) -> String {
    if slice + 1 == slices {
        "weights.safetensors".to_string()
    } else {
        format!("slice-{slice}.safetensors")
    }
}

/// One artifact file of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the ensemble directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// [`model_hash`] of the weights in it.
    pub model_hash: String,
}

/// What a shard job wrote (Bourtoule et al. 2021's per-shard artifact): its plan, members and
/// files, and what its last run trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// [`FORMAT`].
    pub format: String,
    /// Hash of the plan the shard was trained for.
    pub plan_hash: String,
    /// The shard's index.
    pub index: usize,
    /// Members hash of the shard's slices.
    pub members_hash: String,
    /// The checkpoints, stage 0 first; the last is the shard's model.
    pub files: Vec<FileRecord>,
    /// First stage the last run trained (0: full training; R: kept as it was).
    pub trained_from: usize,
    /// Ids the last run removed from this shard.
    #[serde(default)]
    pub removed: Vec<u32>,
    /// Optimisation steps of the last run.
    pub steps: usize,
    /// Seconds of the last run.
    pub seconds: f64,
}

/// The manifest of an assembled SISA ensemble (Bourtoule et al. 2021): the plan, every
/// shard's record (file names and SHA-256), and what the last training or deletion recomputed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SisaManifest {
    /// [`FORMAT`].
    pub format: String,
    /// Version of `unlearn` that assembled it.
    pub tool_version: String,
    /// The plan.
    pub plan: SisaPlan,
    /// Its hash.
    pub plan_hash: String,
    /// Hash of the ensemble (configuration and shard model hashes).
    pub ensemble_hash: String,
    /// Every shard's record.
    pub shards: Vec<ShardRecord>,
    /// What the last run (training or deletion) recomputed.
    pub last_run: RetrainSummary,
}

/// Whether `path` is a SISA ensemble directory (holds a manifest or a plan).
pub fn is_sisa_dir(path: &Path) -> bool {
    path.is_dir() && (path.join(MANIFEST_FILE).exists() || path.join(PLAN_FILE).exists())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Safetensors bytes of a network (the same bytes for the same weights).
pub fn network_bytes(network: &Network) -> Result<Vec<u8>> {
    crate::model::network_safetensors(network)
}

fn network_from_bytes(
    plan: &SisaPlan,
    bytes: Vec<u8>,
    device: &Device,
    path: &Path,
) -> Result<Network> {
    let mut network = Network::new(&plan.spec, device, 0)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let applied = network
        .load_from(&mut store)
        .map_err(|e| Error::format(path, format!("not a shard weights file: {e}")))?;
    if !applied.missing.is_empty() || !applied.errors.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "weights do not fit the model {} ({} missing, {} errors)",
                plan.spec.describe(),
                applied.missing.len(),
                applied.errors.len()
            ),
        ));
    }
    Ok(network)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(path, format!("not a {what}: {e}")))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::format(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}

/// Reads `DIR/plan.json`.
pub fn read_plan(dir: &Path) -> Result<SisaPlan> {
    let path = dir.join(PLAN_FILE);
    let plan: SisaPlan = read_json(&path, "SISA plan")?;
    if plan.format != FORMAT {
        return Err(Error::format(
            &path,
            format!("format '{}' is not {FORMAT}", plan.format),
        ));
    }
    Ok(plan)
}

/// Writes `DIR/plan.json` and `DIR/split.json`. A directory that already holds another plan
/// is refused (shard jobs of one ensemble all write the same plan) unless `replace`.
pub fn write_plan(dir: &Path, plan: &SisaPlan, split: &Split, replace: bool) -> Result<()> {
    if split.hash() != plan.split_hash {
        return Err(Error::invalid(format!(
            "the split (hash {}) is not the plan's (hash {})",
            split.hash(),
            plan.split_hash
        )));
    }
    let path = dir.join(PLAN_FILE);
    if path.exists() && !replace {
        let existing = read_plan(dir)?;
        if existing.hash() != plan.hash() {
            return Err(Error::invalid(format!(
                "{} holds another SISA plan (hash {}; this run's is {}): use a fresh directory",
                path.display(),
                existing.hash(),
                plan.hash()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(&path, plan)?;
    split.save(dir.join(SPLIT_FILE))
}

/// Writes shard `shard`'s checkpoints and record into `DIR/shard-III/` (each file atomically,
/// the record last). `removed` are the ids its last run removed.
pub fn write_shard(
    dir: &Path,
    plan: &SisaPlan,
    shard: &ShardModel,
    removed: &[u32],
) -> Result<ShardRecord> {
    let slices = plan.config.slices;
    if shard.checkpoints.len() != slices {
        return Err(Error::invalid(format!(
            "shard {} has {} checkpoints for {slices} slices",
            shard.index,
            shard.checkpoints.len()
        )));
    }
    let subdir = shard_dir(shard.index);
    std::fs::create_dir_all(dir.join(&subdir)).map_err(|e| Error::io(dir.join(&subdir), e))?;
    let mut files = Vec::with_capacity(slices);
    for (slice, network) in shard.checkpoints.iter().enumerate() {
        let name = format!("{subdir}/{}", checkpoint_file(slice, slices));
        let bytes = network_bytes(network)?;
        write_atomic(dir.join(&name), &bytes)?;
        files.push(FileRecord {
            name,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            model_hash: model_hash(network),
        });
    }
    let record = ShardRecord {
        format: FORMAT.to_string(),
        plan_hash: plan.hash(),
        index: shard.index,
        members_hash: plan.shards[shard.index].members_hash.clone(),
        files,
        trained_from: shard.trained_from,
        removed: removed.to_vec(),
        steps: shard.steps,
        seconds: shard.seconds,
    };
    write_json(&dir.join(&subdir).join(SHARD_FILE), &record)?;
    Ok(record)
}

/// Checks a shard record against the plan and its files against the record, and loads the
/// checkpoints onto `device`. Every refusal is one line naming the file.
fn load_shard(
    dir: &Path,
    plan: &SisaPlan,
    plan_hash: &str,
    index: usize,
    record: &ShardRecord,
    record_path: &Path,
    device: &Device,
) -> Result<ShardModel> {
    let refuse = |reason: String| Err(Error::format(record_path, reason));
    if record.format != FORMAT {
        return refuse(format!("format '{}' is not {FORMAT}", record.format));
    }
    if record.index != index {
        return refuse(format!(
            "records shard {} where shard {index} belongs",
            record.index
        ));
    }
    if record.plan_hash != plan_hash {
        return refuse(format!(
            "shard {index} was trained for another plan (hash {}; {} is {plan_hash}): retrain it for this plan",
            record.plan_hash,
            dir.join(PLAN_FILE).display()
        ));
    }
    if record.members_hash != plan.shards[index].members_hash {
        return refuse(format!(
            "shard {index} was trained on other samples (members hash {}; the plan's is {})",
            record.members_hash, plan.shards[index].members_hash
        ));
    }
    let slices = plan.config.slices;
    if record.files.len() != slices {
        return refuse(format!(
            "shard {index} records {} checkpoints for {slices} slices",
            record.files.len()
        ));
    }
    let mut checkpoints = Vec::with_capacity(slices);
    for (slice, file) in record.files.iter().enumerate() {
        let expected = format!("{}/{}", shard_dir(index), checkpoint_file(slice, slices));
        if file.name != expected {
            return refuse(format!(
                "names file '{}' where '{expected}' belongs",
                file.name
            ));
        }
        let path = dir.join(&file.name);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.len() as u64 != file.bytes {
            return Err(Error::format(
                &path,
                format!(
                    "truncated or altered shard artifact: {} bytes where {} records {}",
                    bytes.len(),
                    record_path.display(),
                    file.bytes
                ),
            ));
        }
        let digest = sha256_hex(&bytes);
        if digest != file.sha256 {
            return Err(Error::format(
                &path,
                format!(
                    "altered shard artifact: SHA-256 {digest} where {} records {}",
                    record_path.display(),
                    file.sha256
                ),
            ));
        }
        let network = network_from_bytes(plan, bytes, device, &path)?;
        let found = model_hash(&network);
        if found != file.model_hash {
            return Err(Error::format(
                &path,
                format!(
                    "weights hash {found} does not match the record's {}",
                    file.model_hash
                ),
            ));
        }
        checkpoints.push(network);
    }
    Ok(ShardModel {
        index,
        checkpoints,
        trained_from: record.trained_from,
        steps: record.steps,
        seconds: record.seconds,
    })
}

fn check_plan(dir: &Path, plan: &SisaPlan) -> Result<()> {
    plan.config.validate()?;
    if plan.shards.len() != plan.config.shards
        || plan
            .shards
            .iter()
            .any(|shard| shard.slice_sizes.len() != plan.config.slices)
    {
        return Err(Error::format(
            dir.join(PLAN_FILE),
            "the per-shard entries do not match the configuration",
        ));
    }
    Ok(())
}

/// What the shards' last runs recomputed, from their records.
fn summary_of(plan: &SisaPlan, records: &[ShardRecord]) -> RetrainSummary {
    let slices = plan.config.slices;
    let mut shards = Vec::new();
    let mut recomputed = 0;
    let mut steps = 0;
    for record in records {
        if record.trained_from < slices {
            shards.push(ShardRetraining {
                shard: record.index,
                slices: (record.trained_from..slices).collect(),
                removed: record.removed.clone(),
            });
            recomputed += (record.trained_from..slices)
                .map(|slice| plan.stage_cost(record.index, slice))
                .sum::<u64>();
            steps += record.steps;
        }
    }
    let total = plan.total_cost();
    RetrainSummary {
        shards,
        recomputed_cost: recomputed,
        total_cost: total,
        share: recomputed as f64 / total.max(1) as f64,
        steps,
    }
}

/// Builds the ensemble in `dir` from its plan and every shard's artifacts (`unlearn sisa
/// assemble`), checking each against the plan and its record, and writes `DIR/sisa.json`.
/// A missing, truncated or mismatched shard artifact is refused with one line naming it.
pub fn assemble(dir: &Path, device: &Device) -> Result<(SisaManifest, SisaEnsemble)> {
    let plan = read_plan(dir)?;
    check_plan(dir, &plan)?;
    let split_path = dir.join(SPLIT_FILE);
    let split = Split::load(&split_path)?;
    if split.hash() != plan.split_hash {
        return Err(Error::format(
            &split_path,
            format!(
                "split hash {} is not the plan's {}",
                split.hash(),
                plan.split_hash
            ),
        ));
    }
    let plan_hash = plan.hash();
    let mut records = Vec::with_capacity(plan.config.shards);
    let mut shards = Vec::with_capacity(plan.config.shards);
    for index in 0..plan.config.shards {
        let record_path = dir.join(shard_dir(index)).join(SHARD_FILE);
        if !record_path.exists() {
            return Err(Error::format(
                &record_path,
                format!(
                    "shard {index} of {} has not been trained (no shard record)",
                    plan.config.shards
                ),
            ));
        }
        let record: ShardRecord = read_json(&record_path, "SISA shard record")?;
        shards.push(load_shard(
            dir,
            &plan,
            &plan_hash,
            index,
            &record,
            &record_path,
            device,
        )?);
        records.push(record);
    }
    let ensemble = SisaEnsemble { plan, shards };
    let manifest = SisaManifest {
        format: FORMAT.to_string(),
        tool_version: TOOL_VERSION.to_string(),
        last_run: summary_of(&ensemble.plan, &records),
        plan: ensemble.plan.clone(),
        plan_hash,
        ensemble_hash: ensemble_hash(&ensemble.plan.config, &ensemble.shard_hashes()),
        shards: records,
    };
    write_json(&dir.join(MANIFEST_FILE), &manifest)?;
    Ok((manifest, ensemble))
}

/// Loads an assembled ensemble (`DIR/sisa.json`), checking every artifact against the
/// manifest, and its split.
pub fn load(dir: &Path, device: &Device) -> Result<(SisaManifest, SisaEnsemble, Split)> {
    let path = dir.join(MANIFEST_FILE);
    if !path.exists() {
        if dir.join(PLAN_FILE).exists() {
            return Err(Error::format(
                &path,
                "missing: the ensemble's shards were trained but not assembled (run `unlearn sisa assemble` on the directory)",
            ));
        }
        return Err(Error::format(
            &path,
            "missing: not a SISA ensemble directory",
        ));
    }
    let manifest: SisaManifest = read_json(&path, "SISA manifest")?;
    if manifest.format != FORMAT {
        return Err(Error::format(
            &path,
            format!("format '{}' is not {FORMAT}", manifest.format),
        ));
    }
    let plan = manifest.plan.clone();
    check_plan(dir, &plan)?;
    let plan_hash = plan.hash();
    if manifest.plan_hash != plan_hash {
        return Err(Error::format(
            &path,
            format!(
                "plan hash {} does not match its plan ({plan_hash}): the manifest was edited",
                manifest.plan_hash
            ),
        ));
    }
    if manifest.shards.len() != plan.config.shards {
        return Err(Error::format(
            &path,
            format!(
                "{} shard records for {} shards",
                manifest.shards.len(),
                plan.config.shards
            ),
        ));
    }
    let mut shards = Vec::with_capacity(plan.config.shards);
    for (index, record) in manifest.shards.iter().enumerate() {
        shards.push(load_shard(
            dir, &plan, &plan_hash, index, record, &path, device,
        )?);
    }
    let split_path = dir.join(SPLIT_FILE);
    let split = Split::load(&split_path)?;
    if split.hash() != plan.split_hash {
        return Err(Error::format(
            &split_path,
            format!(
                "split hash {} is not the plan's {}",
                split.hash(),
                plan.split_hash
            ),
        ));
    }
    Ok((manifest, SisaEnsemble { plan, shards }, split))
}

/// Writes a whole ensemble into `dir` (plan, split, every shard, then the manifest), after
/// removing any previous manifest so that an interrupted write is never taken for an
/// assembled ensemble. `summary` (of a deletion) names the ids removed from each shard.
pub fn save(
    dir: &Path,
    ensemble: &SisaEnsemble,
    split: &Split,
    summary: Option<&RetrainSummary>,
    device: &Device,
) -> Result<SisaManifest> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::invalid(format!(
            "{} exists and is not a directory",
            dir.display()
        )));
    }
    refuse_foreign_dir(dir)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    if manifest_path.exists() {
        std::fs::remove_file(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    }
    write_plan(dir, &ensemble.plan, split, true)?;
    for shard in &ensemble.shards {
        let removed = summary
            .and_then(|summary| summary.shards.iter().find(|s| s.shard == shard.index))
            .map(|s| s.removed.clone())
            .unwrap_or_default();
        write_shard(dir, &ensemble.plan, shard, &removed)?;
    }
    Ok(assemble(dir, device)?.0)
}

/// True when `a` and `b` name the same file or directory (compared canonically when both
/// exist): an ensemble cannot be rewritten into the directory its checkpoints are read from.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Refuses to write an ensemble into a non-empty directory that is not a SISA directory.
pub fn refuse_foreign_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() && !is_sisa_dir(dir) {
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        if entries.next().is_some() {
            return Err(Error::invalid(format!(
                "{} is a non-empty directory that holds no SISA ensemble: refusing to write into it",
                dir.display()
            )));
        }
    }
    Ok(())
}
