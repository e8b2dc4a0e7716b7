//! The worker: one thread that keeps the prepared data and the store's current model in
//! memory and applies committed requests in commit order, following the store's policy (read
//! again before every application, so `unlearn store policy` takes effect without a
//! restart). It reports a heartbeat, its errors and the queue to [`Health`].

use crate::ServeOptions;
use crate::health::Health;
use crate::metrics::Metrics;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use unlearn::data::{DataBundle, DataSource, load};
use unlearn::device::{Device, DeviceChoice};
use unlearn::store::certified::{self, CertifiedModel};
use unlearn::store::neural::NeuralModel;
use unlearn::store::sisa::SisaStoreModel;
use unlearn::store::{FaultHook, ModelKind, RequestRow, Store, WriteGate};

/// The store's model prepared in memory.
enum Prepared {
    /// A certified model with its data.
    Certified(Box<CertifiedModel>, Box<DataBundle>),
    /// A neural network (its setup holds the data) and the device it runs on.
    Neural(Box<NeuralModel>, Device),
    /// A SISA ensemble (with its data) and the device it runs on.
    Sisa(Box<SisaStoreModel>, Device),
}

/// What one application did, whatever the model.
struct Outcome {
    applied: usize,
    refused: usize,
    retrained: bool,
    removal_seconds: f64,
    entry: Option<i64>,
}

impl Prepared {
    fn apply(&mut self, store: &mut Store, pending: &[RequestRow]) -> unlearn::Result<Outcome> {
        Ok(match self {
            Prepared::Certified(model, _) => {
                let applied = model.apply(store, pending)?;
                Outcome {
                    retrained: applied.certificate.as_ref().is_some_and(|c| c.retrained),
                    refused: applied.refused.len(),
                    removal_seconds: applied.removal_seconds,
                    applied: applied.applied.len(),
                    entry: applied.entry.map(|row| row.sequence),
                }
            }
            Prepared::Neural(model, _) => {
                let applied = model.apply(store, pending)?;
                Outcome {
                    retrained: applied.retrained,
                    refused: applied.refused.len(),
                    removal_seconds: applied.seconds,
                    applied: applied.applied.len(),
                    entry: applied.entry.map(|row| row.sequence),
                }
            }
            Prepared::Sisa(model, _) => {
                let applied = model.apply(store, pending)?;
                Outcome {
                    // A full retraining: every shard retrained from its first slice.
                    retrained: applied.summary.as_ref().is_some_and(|s| s.share >= 1.0),
                    refused: applied.refused.len(),
                    removal_seconds: applied.seconds,
                    applied: applied.applied.len(),
                    entry: applied.entry.map(|row| row.sequence),
                }
            }
        })
    }

    /// Loads the store's current version again (after an error left memory ahead of it).
    fn reload(&mut self, store: &Store) -> unlearn::Result<()> {
        match self {
            Prepared::Certified(model, bundle) => {
                **model = CertifiedModel::load(store, &bundle.train, Some(&bundle.test))?;
            }
            Prepared::Neural(model, device) => **model = NeuralModel::load(store, device)?,
            Prepared::Sisa(model, device) => **model = SisaStoreModel::load(store, device)?,
        }
        Ok(())
    }
}

/// Wakes the worker when requests were committed.
#[derive(Clone)]
pub(crate) struct Notifier(Arc<(Mutex<bool>, Condvar)>);

impl Notifier {
    pub(crate) fn wake(&self) {
        let (flag, condvar) = &*self.0;
        *flag.lock().expect("notifier") = true;
        condvar.notify_one();
    }

    /// Waits until woken or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        let (flag, condvar) = &*self.0;
        let guard = flag.lock().expect("notifier");
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, timeout, |woken| !*woken)
            .expect("notifier");
        *guard = false;
    }
}

pub(crate) struct Worker {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    notifier: Notifier,
    store_dir: PathBuf,
}

/// A test hook read from `UNLEARN_WORKER_FAULT`: `die` makes the worker thread panic at its
/// first application, `error` makes every application fail (a poisoned worker). Unset in
/// normal use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerFault {
    Die,
    Error,
}

fn worker_fault() -> Option<WorkerFault> {
    match std::env::var("UNLEARN_WORKER_FAULT").ok()?.as_str() {
        "die" => Some(WorkerFault::Die),
        "error" => Some(WorkerFault::Error),
        _ => None,
    }
}

/// Marks the worker stopped when its thread ends, however it ends (a panic included).
struct AliveGuard(Arc<Health>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.stopped();
    }
}

