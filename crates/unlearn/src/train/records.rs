//! The record store of amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, "Amnesiac Machine
//! Learning"): one file holding what training recorded about the sensitive samples, so that
//! their influence can later be subtracted from the model.
//!
//! Layout on disk (all integers little-endian):
//!
//! ```text
//! magic "UNLRNREC" | format version u32 | header length u64 | header (JSON) | header checksum u64
//! | records, back to back
//! ```
//!
//! The JSON header names the layout (per-sample, per-batch or per-group records), the parameter
//! order and shapes, the value encoding (f32, f16 or top-k sparse), the hash of the model the
//! records belong to, the training recipe, and an index giving every record's ids, offset, length
//! and checksum, so that one sample's record is read with one seek, without loading the others.
//! Checksums are 64-bit FNV-1a; a truncated file, a corrupt header or record, or a file made for
//! another model is refused with a one-line error.

use crate::error::{Error, Result};
use crate::model::{ArtifactMetadata, ParameterSlot};
use crate::train::Recipe;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"UNLRNREC";
/// Version 2: per-sample contributions account for weight decay (version 1 weighted them by
/// momentum alone) and the header carries the initial-weight scale.
const FORMAT_VERSION: u32 = 2;
/// Bytes before the JSON header: magic, version, header length.
const PREAMBLE_BYTES: u64 = 8 + 4 + 8;
/// A header larger than this is taken as corruption rather than allocated.
const MAX_HEADER_BYTES: u64 = 1 << 30;

/// What each record holds (Graves, Nagisetty, Ganesh 2021, batch level; and the per-sample
/// variant of docs/algorithms.md §C2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordLayout {
    /// One record per sensitive sample i: its accumulated contribution C_i = Σ_t (w_t / b)
    /// ∇ℓ_i(θ_t), w_t the weight with which momentum and weight decay carry step t's gradient to
    /// the final weights; unlearning adds Σ_{i∈F} C_i.
    PerSample,
    /// One record per step whose batch held a sensitive sample: Δθ = θ_after − θ_before;
    /// unlearning subtracts the Δθ of every batch that held a forgotten sample.
    PerBatch,
    /// One running sum of Δθ per group (e.g. class) of sensitive samples that is always
    /// deleted together; unlearning subtracts the sums of the forgotten groups.
    PerGroup,
    /// One sum of the per-sample contributions C_i per group (e.g. class) of sensitive samples
    /// that is always deleted together; unlearning adds the sums of the forgotten groups.
    PerSampleGroup,
}

impl RecordLayout {
    /// The recorder / method name that produces this layout.
    pub fn method_name(self) -> &'static str {
        match self {
            RecordLayout::PerSample | RecordLayout::PerSampleGroup => "amnesiac-sample",
            RecordLayout::PerBatch | RecordLayout::PerGroup => "amnesiac-batch",
        }
    }
}

/// How record values are stored (Graves, Nagisetty, Ganesh 2021 store f32 updates; f16 and
/// top-k are the memory savings listed in docs/algorithms.md §C2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ValueEncoding {
    /// 4 bytes a value.
    F32,
    /// IEEE half precision, 2 bytes a value.
    F16,
    /// The `ceil(fraction · P)` largest-magnitude values, each as (u32 index, f32 value).
    TopK {
        /// Fraction of the coordinates kept, in (0, 1].
        fraction: f64,
    },
}

impl ValueEncoding {
    /// Parses `f32`, `f16` or `topk:FRACTION` (e.g. `topk:0.01`).
    pub fn parse(text: &str) -> Result<ValueEncoding> {
        match text {
            "f32" => Ok(ValueEncoding::F32),
            "f16" => Ok(ValueEncoding::F16),
            _ => match text.strip_prefix("topk:").map(str::parse::<f64>) {
                Some(Ok(fraction)) if fraction > 0.0 && fraction <= 1.0 => {
                    Ok(ValueEncoding::TopK { fraction })
                }
                _ => Err(Error::invalid(format!(
                    "unknown record format '{text}' (expected f32, f16 or topk:FRACTION with 0 < FRACTION ≤ 1)"
                ))),
            },
        }
    }

    /// Short name, as [`ValueEncoding::parse`] reads it.
    pub fn describe(&self) -> String {
        match self {
            ValueEncoding::F32 => "f32".into(),
            ValueEncoding::F16 => "f16".into(),
            ValueEncoding::TopK { fraction } => format!("topk:{fraction}"),
        }
    }

