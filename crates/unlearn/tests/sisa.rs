//! SISA (Bourtoule et al. 2021, docs/algorithms.md §G) on the embedded Fashion-MNIST subset:
//! deletion is exact bit for bit, the on-disk form round-trips and refuses damaged or
//! mismatched shard artifacts, and concurrency never changes the result.

use burn::tensor::Device;
use std::collections::BTreeSet;
use unlearn::data::{DataBundle, DataSource, load};
use unlearn::pipeline::Experiment;
use unlearn::sisa::{
    Aggregate, Members, SisaConfig, SisaEnsemble, SisaPlan, assign, disk, stream_seed,
};

const TRAIN_SIZE: u32 = 2400;

fn data() -> DataBundle {
    load(&DataSource::Embedded).unwrap()
}

mod common;

/// A setup training mlp:32 for one epoch on the first `TRAIN_SIZE` embedded ids less `removed`.
fn setup(removed: &[u32]) -> Experiment {
    common::embedded("random:1%", 7)
        .split_seed(1)
        .train_size(TRAIN_SIZE)
        .test_size(500)
        .build_with(|split| {
            split.train.retain(|id| !removed.contains(id));
            split.forget = vec![split.train[0]];
        })
}

fn config() -> SisaConfig {
    SisaConfig {
        shards: 4,
        slices: 3,
        aggregate: Aggregate::Vote,
        stratified: false,
    }
}

/// The ensemble trained from scratch (same seeds) on the first ids less `removed`.
fn from_scratch(removed: &[u32]) -> SisaEnsemble {
    let setup = setup(removed);
    let plan = SisaPlan::new(config(), &setup).unwrap();
    SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1).unwrap()
}

/// `count` training ids spread over shards and slices: the k-th from shard `shards[k % len]`
/// and slice `k % R`.
fn spread_ids(members: &Members, shards: &[usize], count: usize, avoid: &[u32]) -> Vec<u32> {
    let mut chosen = Vec::new();
    for k in 0..count {
        let shard = shards[k % shards.len()];
        let slice = k % members[shard].len();
        let id = members[shard][slice]
            .iter()
            .copied()
            .find(|id| *id < TRAIN_SIZE && !chosen.contains(id) && !avoid.contains(id))
            .unwrap();
        chosen.push(id);
    }
    chosen.sort_unstable();
    chosen
}

fn forget(ensemble: &mut SisaEnsemble, ids: &[u32], jobs: usize) -> unlearn::sisa::RetrainSummary {
    let data = data();
    let split_hash = ensemble
        .plan
        .split_after(&data, ids, data.test.ids[..500].to_vec(), "test".into(), 1)
        .unwrap()
        .hash();
    let plan = ensemble
        .plan
        .with_removed(&data.train, ids, split_hash)
        .unwrap();
    ensemble
        .forget(plan, &data.train, &Device::flex().autodiff(), jobs, None)
        .unwrap()
}

#[test]
fn forgetting_ten_ids_equals_training_from_scratch_without_them_bit_for_bit() {
    let mut ensemble = from_scratch(&[]);
    let members = assign(&data().train, &config(), 7);
    let ids = spread_ids(&members, &[0, 1, 2, 3], 10, &[]);
    let before = ensemble.shard_hashes();
    let summary = forget(&mut ensemble, &ids, 1);
    let reference = from_scratch(&ids);
    assert_eq!(ensemble.shard_hashes(), reference.shard_hashes());
    assert_eq!(ensemble.hash(), reference.hash());
    // Ids k = 0..9 sit in shard k mod 4, slice k mod 3: every shard holds one in slice 0,
    // so every shard is retrained from its initialisation, and nothing else is.
    assert_eq!(summary.shards.len(), 4);
    for shard in &summary.shards {
        assert_eq!(shard.slices, vec![0, 1, 2]);
    }
    for (before, after) in before.iter().zip(ensemble.shard_hashes()) {
        assert_ne!(*before, after);
    }
    assert_eq!(summary.share, 1.0);
    let removed: usize = summary.shards.iter().map(|s| s.removed.len()).sum();
    assert_eq!(removed, 10);
    assert_eq!(summary.total_cost, ensemble.plan.total_cost());
}