impl Worker {
    /// Opens the store, loads its data and current model (failing fast when they do not
    /// match), and starts the thread.
    pub(crate) fn start(
        options: &ServeOptions,
        fault: Option<FaultHook>,
        gate: Arc<WriteGate>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> unlearn::Result<Worker> {
        let (ready, started) = std::sync::mpsc::sync_channel::<unlearn::Result<()>>(1);
        let notifier = Notifier(Arc::new((Mutex::new(false), Condvar::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let quiet = options.quiet;
        let handle = {
            let notifier = notifier.clone();
            let stop = stop.clone();
            let options = options.clone();
            std::thread::Builder::new()
                .name("worker".into())
                .spawn(move || {
                    let prepared = prepare(&options, fault, gate);
                    let (mut store, mut model) = match prepared {
                        Ok(prepared) => {
                            health.started();
                            let _ = ready.send(Ok(()));
                            prepared
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _alive = AliveGuard(health.clone());
                    let fault = worker_fault();
                    let mut failures = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        health.beat();
                        notifier.wait(Duration::from_millis(250));
                        loop {
                            health.beat();
                            if let Ok((requests, ids, oldest)) = queue_of(&store) {
                                health.queue(requests, ids, oldest);
                            }
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            match step(&mut store, &mut model, &metrics, &health, fault) {
                                Ok(true) => failures = 0,
                                Ok(false) => break,
                                Err(e) => {
                                    if !quiet {
                                        eprintln!("unlearn serve: worker: {e}; reloading the current version");
                                    }
                                    health.done(Err(e.to_string()));
                                    failures += 1;
                                    // Back off: 100 ms, doubling, at most 5 s.
                                    let wait = 100u64 << failures.min(6);
                                    std::thread::sleep(Duration::from_millis(wait.min(5_000)));
                                    if let Err(e) = model.reload(&store) {
                                        eprintln!("unlearn serve: worker: cannot reload: {e}");
                                    }
                                    break;
                                }
                            }
                        }
                    }
                })
                .map_err(|e| unlearn::Error::invalid(format!("cannot start the worker: {e}")))?
        };
        started
            .recv()
            .map_err(|_| unlearn::Error::invalid("the worker stopped while starting"))??;
        Ok(Worker {
            handle: Some(handle),
            stop,
            notifier,
            store_dir: options.store.clone(),
        })
    }

    pub(crate) fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }

    pub(crate) fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// Stops after the application in progress.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notifier.wake();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Pending requests, their ids and the oldest one's commit time.
fn queue_of(store: &Store) -> unlearn::Result<(usize, usize, Option<i64>)> {
    let (pending, _, _) = store.request_counts()?;
    let (ids, oldest) = store.pending_load()?;
    Ok((pending, ids, oldest))
}

/// Opens the store, loads its data and current model (failing when they do not match).
fn prepare(
    options: &ServeOptions,
    fault: Option<FaultHook>,
    gate: Arc<WriteGate>,
) -> unlearn::Result<(Store, Prepared)> {
    let mut store = Store::open_with(&options.store, fault)?;
    store.set_write_gate(gate);
    if store.kind() == ModelKind::Sisa {
        if options.data.is_some() {
            return Err(unlearn::Error::invalid(
                "--data is for certified stores; a SISA plan names its data",
            ));
        }
        let device = DeviceChoice::parse(&options.device)?.device()?.autodiff();
        let model = SisaStoreModel::load(&store, &device)?;
        return Ok((store, Prepared::Sisa(Box::new(model), device)));
    }
    if store.kind() == ModelKind::Neural {
        if options.data.is_some() {
            return Err(unlearn::Error::invalid(
                "--data is for certified stores; a network's sidecar names its data",
            ));
        }
        let device = DeviceChoice::parse(&options.device)?.device()?.autodiff();
        let model = NeuralModel::load(&store, &device)?;
        return Ok((store, Prepared::Neural(Box::new(model), device)));
    }
    let description = match &options.data {
        Some(data) => data.clone(),
        None => certified::data_description(&store)?,
    };
    let bundle = load(&DataSource::parse(&description)?)?;
    let model = CertifiedModel::load(&store, &bundle.train, Some(&bundle.test))?;
    Ok((
        store,
        Prepared::Certified(Box::new(model), Box::new(bundle)),
    ))
}

/// Applies the next batch of pending requests (a retraining takes every pending one); false
/// when none was pending. The policy is read afresh each time.
fn step(
    store: &mut Store,
    model: &mut Prepared,
    metrics: &Metrics,
    health: &Health,
    fault: Option<WorkerFault>,
) -> unlearn::Result<bool> {
    let policy = store.policy()?;
    let mut pending = store.pending(policy.batch_max)?;
    if pending.is_empty() {
        return Ok(false);
    }
    match fault {
        Some(WorkerFault::Die) => panic!("UNLEARN_WORKER_FAULT=die: the worker dies"),
        Some(WorkerFault::Error) => {
            return Err(unlearn::Error::invalid(
                "UNLEARN_WORKER_FAULT=error: the worker is poisoned",
            ));
        }
        None => {}
    }
    if policy.batch_wait_ms > 0 && pending.len() < policy.batch_max {
        std::thread::sleep(Duration::from_millis(policy.batch_wait_ms));
        pending = store.pending(policy.batch_max)?;
    }
    health.busy();
    let turn = Instant::now();
    let applied = model.apply(store, &pending)?;
    let apply_seconds = turn.elapsed().as_secs_f64();
    // Retention: the policy's purge after every applied request.
    if applied.applied > 0 {
        store.purge_by_policy()?;
    }
    let now = crate::health::now_ms();
    let settled: Vec<f64> = match applied.entry {
        Some(sequence) => store
            .requests_of_entry(sequence)?
            .iter()
            .map(|request| (now - request.received_at_ms).max(0) as f64 / 1000.0)
            .collect(),
        None => Vec::new(),
    };
    metrics.record_apply(
        applied.applied,
        applied.refused,
        applied.retrained,
        apply_seconds,
        applied.removal_seconds,
        &settled,
    );
    health.done(Ok(apply_seconds));
    Ok(true)
}
