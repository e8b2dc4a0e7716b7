//! The model store: one removal = one transaction, a crash at any durable step leaves the old
//! version or the new one, tampering is named by verify, idempotent submissions, replay,
//! retention (a purge leaves nothing of a removed row) and the fallback to retraining.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use unlearn::convex::{CertifiedTraining, ConvexTask};
use unlearn::data::{DataBundle, DataSource, load};
use unlearn::store::certified::{self, CertifiedModel};
use unlearn::store::{
    COMMIT_STEPS, EntryKind, FaultHook, PURGE_STEPS, Policy, RequestStatus, Retention, Store,
    UNLEARNING_STEP,
};

fn embedded() -> DataBundle {
    load(&DataSource::Embedded).unwrap()
}

/// Ids of the embedded subset's classes 7 and 9 (the task's training rows).
fn pair_ids(bundle: &DataBundle) -> Vec<u32> {
    bundle
        .train
        .ids
        .iter()
        .zip(&bundle.train.labels)
        .filter(|(_, label)| **label == 7 || **label == 9)
        .map(|(id, _)| *id)
        .collect()
}

fn training() -> CertifiedTraining {
    CertifiedTraining {
        // A budget for many removals, so that the tests exercise Newton steps, not retrains
        // (at ε = 1 the 2,022 embedded rows support about 7 to 18 single removals by seed).
        planned_removals: 10.0,
        ..CertifiedTraining::new("newton-guo", 2.0, 7)
    }
}

fn create(dir: &Path, bundle: &DataBundle) -> Store {
    let (store, _, _) = certified::create_store(
        dir,
        "embedded",
        ConvexTask::Pair {
            negative: 7,
            positive: 9,
        },
        &bundle.train,
        Some(&bundle.test),
        &training(),
        &Policy::default(),
        None,
    )
    .unwrap();
    store
}

fn objects_on_disk(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name != ".staging")
        .collect()
}

fn staging_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("objects/.staging"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

fn referenced(store: &Store) -> BTreeSet<String> {
    store
        .versions()
        .unwrap()
        .into_iter()
        .flat_map(|v| v.files.into_values())
        .collect()
}

#[test]
fn removals_commit_verify_and_replay() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut store = create(&path, &bundle);
    for chunk in ids[..9].chunks(3) {
        store.submit(chunk, None, "test").unwrap();
    }
    let outcomes = certified::apply_pending(&mut store, &bundle.train, Some(&bundle.test)).unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(store.current_version().unwrap(), 3);
    let report = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(report.removals, 3);
    assert_eq!(report.removed_count, 9);
    assert_eq!(report.chain.applied, 3);
    assert_eq!(report.replayed, Some(3));
    assert_eq!(
        store.ledger_entry(2).unwrap().as_ref(),
        store.ledger().unwrap().get(2)
    );
    assert_eq!(store.ledger_entry(99).unwrap(), None);
    // A request naming an unknown or already removed id is refused and recorded.
    let unknown = store.submit(&[1], None, "test").unwrap();
    let again = store.submit(&ids[..1], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    for (submission, reason) in [(unknown, "not a training row"), (again, "already removed")] {
        let request = store.request(submission.request_id).unwrap().unwrap();
        assert_eq!(request.status, RequestStatus::Refused);
        assert!(request.reason.unwrap().contains(reason));
    }
    assert_eq!(store.current_version().unwrap(), 3);
    certified::verify_store(&store, &bundle.train, true).unwrap();
    // Batches: several requests, one version.
    let mut policy = store.policy().unwrap();
    policy.batch_max = 4;
    store.set_policy(&policy).unwrap();
    for id in &ids[20..24] {
        store.submit(&[*id], None, "test").unwrap();
    }
    let outcomes = certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].applied.len(), 4);
    let report = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(report.chain.current_version, 4);
    // Secret states are readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    let current = store.current().unwrap();
    let state = path.join("objects").join(&current.files["state"]);
    assert_eq!(
        std::fs::metadata(state).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn idempotency_keys_return_the_same_request_and_apply_once() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let mut store = create(&dir.path().join("s"), &bundle);
    let first = store.submit(&ids[..2], Some("key-1"), "test").unwrap();
    let second = store.submit(&ids[..2], Some("key-1"), "test").unwrap();
    assert!(!first.duplicate && second.duplicate);
    assert_eq!(first.request_id, second.request_id);
    let message = store
        .submit(&ids[2..4], Some("key-1"), "test")
        .unwrap_err()
        .to_string();
    assert!(message.contains("other ids"), "{message}");
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let third = store.submit(&ids[..2], Some("key-1"), "test").unwrap();
    assert_eq!(third.request_id, first.request_id);
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    assert_eq!(store.ledger().unwrap().len(), 2);
    assert_eq!(store.requests().unwrap().len(), 1);
    for bad in [vec![], vec![ids[5], ids[5]]] {
        assert!(store.submit(&bad, None, "test").is_err(), "{bad:?}");
    }
}