    /// Number of values kept out of `parameters` by top-k (all of them otherwise).
    pub fn kept(&self, parameters: usize) -> usize {
        match self {
            ValueEncoding::TopK { fraction } => {
                ((fraction * parameters as f64).ceil() as usize).clamp(1, parameters.max(1))
            }
            _ => parameters,
        }
    }

    /// Bytes one record of `parameters` values takes.
    pub fn record_bytes(&self, parameters: usize) -> u64 {
        match self {
            ValueEncoding::F32 => 4 * parameters as u64,
            ValueEncoding::F16 => 2 * parameters as u64,
            ValueEncoding::TopK { .. } => 8 * self.kept(parameters) as u64,
        }
    }

    fn encode(&self, values: &[f32]) -> Vec<u8> {
        match self {
            ValueEncoding::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ValueEncoding::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            ValueEncoding::TopK { .. } => {
                let kept = self.kept(values.len());
                let mut order: Vec<u32> = (0..values.len() as u32).collect();
                if kept < order.len() {
                    order.select_nth_unstable_by(kept, |&a, &b| {
                        values[b as usize]
                            .abs()
                            .total_cmp(&values[a as usize].abs())
                    });
                    order.truncate(kept);
                }
                order.sort_unstable();
                order
                    .iter()
                    .flat_map(|&index| {
                        let mut pair = index.to_le_bytes().to_vec();
                        pair.extend(values[index as usize].to_le_bytes());
                        pair
                    })
                    .collect()
            }
        }
    }

    fn decode(&self, bytes: &[u8], parameters: usize) -> std::result::Result<Vec<f32>, String> {
        match self {
            ValueEncoding::F32 => Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            ValueEncoding::F16 => Ok(bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            ValueEncoding::TopK { .. } => {
                let mut values = vec![0.0; parameters];
                for pair in bytes.chunks_exact(8) {
                    let index = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
                    let value = f32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
                    *values
                        .get_mut(index)
                        .ok_or_else(|| format!("sparse index {index} is out of range"))? = value;
                }
                Ok(values)
            }
        }
    }
}

/// Where one record lies in the file and which samples it concerns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// The sensitive samples the record concerns (one for per-sample records).
    pub ids: Vec<u32>,
    /// The optimisation step (per-batch records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The group key (per-group records; the class label for class groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
    /// Offset of the record from the start of the records section.
    pub offset: u64,
    /// Encoded length in bytes.
    pub bytes: u64,
    /// FNV-1a checksum of the encoded bytes.
    pub checksum: u64,
}

/// The self-describing header of a record file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordHeader {
    /// What the records are.
    pub layout: RecordLayout,
    /// How values are stored.
    pub encoding: ValueEncoding,
    /// Parameters per record, P.
    pub parameter_count: usize,
    /// Parameter names and shapes, in the flat order of the records.
    pub parameter_order: Vec<ParameterSlot>,
    /// Hash of the trained model the records belong to.
    pub model_hash: String,
    /// Hash of the training set.
    pub dataset_hash: String,
    /// Hash of the ids the model was trained on.
    pub train_ids_hash: String,
    /// The recipe the model was trained with.
    pub recipe: Recipe,
    /// Epochs of training recorded.
    pub epochs: usize,
    /// Optimisation steps recorded.
    pub steps: usize,
    /// How momentum and weight decay were accounted for, in words.
    pub momentum_handling: String,
    /// Per-sample records: the factor d with θ_T = d θ_0 − Σ_i C_i when every sample is
    /// recorded (SGD; 1 without weight decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_weight_scale: Option<f64>,
    /// Every sensitive sample id (recorded or not, each was watched), sorted.
    pub sensitive: Vec<u32>,
    /// The index of the records.
    pub records: Vec<RecordEntry>,
    /// Total bytes of the records section.
    pub data_bytes: u64,
}

/// What [`RecordWriter::finish`] needs besides the records.
#[derive(Debug, Clone)]
pub struct RecordProvenance {
    /// Hash of the trained model.
    pub model_hash: String,
    /// Hash of the training set.
    pub dataset_hash: String,
    /// Hash of the training ids.
    pub train_ids_hash: String,
}

/// How a recorder attributed the optimiser's state to its records, for the header.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// How momentum and weight decay were accounted for, in words.
    pub momentum_handling: String,
    /// The factor d of [`RecordHeader::initial_weight_scale`] (per-sample records).
    pub initial_weight_scale: Option<f64>,
}