#[test]
fn three_sequential_requests_stay_exact_and_retrain_only_affected_shards() {
    let mut ensemble = from_scratch(&[]);
    let members = assign(&data().train, &config(), 7);
    let mut removed: Vec<u32> = Vec::new();
    // Request 1: shard 2 only, its last slice; request 2: shards 0 and 1; request 3: all.
    let requests = [
        (vec![2usize], 3usize, Some(2usize)),
        (vec![0, 1], 4, None),
        (vec![0, 1, 2, 3], 4, None),
    ];
    for (shards, count, last_slice_only) in requests {
        let ids: Vec<u32> = match last_slice_only {
            Some(shard) => members[shard][2]
                .iter()
                .copied()
                .filter(|id| *id < TRAIN_SIZE && !removed.contains(id))
                .take(count)
                .collect(),
            None => spread_ids(&members, &shards, count, &removed),
        };
        let before = ensemble.shard_hashes();
        let summary = forget(&mut ensemble, &ids, 1);
        removed.extend(&ids);
        let touched: BTreeSet<usize> = summary.shards.iter().map(|s| s.shard).collect();
        assert_eq!(touched, shards.iter().copied().collect::<BTreeSet<_>>());
        for (shard, (old, new)) in before.iter().zip(ensemble.shard_hashes()).enumerate() {
            assert_eq!(*old == new, !touched.contains(&shard), "shard {shard}");
        }
        if last_slice_only.is_some() {
            // Only the last stage of one shard of four: a twelfth-ish of the work.
            assert_eq!(summary.shards[0].slices, vec![2]);
            assert!(summary.share < 0.2, "{}", summary.share);
        }
        assert_eq!(
            ensemble.shard_hashes(),
            from_scratch(&removed).shard_hashes()
        );
    }
}

#[test]
fn two_jobs_train_and_forget_exactly_as_one() {
    let setup = setup(&[]);
    let plan = SisaPlan::new(config(), &setup).unwrap();
    let mut one = SisaEnsemble::train(plan.clone(), &setup.data.train, &setup.device, 1).unwrap();
    let mut two = SisaEnsemble::train(plan, &setup.data.train, &setup.device, 2).unwrap();
    assert_eq!(one.shard_hashes(), two.shard_hashes());
    let members = assign(&setup.data.train, &config(), 7);
    let ids = spread_ids(&members, &[0, 1, 3], 6, &[]);
    let first = forget(&mut one, &ids, 1);
    let second = forget(&mut two, &ids, 2);
    assert_eq!(first, second);
    assert_eq!(one.shard_hashes(), two.shard_hashes());
}