/// Stops the store at every durable step of a removal (a hook in the store returning an
/// error there, nothing after it runs), reopens it, and checks: the old version or the new
/// one, never a mix; the chain verifies; no unreferenced file survives the reopen; the request
/// is applied exactly once after resuming; the replay reproduces the model.
#[test]
fn a_stop_at_any_durable_step_leaves_the_old_or_the_new_version() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    drop(create(&path, &bundle));
    let mut cases = 0;
    for (index, step) in COMMIT_STEPS.iter().enumerate() {
        // A removal stages two files, so the per-file steps are reached twice.
        let occurrences = if step.starts_with("object-") { 2 } else { 1 };
        for nth in 1..=occurrences {
            cases += 1;
            let request_ids = vec![ids[100 + 2 * index + nth]];
            let before = Store::open(&path).unwrap().current_version().unwrap();
            let seen = Arc::new(AtomicUsize::new(0));
            let target = step.to_string();
            let counter = seen.clone();
            let hook: FaultHook = Arc::new(move |at: &str| {
                if at == target && counter.fetch_add(1, Ordering::SeqCst) + 1 == nth {
                    return Err(unlearn::Error::invalid(format!("injected stop at {at}")));
                }
                Ok(())
            });
            let mut store = Store::open(&path).unwrap();
            let request = store.submit(&request_ids, None, "test").unwrap();
            store.set_fault_hook(Some(hook));
            let mut model = CertifiedModel::load(&store, &bundle.train, None).unwrap();
            let pending = store.pending(1).unwrap();
            let result = model.apply(&mut store, &pending);
            let committed = *step == "committed";
            assert!(result.is_err(), "{step}#{nth} was not reached");
            drop(store);
            // Reopen: the sweep removes whatever the stopped removal left.
            let store = Store::open(&path).unwrap();
            let after = store.current_version().unwrap();
            let expected = if committed { before + 1 } else { before };
            assert_eq!(after, expected, "{step}#{nth}");
            store.verify_chain().unwrap();
            assert_eq!(objects_on_disk(&path), referenced(&store), "{step}#{nth}");
            assert_eq!(staging_files(&path), 0, "{step}#{nth}");
            let status = store.request(request.request_id).unwrap().unwrap().status;
            let expected_status = if committed {
                RequestStatus::Applied
            } else {
                RequestStatus::Pending
            };
            assert_eq!(status, expected_status, "{step}#{nth}");
            // Resume: the pending request is applied once.
            let mut store = store;
            certified::apply_pending(&mut store, &bundle.train, None).unwrap();
            let request = store.request(request.request_id).unwrap().unwrap();
            assert_eq!(request.status, RequestStatus::Applied, "{step}#{nth}");
            let claims = store
                .ledger()
                .unwrap()
                .iter()
                .filter(|row| row.request_ids.contains(&request.id))
                .count();
            assert_eq!(claims, 1, "{step}#{nth}");
        }
    }
    assert!(cases >= COMMIT_STEPS.len());
    let store = Store::open(&path).unwrap();
    let report = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(report.removals, cases);
}