/// Writes records to a temporary file as they come, then the final file atomically.
pub struct RecordWriter {
    encoding: ValueEncoding,
    parameter_order: Vec<ParameterSlot>,
    parameter_count: usize,
    data: BufWriter<File>,
    entries: Vec<RecordEntry>,
    offset: u64,
}

impl RecordWriter {
    /// A writer of records of `parameter_order`'s size in `encoding`, buffering the records
    /// in an anonymous temporary file.
    pub fn new(encoding: ValueEncoding, parameter_order: Vec<ParameterSlot>) -> Result<Self> {
        let data = tempfile::tempfile().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let parameter_count = parameter_order.iter().map(ParameterSlot::len).sum();
        Ok(RecordWriter {
            encoding,
            parameter_order,
            parameter_count,
            data: BufWriter::new(data),
            entries: Vec::new(),
            offset: 0,
        })
    }

    /// Number of values in every record.
    pub fn parameter_count(&self) -> usize {
        self.parameter_count
    }

    /// Appends one record.
    pub fn append(
        &mut self,
        ids: Vec<u32>,
        step: Option<usize>,
        group: Option<u32>,
        values: &[f32],
    ) -> Result<()> {
        if values.len() != self.parameter_count {
            return Err(Error::Model(format!(
                "a record has {} values but the model has {} parameters",
                values.len(),
                self.parameter_count
            )));
        }
        let bytes = self.encoding.encode(values);
        self.data
            .write_all(&bytes)
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        self.entries.push(RecordEntry {
            ids,
            step,
            group,
            offset: self.offset,
            bytes: bytes.len() as u64,
            checksum: fnv1a(&bytes),
        });
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the record file to `path` (through a temporary file and a rename) and returns
    /// its header.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        self,
        path: &Path,
        layout: RecordLayout,
        provenance: &RecordProvenance,
        recipe: &Recipe,
        steps: usize,
        attribution: Attribution,
        sensitive: &BTreeSet<u32>,
    ) -> Result<RecordHeader> {
        let header = RecordHeader {
            layout,
            encoding: self.encoding,
            parameter_count: self.parameter_count,
            parameter_order: self.parameter_order,
            model_hash: provenance.model_hash.clone(),
            dataset_hash: provenance.dataset_hash.clone(),
            train_ids_hash: provenance.train_ids_hash.clone(),
            recipe: recipe.clone(),
            epochs: recipe.epochs,
            steps,
            momentum_handling: attribution.momentum_handling,
            initial_weight_scale: attribution.initial_weight_scale,
            sensitive: sensitive.iter().copied().collect(),
            records: self.entries,
            data_bytes: self.offset,
        };
        let json = serde_json::to_vec(&header)
            .map_err(|e| Error::Model(format!("cannot serialise the record header: {e}")))?;
        let mut data = self
            .data
            .into_inner()
            .map_err(|e| Error::io(std::env::temp_dir(), e.into_error()))?;
        data.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let output = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut writer = BufWriter::new(output);
        let write_error = |e| Error::io(path, e);
        writer.write_all(MAGIC).map_err(write_error)?;
        writer
            .write_all(&FORMAT_VERSION.to_le_bytes())
            .map_err(write_error)?;
        writer
            .write_all(&(json.len() as u64).to_le_bytes())
            .map_err(write_error)?;
        writer.write_all(&json).map_err(write_error)?;
        writer
            .write_all(&fnv1a(&json).to_le_bytes())
            .map_err(write_error)?;
        std::io::copy(&mut data, &mut writer).map_err(write_error)?;
        let output = writer
            .into_inner()
            .map_err(|e| Error::io(path, e.into_error()))?;
        output.persist(path).map_err(|e| Error::io(path, e.error))?;
        Ok(header)
    }
}

/// An opened record file: the header in memory, the records read one at a time on demand.
pub struct RecordStore {
    path: PathBuf,
    file: File,
    header: RecordHeader,
    data_start: u64,
    by_id: BTreeMap<u32, Vec<usize>>,
}

