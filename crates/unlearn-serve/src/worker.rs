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
use unlearn::store::{Application, Environment, FaultHook, KindModel, Store, WriteGate};

/// The store's model prepared in memory, whatever its kind, with what it was loaded from
/// (the data, the device) to load it again.
struct Prepared {
    model: Box<dyn KindModel>,
    env: Environment,
}

impl Prepared {
    fn apply(
        &mut self,
        store: &mut Store,
        pending: &[unlearn::store::RequestRow],
    ) -> unlearn::Result<Application> {
        self.model.apply(store, pending)
    }

    /// Loads the store's current version again (after an error left memory ahead of it).
    fn reload(&mut self, store: &Store) -> unlearn::Result<()> {
        self.model = store.behaviour().load(store, &self.env)?;
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
    let kind = store.behaviour();
    if let (Some(_), Some(reason)) = (&options.data, kind.names_its_data()) {
        return Err(unlearn::Error::invalid(format!(
            "--data is for certified stores; {reason}"
        )));
    }
    let env = Environment::named(&options.device, options.data.clone());
    let model = kind.load(&store, &env)?;
    Ok((store, Prepared { model, env }))
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
    if !applied.applied.is_empty() {
        store.purge_by_policy()?;
    }
    let now = crate::health::now_ms();
    let settled: Vec<f64> = match &applied.entry {
        Some(entry) => store
            .requests_of_entry(entry.sequence)?
            .iter()
            .map(|request| (now - request.received_at_ms).max(0) as f64 / 1000.0)
            .collect(),
        None => Vec::new(),
    };
    metrics.record_apply(
        applied.applied.len(),
        applied.refused.len(),
        applied.retrained,
        apply_seconds,
        applied.removal_seconds,
        &settled,
    );
    health.done(Ok(apply_seconds));
    Ok(true)
}