fn tampered(setup: impl Fn(&Path, &rusqlite::Connection), expected: &str) {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    for id in &ids[..4] {
        store.submit(&[*id], None, "test").unwrap();
    }
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    certified::verify_store(&store, &bundle.train, false).unwrap();
    drop(store);
    let connection = rusqlite::Connection::open(path.join("store.sqlite")).unwrap();
    setup(&path, &connection);
    drop(connection);
    let store = Store::open_read_only(&path).unwrap();
    let message = certified::verify_store(&store, &bundle.train, false)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(expected),
        "expected '{expected}' in: {message}"
    );
}

fn object_of(connection: &rusqlite::Connection, version: i64, role: &str) -> String {
    let files: String = connection
        .query_row(
            "SELECT files FROM versions WHERE version = ?1",
            [version],
            |row| row.get(0),
        )
        .unwrap();
    let files: serde_json::Value = serde_json::from_str(&files).unwrap();
    files[role].as_str().unwrap().to_string()
}

fn flip_a_bit(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_bit_in_a_state_is_named() {
    tampered(
        |dir, db| flip_a_bit(&dir.join("objects").join(object_of(db, 2, "state"))),
        "the state file of version 2",
    );
}

#[test]
fn a_flipped_bit_in_a_weight_file_is_named() {
    tampered(
        |dir, db| flip_a_bit(&dir.join("objects").join(object_of(db, 4, "model"))),
        "the model file of version 4",
    );
}

#[test]
fn an_edited_ledger_row_is_named() {
    tampered(
        |_, db| {
            db.execute(
                "UPDATE ledger SET payload = replace(payload, '\"retrained\":false', '\"retrained\":true') WHERE sequence = 2",
                [],
            )
            .unwrap();
        },
        "ledger entry 2 does not hash",
    );
}

#[test]
fn a_deleted_ledger_row_is_named() {
    tampered(
        |_, db| {
            db.execute("DELETE FROM ledger WHERE sequence = 2", [])
                .unwrap();
        },
        "ledger tampered: entry at position 2 has sequence 3",
    );
    tampered(
        |_, db| {
            db.execute("DELETE FROM ledger WHERE sequence = 4", [])
                .unwrap();
        },
        "no ledger entry applied it",
    );
}

#[test]
fn reordered_ledger_rows_are_named() {
    tampered(
        |_, db| {
            // Swap the contents of entries 1 and 2, keeping their positions' numbers.
            db.execute_batch(
                "UPDATE ledger SET sequence = -1 WHERE sequence = 1;
                 UPDATE ledger SET sequence = 1 WHERE sequence = 2;
                 UPDATE ledger SET sequence = 2 WHERE sequence = -1;",
            )
            .unwrap();
        },
        "does not hash to its recorded hash",
    );
}

#[test]
fn hessians_scaled_in_the_state_are_named_even_with_a_matching_hash() {
    // Rewriting a state and renaming it to its new hash (and pointing the version at it)
    // passes the file check but not the chain: the ledger entry names the old file.
    tampered(
        |dir, db| {
            let old = object_of(db, 3, "state");
            let mut bytes = std::fs::read(dir.join("objects").join(&old)).unwrap();
            let end = bytes.len();
            for byte in &mut bytes[end - 64..] {
                *byte = byte.wrapping_add(1);
            }
            let new = unlearn::store::object_hash(&bytes);
            std::fs::write(dir.join("objects").join(&new), bytes).unwrap();
            let files: String = db
                .query_row("SELECT files FROM versions WHERE version = 3", [], |r| {
                    r.get(0)
                })
                .unwrap();
            db.execute(
                "UPDATE versions SET files = ?1 WHERE version = 3",
                [files.replace(&old, &new)],
            )
            .unwrap();
        },
        "version 3 does not match ledger entry 3",
    );
}

#[test]
fn import_converts_a_file_model_and_keeps_its_ledger() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("guo.json");
    let task = ConvexTask::Pair {
        negative: 7,
        positive: 9,
    };
    unlearn::convex::train_and_save("embedded", task, &bundle.train, None, &training(), &model)
        .unwrap();
    let request = unlearn::convex::CertifiedRequest::Ids(ids[..2].to_vec());
    unlearn::convex::forget_and_save(&model, &bundle.train, None, &request, &model).unwrap();
    let path = dir.path().join("store");
    let mut store =
        certified::import_files(&path, &model, &bundle.train, &Policy::default()).unwrap();
    let first = store.current().unwrap();
    assert_eq!(first.info["removed_count"], 2);
    store.submit(&ids[2..3], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let report = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(report.removed_count, 3);
    // Removing an id the old ledger already removed is refused.
    let again = store.submit(&ids[..1], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let refused = store.request(again.request_id).unwrap().unwrap();
    assert_eq!(refused.status, RequestStatus::Refused);
    assert!(certified::import_files(&path, &model, &bundle.train, &Policy::default()).is_err());
}

#[test]
fn tokens_are_stored_hashed_scoped_and_revocable() {
    let bundle = embedded();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    let token = store.add_token("alice", "submit,read").unwrap();
    assert!(store.add_token("alice", "read").is_err());
    assert!(store.add_token("bob", "write").is_err());
    let info = store.authenticate(&token).unwrap().unwrap();
    assert!(info.allows(unlearn::store::Scope::Submit));
    assert!(!info.allows(unlearn::store::Scope::Admin));
    assert!(store.authenticate("ul_wrong").unwrap().is_none());
    let raw = std::fs::read(path.join("store.sqlite")).unwrap();
    let needle = token.as_bytes();
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle),
        "token stored in clear"
    );
    store.revoke_token("alice").unwrap();
    assert!(
        !store
            .authenticate(&token)
            .unwrap()
            .unwrap()
            .allows(unlearn::store::Scope::Read)
    );
    assert!(store.revoke_token("alice").is_err());
}