#[test]
fn assignment_is_keyed_by_id_balanced_and_seeded() {
    let data = data();
    let members = assign(&data.train, &config(), 7);
    let all: Vec<u32> = members.iter().flatten().flatten().copied().collect();
    assert_eq!(all.len(), data.train.len());
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), all.len());
    for shard in &members {
        let size: usize = shard.iter().map(Vec::len).sum();
        assert!(size.abs_diff(data.train.len() / 4) <= 1);
        for slice in shard {
            assert!(slice.len().abs_diff(size / 3) <= 1);
        }
    }
    assert_ne!(members, assign(&data.train, &config(), 8));
    // Removing ids moves no other id: the plan's members are the assignment less the ids.
    let with = SisaPlan::new(config(), &setup(&[])).unwrap();
    let ids = spread_ids(&members, &[1, 2], 5, &[]);
    let without = SisaPlan::new(config(), &setup(&ids)).unwrap();
    let a = with.members(&data.train).unwrap();
    let b = without.members(&data.train).unwrap();
    for (shard_a, shard_b) in a.iter().zip(&b) {
        for (slice_a, slice_b) in shard_a.iter().zip(shard_b) {
            let expected: Vec<u32> = slice_a
                .iter()
                .copied()
                .filter(|id| !ids.contains(id))
                .collect();
            assert_eq!(&expected, slice_b);
        }
    }
    // Stratified: every shard gets each class within one sample of an even share.
    let stratified = SisaConfig {
        stratified: true,
        ..config()
    };
    let members = assign(&data.train, &stratified, 7);
    let counts = data.train.class_counts();
    for shard in &members {
        for (class, &count) in counts.iter().enumerate() {
            let held = shard
                .iter()
                .flatten()
                .filter(|id| {
                    data.train.labels[data.train.position_of(**id).unwrap()] == class as u32
                })
                .count();
            assert!(
                held.abs_diff(count / 4) <= 1,
                "class {class}: {held} of {count}"
            );
        }
    }
    // Streams differ by purpose, shard and slice.
    let seeds: BTreeSet<u64> = (0..4)
        .flat_map(|shard| (0..3).map(move |slice| stream_seed(7, 3, shard, slice)))
        .collect();
    assert_eq!(seeds.len(), 12);
}

#[test]
fn configs_parse_and_bad_ones_are_refused() {
    let config =
        SisaConfig::parse("shards=5,slices=4,aggregate=mean-softmax,stratified=true").unwrap();
    assert_eq!(config.shards, 5);
    assert_eq!(config.slices, 4);
    assert_eq!(config.aggregate, Aggregate::MeanSoftmax);
    assert!(config.stratified);
    assert_eq!(SisaConfig::parse(&config.describe()).unwrap(), config);
    // The paper's schedule: round(2E/(R+1)) epochs per stage, at least one.
    assert_eq!(config.stage_epochs(5), 2);
    assert_eq!(
        SisaConfig::parse("shards=2,slices=1")
            .unwrap()
            .stage_epochs(5),
        5
    );
    for (bad, expected) in [
        ("shards=0,slices=1", "between 1 and"),
        ("shards=2", "slices= is required"),
        ("shards=2,slices=2,aggregate=median", "median"),
        ("shards=2,slices=2,colour=red", "colour"),
        ("shards=two,slices=2", "shards"),
        ("shards=2,slices", "not key=value"),
    ] {
        let error = SisaConfig::parse(bad).unwrap_err().to_string();
        assert!(error.contains(expected), "{bad}: {error}");
        assert_eq!(error.lines().count(), 1);
    }
}