impl RecordStore {
    /// Opens `path`, checking the magic, version, header checksum and file length.
    pub fn open(path: impl AsRef<Path>) -> Result<RecordStore> {
        let path = path.as_ref().to_path_buf();
        let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let length = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let corrupt = |reason: String| Error::format(&path, reason);
        if length < PREAMBLE_BYTES {
            return Err(corrupt(format!(
                "truncated record file ({length} bytes, shorter than its preamble)"
            )));
        }
        let mut preamble = [0u8; PREAMBLE_BYTES as usize];
        file.read_exact(&mut preamble)
            .map_err(|e| Error::io(&path, e))?;
        if &preamble[..8] != MAGIC {
            return Err(corrupt("not an amnesiac record file (bad magic)".into()));
        }
        let version = u32::from_le_bytes(preamble[8..12].try_into().unwrap_or_default());
        if version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "record format version {version} is not supported (expected {FORMAT_VERSION})"
            )));
        }
        let header_bytes = u64::from_le_bytes(preamble[12..20].try_into().unwrap_or_default());
        if header_bytes > MAX_HEADER_BYTES || PREAMBLE_BYTES + header_bytes + 8 > length {
            return Err(corrupt(format!(
                "truncated or corrupt record file: the header claims {header_bytes} bytes but the file has {length}"
            )));
        }
        let mut json = vec![0u8; header_bytes as usize];
        let mut checksum = [0u8; 8];
        file.read_exact(&mut json)
            .and_then(|_| file.read_exact(&mut checksum))
            .map_err(|e| Error::io(&path, e))?;
        if fnv1a(&json) != u64::from_le_bytes(checksum) {
            return Err(corrupt(
                "corrupt record file: the header checksum does not match".into(),
            ));
        }
        let header: RecordHeader = serde_json::from_slice(&json)
            .map_err(|e| corrupt(format!("corrupt record header: {e}")))?;
        let data_start = PREAMBLE_BYTES + header_bytes + 8;
        let expected = data_start + header.data_bytes;
        if length != expected {
            return Err(corrupt(format!(
                "{} record file: expected {expected} bytes, found {length}",
                if length < expected {
                    "truncated"
                } else {
                    "corrupt"
                }
            )));
        }
        let record_bytes = header.encoding.record_bytes(header.parameter_count);
        let mut by_id: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (index, entry) in header.records.iter().enumerate() {
            if entry.bytes != record_bytes || entry.offset + entry.bytes > header.data_bytes {
                return Err(corrupt(format!(
                    "corrupt record index: record {index} does not fit the records section"
                )));
            }
            for &id in &entry.ids {
                by_id.entry(id).or_default().push(index);
            }
        }
        Ok(RecordStore {
            path,
            file,
            header,
            data_start,
            by_id,
        })
    }

    /// The header.
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the whole file.
    pub fn file_bytes(&self) -> u64 {
        self.data_start + self.header.data_bytes
    }

    /// Refuses records made for another model than the one with hash `model_hash`.
    pub fn check_model(&self, model_hash: &str) -> Result<()> {
        if self.header.model_hash != model_hash {
            return Err(Error::invalid(format!(
                "{}: these records were made for model {}, not for this model ({model_hash})",
                self.path.display(),
                self.header.model_hash
            )));
        }
        Ok(())
    }

    /// Whether `id` was a sensitive (watched) sample.
    pub fn is_sensitive(&self, id: u32) -> bool {
        self.header.sensitive.binary_search(&id).is_ok()
    }

    /// Indices of the records that concern `id`.
    pub fn records_of(&self, id: u32) -> &[usize] {
        self.by_id.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The indices (sorted, each once) of the records that undo the forget set `forget`:
    /// every record that concerns one of its samples. Refuses a sample that was not watched
    /// or has no record, and, for group records (per-group layouts), a group of which some
    /// recorded samples are not being forgotten.
    pub fn records_for_forget_set(&self, forget: &[u32]) -> Result<Vec<usize>> {
        let mut selected = BTreeSet::new();
        for &id in forget {
            if !self.is_sensitive(id) {
                return Err(Error::invalid(format!(
                    "forget id {id} was not recorded: it is not in the sensitive set of {}",
                    self.path.display()
                )));
            }
            let records = self.records_of(id);
            if records.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: sample {id} was watched but has no record (it never appeared in a batch)",
                    self.path.display()
                )));
            }
            selected.extend(records.iter().copied());
        }
        if matches!(
            self.header.layout,
            RecordLayout::PerGroup | RecordLayout::PerSampleGroup
        ) {
            let forget: BTreeSet<u32> = forget.iter().copied().collect();
            for &index in &selected {
                let entry = &self.header.records[index];
                let kept = entry.ids.iter().filter(|id| !forget.contains(id)).count();
                if kept > 0 {
                    return Err(Error::invalid(format!(
                        "group {} holds {} recorded samples of which {kept} are not being forgotten; group records can only remove whole groups",
                        entry.group.unwrap_or_default(),
                        entry.ids.len()
                    )));
                }
            }
        }
        Ok(selected.into_iter().collect())
    }

    /// Reads and decodes record `index` (one seek and one read; checksum verified).
    pub fn read(&mut self, index: usize) -> Result<Vec<f32>> {
        let entry = self.header.records.get(index).ok_or_else(|| {
            Error::invalid(format!(
                "{}: no record number {index} (the file holds {})",
                self.path.display(),
                self.header.records.len()
            ))
        })?;
        let mut bytes = vec![0u8; entry.bytes as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + entry.offset))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| Error::io(&self.path, e))?;
        if fnv1a(&bytes) != entry.checksum {
            return Err(Error::format(
                &self.path,
                format!(
                    "corrupt record file: record {index} (samples {:?}) fails its checksum",
                    entry.ids
                ),
            ));
        }
        self.header
            .encoding
            .decode(&bytes, self.header.parameter_count)
            .map_err(|reason| {
                Error::format(&self.path, format!("corrupt record {index}: {reason}"))
            })
    }
}