#[test]
fn opening_sweeps_orphans_and_refuses_non_stores() {
    let bundle = embedded();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    drop(create(&path, &bundle));
    std::fs::write(path.join("objects").join("0".repeat(64)), b"orphan").unwrap();
    std::fs::write(path.join("objects/.staging/abc.tmp"), b"left by a crash").unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(objects_on_disk(&path), referenced(&store));
    assert_eq!(staging_files(&path), 0);
    let message = Store::open(dir.path()).err().unwrap().to_string();
    assert!(message.contains("is not a model store"), "{message}");
    let message = certified::create_store(
        &path,
        "embedded",
        ConvexTask::Pair {
            negative: 7,
            positive: 9,
        },
        &bundle.train,
        None,
        &training(),
        &Policy::default(),
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(message.contains("already holds a model store"), "{message}");
}

#[test]
fn pruned_states_are_gone_and_the_store_still_verifies_replays_and_continues() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    for id in &ids[..5] {
        store.submit(&[*id], None, "test").unwrap();
    }
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let states: Vec<String> = store
        .versions()
        .unwrap()
        .iter()
        .map(|v| v.files["state"].clone())
        .collect();
    assert_eq!(store.prune_states(1).unwrap(), 4);
    for (version, state) in states.iter().enumerate() {
        let present = path.join("objects").join(state).exists();
        assert_eq!(present, version == 0 || version == 5, "version {version}");
    }
    assert_eq!(store.prune_states(1).unwrap(), 0);
    certified::verify_store(&store, &bundle.train, true).unwrap();
    store.submit(&ids[5..6], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    certified::verify_store(&store, &bundle.train, true).unwrap();
    // A state deleted without pruning is named.
    let current = store.current().unwrap();
    let previous = store.version(current.version - 1).unwrap();
    std::fs::remove_file(path.join("objects").join(&previous.files["state"])).unwrap();
    let message = certified::verify_store(&store, &bundle.train, false)
        .unwrap_err()
        .to_string();
    assert!(message.contains("the state file of version 5"), "{message}");
}

/// Every file under `dir` (recursively) holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|window| window == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// The byte patterns a store could hold of training row `id`: its raw f32 pixels and its
/// scaled f64 features (the certified task's row), each as a window of non-zero values.
fn row_patterns(bundle: &DataBundle, id: u32) -> Vec<Vec<u8>> {
    let dims = bundle.train.dims();
    let position = bundle.train.ids.iter().position(|&i| i == id).unwrap();
    let raw = &bundle.train.features[position * dims..(position + 1) * dims];
    let start = raw.iter().position(|&v| v != 0.0).unwrap();
    let f32_window: Vec<u8> = raw[start..start + 16]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let rows = ConvexTask::Pair {
        negative: 7,
        positive: 9,
    }
    .rows(&bundle.train)
    .unwrap();
    let row = rows.row(rows.positions_of(&[id]).unwrap()[0]);
    let start = row.iter().position(|&v| v != 0.0).unwrap();
    let f64_window: Vec<u8> = row[start..start + 8]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    vec![f32_window, f64_window]
}

/// Deletion means erasure: after a removal and a purge, no file under the store holds the
/// removed row's values, and no object of a version that held the row remains (the kept
/// version's objects are those of the removal that certifies it is gone); the store still
/// verifies, replays from its new anchor, and continues.
#[test]
fn a_purge_leaves_nothing_of_a_removed_row() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    let removed = ids[3];
    store.submit(&[removed], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let held: Vec<String> = store.version(0).unwrap().files.into_values().collect();
    let report = store.purge(&Retention::CURRENT_ONLY).unwrap();
    assert_eq!((report.previous_anchor, report.anchor), (0, 1));
    assert_eq!(report.purged_versions, vec![0]);
    assert_eq!(report.objects_deleted, 2);
    let on_disk = objects_on_disk(&path);
    for object in &held {
        assert!(!on_disk.contains(object), "{object} of version 0 survived");
    }
    let kept = store.current().unwrap();
    let proof = store.ledger().unwrap()[1].clone();
    assert_eq!(proof.kind, EntryKind::Removal);
    assert_eq!(proof.ids, vec![removed]);
    assert!(
        on_disk
            .iter()
            .all(|object| kept.files.values().any(|o| o == object))
    );
    // The search itself finds what is there: a control file with the patterns.
    let patterns = row_patterns(&bundle, removed);
    let control = dir.path().join("control");
    std::fs::create_dir(&control).unwrap();
    std::fs::write(control.join("x"), patterns.concat()).unwrap();
    for pattern in &patterns {
        assert_eq!(files_holding(&control, pattern).len(), 1);
        assert_eq!(
            files_holding(&path, pattern),
            Vec::<std::path::PathBuf>::new()
        );
    }
    // The purged version's files are refused by name; the ledger keeps their hashes.
    let message = store
        .read_file(&store.version(0).unwrap(), "model")
        .unwrap_err()
        .to_string();
    assert!(message.contains("was purged"), "{message}");
    assert_eq!(
        store.ledger().unwrap()[0]
            .files
            .values()
            .cloned()
            .collect::<Vec<_>>(),
        held
    );
    let verification = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(verification.chain.anchor, 1);
    assert_eq!(verification.chain.purges, 1);
    assert_eq!(verification.replayed, Some(0));
    // The store continues; the replay covers what came after the anchor.
    store.submit(&[ids[4]], None, "test").unwrap();
    store.submit(&[ids[5]], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let verification = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(verification.replayed, Some(2));
    assert_eq!(verification.removals, 3);
    // Nothing to purge twice; a policy purges after every applied request.
    let again = store.purge(&Retention {
        keep_versions: 3,
        older_than_days: None,
    });
    assert!(again.unwrap().purged_versions.is_empty());
    let mut policy = store.policy().unwrap();
    policy.purge_keep_versions = 1;
    store.set_policy(&policy).unwrap();
    store.submit(&[ids[6]], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    assert_eq!(
        store.replay_anchor().unwrap(),
        store.current_version().unwrap()
    );
    assert_eq!(objects_on_disk(&path).len(), 2);
    certified::verify_store(&store, &bundle.train, true).unwrap();
    // An age limit keeps what is younger.
    let nothing = store
        .purge(&Retention {
            keep_versions: 1,
            older_than_days: Some(1.0),
        })
        .unwrap();
    assert!(nothing.purged_versions.is_empty());
    assert!(
        store
            .purge(&Retention {
                keep_versions: 0,
                older_than_days: None
            })
            .is_err()
    );
}

/// A purge stopped at each of its durable steps (before or after its commit, or between the
/// deletion of two files) leaves a store that verifies; the next writer to open it finishes
/// the deletion, and it replays from its anchor.
#[test]
fn a_stop_at_any_step_of_a_purge_leaves_a_store_that_verifies() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    for step in PURGE_STEPS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut store = create(&path, &bundle);
        store.submit(&[ids[0]], None, "test").unwrap();
        certified::apply_pending(&mut store, &bundle.train, None).unwrap();
        let target = step.to_string();
        let hook: FaultHook = Arc::new(move |at: &str| {
            if at == target {
                return Err(unlearn::Error::invalid(format!("injected stop at {at}")));
            }
            Ok(())
        });
        store.set_fault_hook(Some(hook));
        assert!(store.purge(&Retention::CURRENT_ONLY).is_err(), "{step}");
        drop(store);
        let committed = step != "purge-recorded";
        let reader = Store::open_read_only(&path).unwrap();
        let chain = reader.verify_chain().unwrap();
        assert_eq!(chain.anchor, i64::from(committed), "{step}");
        if committed {
            assert!(chain.purged_files_left >= 1, "{step}");
        }
        drop(reader);
        let store = Store::open(&path).unwrap();
        let chain = store.verify_chain().unwrap();
        assert_eq!(chain.purged_files_left, 0, "{step}");
        let live: BTreeSet<String> = store.current().unwrap().files.into_values().collect();
        if committed {
            assert_eq!(objects_on_disk(&path), live, "{step}");
        }
        certified::verify_store(&store, &bundle.train, true).unwrap();
    }
}

/// Replay recomputes each removal's certificate and accounting: one edited in the ledger (the
/// chain re-hashed so that the edit is not caught as a broken chain) is named by its version.
#[test]
fn a_tampered_certificate_is_named_by_the_replay() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    for id in &ids[..3] {
        store.submit(&[*id], None, "test").unwrap();
    }
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    drop(store);
    /// Halves a residual bound without touching the budget: the recomputation catches it.
    fn halve_a_bound(payload: &mut serde_json::Value) {
        let bound = payload["accounting"]["residual_bounds"][1]
            .as_f64()
            .unwrap();
        payload["accounting"]["residual_bounds"][1] = serde_json::json!(bound * 0.5);
    }
    /// Halves a residual bound and the budget spent with it, consistently: every certificate
    /// still recomputes, only the replay can tell.
    fn halve_a_bound_consistently(payload: &mut serde_json::Value) {
        halve_a_bound(payload);
        let accounting = &payload["accounting"];
        let used = accounting["training_residual"].as_f64().unwrap()
            + accounting["residual_bounds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_f64().unwrap())
                .sum::<f64>();
        payload["certificate"]["budget_used"] = serde_json::json!(used);
        payload["cumulative_budget"] = serde_json::json!(used);
    }
    fn edit_a_check(payload: &mut serde_json::Value) {
        payload["certificate"]["checked_at_runtime"][0] = serde_json::json!("nothing checked");
    }
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit, bool); 3] = [
        ("budget_used", halve_a_bound, false),
        ("accounting", halve_a_bound_consistently, true),
        ("certificate", edit_a_check, true),
    ];
    for (field, edit, only_replay) in edits {
        let copy = dir.path().join(format!("copy-{field}"));
        copy_dir(&path, &copy);
        rewrite_ledger(&copy, 2, edit);
        let store = Store::open_read_only(&copy).unwrap();
        store.verify_chain().unwrap();
        assert_eq!(
            certified::verify_store(&store, &bundle.train, false).is_ok(),
            only_replay,
            "{field}"
        );
        let message = certified::verify_store(&store, &bundle.train, true)
            .unwrap_err()
            .to_string();
        assert!(message.contains("version 2"), "{field}: {message}");
        assert!(message.contains(field), "{field}: {message}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Edits ledger entry `sequence`'s payload with `edit` and re-hashes the chain from there (as
/// someone who can write the database could).
fn rewrite_ledger(dir: &Path, sequence: i64, edit: fn(&mut serde_json::Value)) {
    let store = Store::open_read_only(dir).unwrap();
    let mut rows = store.ledger().unwrap();
    drop(store);
    let connection = rusqlite::Connection::open(dir.join("store.sqlite")).unwrap();
    edit(&mut rows[sequence as usize].payload);
    for index in sequence as usize..rows.len() {
        if index > 0 {
            rows[index].previous_hash = rows[index - 1].entry_hash.clone();
        }
        let text = serde_json::to_string(&rows[index].payload).unwrap();
        rows[index].entry_hash = rows[index].compute_hash(&text);
        connection
            .execute(
                "UPDATE ledger SET payload = ?1, previous_hash = ?2, entry_hash = ?3 WHERE sequence = ?4",
                rusqlite::params![text, rows[index].previous_hash, rows[index].entry_hash, rows[index].sequence],
            )
            .unwrap();
    }
    connection
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'ledger_head'",
            rusqlite::params![rows.last().unwrap().entry_hash],
        )
        .unwrap();
}

/// A failing method never refuses a valid deletion: the request is applied by retraining from
/// scratch (fresh noise), the ledger says why, and the replay retrains there too.
#[test]
fn a_failing_method_falls_back_to_retraining() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    store.submit(&[ids[0]], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let hook: FaultHook = Arc::new(|at: &str| {
        if at == UNLEARNING_STEP {
            return Err(unlearn::Error::invalid("the method broke"));
        }
        Ok(())
    });
    store.set_fault_hook(Some(hook));
    let request = store.submit(&[ids[1]], None, "test").unwrap();
    let outcomes = certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    store.set_fault_hook(None);
    let applied = store.request(request.request_id).unwrap().unwrap();
    assert_eq!(applied.status, RequestStatus::Applied);
    let certificate = outcomes[0].certificate.as_ref().unwrap();
    assert!(certificate.retrained);
    assert!(
        certificate
            .fallback
            .as_deref()
            .unwrap()
            .contains("the method broke")
    );
    // Unknown and already removed ids are still refused: those are the only reasons.
    let again = store.submit(&[ids[1]], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let refused = store.request(again.request_id).unwrap().unwrap();
    assert_eq!(refused.status, RequestStatus::Refused);
    store.submit(&[ids[2]], None, "test").unwrap();
    certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let verification = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(verification.replayed, Some(3));
}

/// A retraining (here forced: the budget is spent) removes every request pending by the time
/// it starts, in one training and one ledger entry naming them all, whatever the batch size;
/// each request gets its status, version and ledger entry, and the replay retrains there too.
#[test]
fn a_retraining_takes_every_pending_request() {
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut store = create(&path, &bundle);
    let submitted: Vec<i64> = ids[..120]
        .iter()
        .map(|id| store.submit(&[*id], None, "test").unwrap().request_id)
        .collect();
    let outcomes = certified::apply_pending(&mut store, &bundle.train, None).unwrap();
    let retrain = outcomes
        .iter()
        .find(|o| o.certificate.as_ref().is_some_and(|c| c.retrained))
        .expect("120 removals on a budget for about 10 retrain at least once");
    // Everything still pending when the budget ran out went in that one retraining.
    let applied_before: usize = outcomes
        .iter()
        .take_while(|o| !o.certificate.as_ref().unwrap().retrained)
        .map(|o| o.applied.len())
        .sum();
    assert_eq!(retrain.applied.len(), 120 - applied_before);
    assert_eq!(outcomes.len(), applied_before + 1);
    let entry = retrain.entry.as_ref().unwrap();
    assert_eq!(entry.request_ids.len(), retrain.applied.len());
    for id in &submitted {
        let request = store.request(*id).unwrap().unwrap();
        assert_eq!(request.status, RequestStatus::Applied);
        assert!(request.version.is_some() && request.ledger_sequence.is_some());
    }
    let verification = certified::verify_store(&store, &bundle.train, true).unwrap();
    assert_eq!(verification.removed_count, 120);
    assert_eq!(verification.retrained, 1);
}

/// The store kinds' trait end to end on a certified store: a request selected, committed and
/// applied through `request_removal`, its version typed, the store verified through the
/// trait, and each failure a caller branches on returned as its own error variant.
#[test]
fn the_kind_trait_removes_verifies_and_types_its_errors() {
    use unlearn::Error;
    use unlearn::store::{Environment, KindSummary, ModelKind};
    let bundle = embedded();
    let ids = pair_ids(&bundle);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut store = create(&path, &bundle);
    assert_eq!(store.behaviour().kind(), ModelKind::Certified);
    let request = dir.path().join("request.txt");
    std::fs::write(&request, format!("{} {}", ids[0], ids[1])).unwrap();
    let selector = unlearn::store::request_selector(&format!("ids:{}", request.display())).unwrap();
    let env = Environment::named("cpu", None);
    let removal =
        unlearn::store::request_removal(&mut store, &env, &selector, 0, Some("k"), "test").unwrap();
    assert_eq!(removal.ids, vec![ids[0], ids[1]]);
    assert_eq!(removal.version.version, 1);
    assert_eq!(removal.info.removed_count, 2);
    assert_eq!(removal.info.method.as_deref(), Some("newton-guo"));
    let KindSummary::Certified(summary) = &removal.info.summary else {
        panic!("a certified store's version is described as certified");
    };
    let certificate = summary
        .certificate
        .as_ref()
        .expect("a removal's certificate");
    assert_eq!(
        removal.info.summary.budget_left(),
        Some(certificate.budget_total - certificate.budget_used)
    );
    assert!(removal.ours().is_some());
    let lines = store.behaviour().removal_lines(&removal);
    assert!(lines[0].starts_with(&format!("request {}: removed 2 rows", removal.request.id)));
    let verification = unlearn::store::verify(&store, &env, true).unwrap();
    assert_eq!(verification.replayed, Some(1));
    assert!(verification.json.is_some());
    assert!(verification.lines[0].starts_with("ok: newton-guo store"));

    // A random draw is not a request; the same key with other ids is a conflict; what does
    // not exist is not found; an id that is no training row is refused.
    assert!(matches!(
        unlearn::store::request_selector("random:3"),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.submit(&[ids[2]], Some("k"), "test"),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(store.version(99), Err(Error::NotFound(_))));
    assert!(matches!(store.find_request(999), Err(Error::NotFound(_))));
    let unknown = store.submit(&[4_000_000], None, "test").unwrap();
    unlearn::store::apply_pending(&mut store, &env).unwrap();
    let refused = unlearn::store::settled(&store, unknown.request_id);
    assert!(
        matches!(&refused, Err(Error::Refused(message)) if message.contains("not a training row")),
        "{refused:?}"
    );
    for version in store.versions().unwrap() {
        assert_eq!(
            store.version_info(&version).unwrap().version,
            version.version
        );
    }
}