#[test]
fn mean_softmax_and_vote_give_distributions_and_the_vote_breaks_ties_low() {
    let setup = setup(&[]);
    let mut plan = SisaPlan::new(
        SisaConfig {
            shards: 2,
            slices: 1,
            aggregate: Aggregate::MeanSoftmax,
            stratified: true,
        },
        &setup,
    )
    .unwrap();
    let mut ensemble =
        SisaEnsemble::train(plan.clone(), &setup.data.train, &setup.device, 1).unwrap();
    let evaluation = ensemble
        .evaluate(&setup.data, &setup.split, None, 7)
        .unwrap();
    assert!(
        evaluation.headline.test_accuracy > 30.0,
        "{}",
        evaluation.headline.test_accuracy
    );
    let ids = &setup.split.test[..200];
    let mean = ensemble
        .predict_probabilities(&setup.data.test, ids)
        .unwrap();
    plan.config.aggregate = Aggregate::Vote;
    ensemble.plan = plan;
    let votes = ensemble
        .predict_probabilities(&setup.data.test, ids)
        .unwrap();
    for (mean, votes) in mean.chunks(10).zip(votes.chunks(10)) {
        assert!((mean.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        // Two shards: each vote is worth 1/2; a 1–1 tie goes to the smaller label.
        assert!(votes.iter().all(|v| [0.0, 0.5, 1.0].contains(v)));
        let first_max = votes
            .iter()
            .position(|v| *v == votes.iter().cloned().fold(0.0, f32::max))
            .unwrap();
        let shard_labels: Vec<usize> = votes
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(class, _)| class)
            .collect();
        assert_eq!(first_max, shard_labels[0]);
    }
}

#[test]
fn the_directory_round_trips_and_forgetting_from_disk_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup(&[]);
    let plan = SisaPlan::new(config(), &setup).unwrap();
    let ensemble = SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1).unwrap();
    let manifest = disk::save(dir.path(), &ensemble, &setup.split, None, &setup.device).unwrap();
    assert_eq!(manifest.ensemble_hash, ensemble.hash());
    assert_eq!(manifest.last_run.share, 1.0);
    for record in &manifest.shards {
        assert_eq!(record.files.len(), 3);
        assert!(record.files[2].name.ends_with("weights.safetensors"));
        assert_eq!(record.files[0].sha256.len(), 64);
    }
    let (_, mut loaded, split) = disk::load(dir.path(), &setup.device).unwrap();
    assert_eq!(split, setup.split);
    assert_eq!(loaded.shard_hashes(), ensemble.shard_hashes());
    for (a, b) in loaded.shards.iter().zip(&ensemble.shards) {
        for (x, y) in a.checkpoints.iter().zip(&b.checkpoints) {
            assert_eq!(unlearn::model::model_hash(x), unlearn::model::model_hash(y));
        }
    }
    let members = assign(&setup.data.train, &config(), 7);
    let ids = spread_ids(&members, &[1, 3], 4, &[]);
    forget(&mut loaded, &ids, 1);
    assert_eq!(loaded.shard_hashes(), from_scratch(&ids).shard_hashes());
}

/// Saves a trained ensemble into a fresh directory.
fn saved() -> (tempfile::TempDir, Experiment) {
    let dir = tempfile::tempdir().unwrap();
    let setup = setup(&[]);
    let plan = SisaPlan::new(config(), &setup).unwrap();
    let ensemble = SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1).unwrap();
    disk::save(dir.path(), &ensemble, &setup.split, None, &setup.device).unwrap();
    (dir, setup)
}

#[test]
fn a_truncated_shard_artifact_is_refused_at_assembly_naming_it() {
    let (dir, setup) = saved();
    let victim = dir.path().join("shard-002").join("slice-1.safetensors");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let error = disk::assemble(dir.path(), &setup.device)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains(&victim.display().to_string()), "{error}");
    assert!(error.contains("truncated"), "{error}");
    assert_eq!(error.lines().count(), 1);
    // Loading the assembled ensemble refuses it too.
    let error = disk::load(dir.path(), &setup.device)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("slice-1.safetensors"), "{error}");
    // Same length, other bytes: the checksum catches it.
    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    std::fs::write(&victim, &altered).unwrap();
    let error = disk::assemble(dir.path(), &setup.device)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("SHA-256"), "{error}");
}

#[test]
fn a_shard_from_another_plan_or_a_missing_one_is_refused_naming_it() {
    let (dir, setup) = saved();
    // Shard 1 of an ensemble with another seed, dropped into this directory.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other_setup = setup;
    other_setup.seed = 8;
    other_setup.recipe.seed = 8;
    let other_plan = SisaPlan::new(config(), &other_setup).unwrap();
    let shard =
        SisaEnsemble::train_one(&other_plan, &other_setup.data.train, &other_setup.device, 1)
            .unwrap();
    disk::write_shard(other_dir.path(), &other_plan, &shard, &[]).unwrap();
    let target = dir.path().join("shard-001");
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::rename(other_dir.path().join("shard-001"), &target).unwrap();
    let error = disk::assemble(dir.path(), &other_setup.device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains(&target.join("shard.json").display().to_string()),
        "{error}"
    );
    assert!(error.contains("another plan"), "{error}");
    assert_eq!(error.lines().count(), 1);
    std::fs::remove_dir_all(&target).unwrap();
    let error = disk::assemble(dir.path(), &other_setup.device)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("shard-001"), "{error}");
    assert!(error.contains("not been trained"), "{error}");
}