/// Opens the first of `paths` whose records have one of `layouts`, for the model described by
/// `model`, refusing clearly when none fits or when the records belong to another model or
/// training run (used by the amnesiac unlearners of Graves, Nagisetty, Ganesh 2021).
pub fn open_records_for(
    paths: &[PathBuf],
    layouts: &[RecordLayout],
    method: &str,
    model: &ArtifactMetadata,
) -> Result<RecordStore> {
    if paths.is_empty() {
        return Err(Error::invalid(format!(
            "{method} needs the records made while training this model (train it with --record {method}); this model has none"
        )));
    }
    let mut found = Vec::new();
    for path in paths {
        let store = RecordStore::open(path)?;
        if layouts.contains(&store.header.layout) {
            store.check_model(&model.model_hash)?;
            if store.header.dataset_hash != model.dataset_hash
                || store.header.train_ids_hash != model.train_ids_hash
            {
                return Err(Error::invalid(format!(
                    "{}: these records were made on other training data than this model's",
                    path.display()
                )));
            }
            return Ok(store);
        }
        found.push(format!(
            "{} holds {} records",
            path.display(),
            store.header.layout.method_name()
        ));
    }
    Err(Error::invalid(format!(
        "{method} needs {method} records (train with --record {method}); {}",
        found.join(", ")
    )))
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Vec<ParameterSlot> {
        vec![
            ParameterSlot {
                name: "layers.0.weight".into(),
                shape: vec![3, 2],
            },
            ParameterSlot {
                name: "layers.0.bias".into(),
                shape: vec![2],
            },
        ]
    }

    fn provenance(model_hash: &str) -> RecordProvenance {
        RecordProvenance {
            model_hash: model_hash.into(),
            dataset_hash: "d".into(),
            train_ids_hash: "t".into(),
        }
    }

    fn write(path: &Path, encoding: ValueEncoding) -> Vec<Vec<f32>> {
        let records: Vec<Vec<f32>> = (0..3)
            .map(|r| (0..8).map(|j| (r * 8 + j) as f32 * 0.25 - 2.0).collect())
            .collect();
        let mut writer = RecordWriter::new(encoding, layout()).unwrap();
        for (index, values) in records.iter().enumerate() {
            writer
                .append(vec![10 + index as u32], None, None, values)
                .unwrap();
        }
        writer
            .finish(
                path,
                RecordLayout::PerSample,
                &provenance("model-a"),
                &Recipe::default(),
                7,
                Attribution {
                    momentum_handling: "none".into(),
                    initial_weight_scale: Some(1.0),
                },
                &[10, 11, 12, 13].into_iter().collect(),
            )
            .unwrap();
        records
    }

    #[test]
    fn forget_sets_select_their_records_and_whole_groups_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.records");
        // Records for samples 10, 11 and 12; 13 was watched but has none.
        write(&path, ValueEncoding::F32);
        let store = RecordStore::open(&path).unwrap();
        assert_eq!(store.records_for_forget_set(&[12, 10]).unwrap(), vec![0, 2]);
        let error = store.records_for_forget_set(&[13]).unwrap_err();
        assert!(error.to_string().contains("has no record"), "{error}");
        let error = store.records_for_forget_set(&[10, 99]).unwrap_err();
        assert!(
            error.to_string().contains("forget id 99 was not recorded"),
            "{error}"
        );

        let grouped = dir.path().join("g.records");
        let mut writer = RecordWriter::new(ValueEncoding::F32, layout()).unwrap();
        writer
            .append(vec![10, 11], None, Some(1), &[0.5; 8])
            .unwrap();
        writer.append(vec![12], None, Some(2), &[0.25; 8]).unwrap();
        writer
            .finish(
                &grouped,
                RecordLayout::PerSampleGroup,
                &provenance("model-a"),
                &Recipe::default(),
                7,
                Attribution {
                    momentum_handling: "none".into(),
                    initial_weight_scale: Some(1.0),
                },
                &[10, 11, 12].into_iter().collect(),
            )
            .unwrap();
        let store = RecordStore::open(&grouped).unwrap();
        assert_eq!(store.records_for_forget_set(&[11, 10]).unwrap(), vec![0]);
        assert_eq!(
            store.records_for_forget_set(&[10, 11, 12]).unwrap(),
            vec![0, 1]
        );
        let error = store.records_for_forget_set(&[10]).unwrap_err();
        assert!(error.to_string().contains("whole groups"), "{error}");
    }

    #[test]
    fn records_round_trip_in_every_encoding() {
        let dir = tempfile::tempdir().unwrap();
        for encoding in ["f32", "f16", "topk:0.25"] {
            let encoding = ValueEncoding::parse(encoding).unwrap();
            let path = dir.path().join("m.records");
            let records = write(&path, encoding);
            let mut store = RecordStore::open(&path).unwrap();
            store.check_model("model-a").unwrap();
            assert_eq!(store.records_of(11), &[1]);
            assert!(store.is_sensitive(13) && !store.is_sensitive(14));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), store.file_bytes());
            // Read out of order: each read seeks to its own record.
            for index in [2, 0, 1] {
                let values = store.read(index).unwrap();
                match encoding {
                    ValueEncoding::F32 | ValueEncoding::F16 => {
                        assert_eq!(values, records[index], "{encoding:?}")
                    }
                    ValueEncoding::TopK { .. } => {
                        // 25% of 8 values: the two largest in magnitude, the rest zero.
                        assert_eq!(values.iter().filter(|v| **v != 0.0).count(), 2);
                        let largest = records[index]
                            .iter()
                            .map(|v| v.abs())
                            .fold(0.0f32, f32::max);
                        assert!(values.iter().any(|v| v.abs() == largest));
                    }
                }
            }
        }
    }

    #[test]
    fn truncated_corrupt_and_foreign_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.records");
        write(&path, ValueEncoding::F32);
        let bytes = std::fs::read(&path).unwrap();

        let foreign = RecordStore::open(&path).unwrap().check_model("model-b");
        let error = foreign.unwrap_err().to_string();
        assert!(error.contains("made for model model-a"), "{error}");

        let truncated = dir.path().join("truncated.records");
        std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
        let error = RecordStore::open(&truncated).err().unwrap().to_string();
        assert!(error.contains("truncated"), "{error}");
        std::fs::write(&truncated, &bytes[..30]).unwrap();
        let error = RecordStore::open(&truncated).err().unwrap().to_string();
        assert!(error.contains("truncated"), "{error}");
        std::fs::write(&truncated, &bytes[..4]).unwrap();
        let error = RecordStore::open(&truncated).err().unwrap().to_string();
        assert!(error.contains("truncated"), "{error}");

        let corrupt = dir.path().join("corrupt.records");
        let mut flipped = bytes.clone();
        flipped[25] ^= 0x40;
        std::fs::write(&corrupt, &flipped).unwrap();
        let error = RecordStore::open(&corrupt).err().unwrap().to_string();
        assert!(error.contains("corrupt"), "{error}");

        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x01;
        std::fs::write(&corrupt, &flipped).unwrap();
        let mut store = RecordStore::open(&corrupt).unwrap();
        store.read(0).unwrap();
        let error = store.read(2).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");

        let mut wrong_magic = bytes.clone();
        wrong_magic[0] = b'X';
        std::fs::write(&corrupt, &wrong_magic).unwrap();
        let error = RecordStore::open(&corrupt).err().unwrap().to_string();
        assert!(error.contains("not an amnesiac record file"), "{error}");
    }

    #[test]
    fn encodings_parse_and_size() {
        assert_eq!(ValueEncoding::parse("f16").unwrap().record_bytes(10), 20);
        assert_eq!(
            ValueEncoding::parse("topk:0.01")
                .unwrap()
                .record_bytes(1000),
            80
        );
        for bad in ["f64", "topk:0", "topk:2", "topk:x"] {
            assert!(ValueEncoding::parse(bad).is_err(), "{bad}");
        }
    }
}