#[test]
fn bad_deletions_and_shard_indices_are_refused() {
    let setup = setup(&[]);
    let plan = SisaPlan::new(config(), &setup).unwrap();
    let data = &setup.data.train;
    let outside = plan.with_removed(data, &[TRAIN_SIZE + 5], String::new());
    assert!(outside.unwrap_err().to_string().contains("not one of"));
    let once = plan.with_removed(data, &[3], String::new()).unwrap();
    let twice = once.with_removed(data, &[3], String::new());
    assert!(twice.unwrap_err().to_string().contains("already removed"));
    // More shards than samples would leave a shard untrained.
    let mut tiny = setup;
    tiny.split.train.truncate(3);
    tiny.split.forget = vec![tiny.split.train[0]];
    tiny.split.refresh_forget_hash();
    let error = SisaPlan::new(config(), &tiny).unwrap_err().to_string();
    assert!(error.contains("too many"), "{error}");
    let env = |name: &str| (name == "JOB_COMPLETION_INDEX").then(|| "3".to_string());
    assert_eq!(plan.shard_index("auto", &env).unwrap(), 3);
    assert_eq!(plan.shard_index("2", &env).unwrap(), 2);
    assert!(plan.shard_index("4", &env).is_err());
    assert!(plan.shard_index("auto", &|_| None).is_err());
    let slurm = |name: &str| (name == "SLURM_ARRAY_TASK_ID").then(|| "x".to_string());
    let error = plan.shard_index("auto", &slurm).unwrap_err().to_string();
    assert!(error.contains("SLURM_ARRAY_TASK_ID"), "{error}");
}

/// A SISA store whose deletion fails never refuses a valid request: the whole ensemble is
/// retrained from scratch without the ids (bit for bit the ensemble the deletion would have
/// given), the ledger says why, and the replay retrains there too.
#[test]
fn a_failing_deletion_in_a_store_falls_back_to_retraining_the_ensemble() {
    use std::sync::Arc;
    use unlearn::store::{FaultHook, Policy, RequestStatus, Store, UNLEARNING_STEP, sisa};
    let (dir, setup) = saved();
    let store_dir = dir.path().join("store");
    let mut store =
        sisa::import_ensemble(&store_dir, dir.path(), &Policy::default(), &setup.device).unwrap();
    let members = assign(&setup.data.train, &config(), 7);
    let ids = spread_ids(&members, &[0], 2, &[]);
    let hook: FaultHook = Arc::new(|at: &str| {
        if at == UNLEARNING_STEP {
            return Err(unlearn::Error::invalid("the checkpoint store is down"));
        }
        Ok(())
    });
    store.set_fault_hook(Some(hook));
    let request = store.submit(&ids, None, "test").unwrap();
    let outcomes = sisa::apply_pending(&mut store, &setup.device).unwrap();
    store.set_fault_hook(None);
    assert_eq!(
        store.request(request.request_id).unwrap().unwrap().status,
        RequestStatus::Applied
    );
    assert_eq!(outcomes[0].summary.as_ref().unwrap().share, 1.0);
    let current = store.current().unwrap();
    assert!(
        current.info["fallback"]
            .as_str()
            .unwrap()
            .contains("the checkpoint store is down")
    );
    assert_eq!(current.model_hash, from_scratch(&ids).hash());
    assert_eq!(
        store.ledger().unwrap().last().unwrap().kind,
        unlearn::store::EntryKind::Retrain
    );
    drop(store);
    let store = Store::open(&store_dir).unwrap();
    store.verify_chain().unwrap();
    assert_eq!(sisa::replay_store(&store, &setup.device).unwrap(), 1);
}
