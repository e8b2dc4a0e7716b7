//! Independent jobs on every core and across machines (docs/algorithms.md §F4): a worker pool whose
//! results come back in input order (so `--jobs N` gives the same output as `--jobs 1`), and
//! the `--shard i/N` arithmetic shared by `audit` and `bench`.

use crate::error::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The number of cores this process may use (1 when unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Sets the number of threads that operations inside one job use (Burn's tensor kernels and
/// faer's linear algebra both run on rayon's global pool): `--threads N`. Call once, before
/// any parallel work; a second call, or one after the pool started, is refused.
pub fn set_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::invalid("--threads must be at least 1"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::invalid(format!("cannot set {threads} threads: {e}")))
}

/// The threads an operation inside one job may use (rayon's global pool).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `work` on a thread of rayon's pool (at once when already on one), so that the kernels
/// it calls run on the thread that asks for them and on the pool's other threads. Called from
/// outside the pool, every parallel section would be handed to the pool and waited for, even
/// with one thread: measured, the MLP 784-256-10 trained in 3.1 s that way against 2.4 s on
/// the pool (`--threads 1`, 5 epochs). With one thread, jobs that run side by side each have a
/// pool of their own ([`map_ordered`]). Not for work that blocks on other threads' use of the
/// same pool (a server whose handlers run kernels): with one thread, they would wait forever.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        work()
    } else {
        rayon::scope(|_| work())
    }
}

/// Runs `work(state, index, item)` for every item on `jobs` threads, each thread with its own
/// `state` from `init` (a clone of the data, a model cache), and returns the results in the
/// items' order. The first error stops the pool from starting new items and is returned;
/// items already running finish first. With `jobs == 1` everything runs on the calling thread.
/// The jobs' kernels share rayon's pool; with one thread in it ([`threads`] = 1), each job
/// gets a one-thread pool of its own instead, so that jobs do not queue for one thread (the
/// kernels then see one thread either way: the same bits). Called on a thread of a pool with
/// more threads, the jobs run as tasks of that pool, at most one per thread at a time.
pub fn map_ordered<T, S, R>(
    jobs: usize,
    items: &[T],
    init: impl Fn() -> Result<S> + Sync,
    work: impl Fn(&mut S, usize, &T) -> Result<R> + Sync,
) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
{
    let jobs = jobs.clamp(1, items.len().max(1));
    if jobs == 1 {
        let mut state = init()?;
        return items
            .iter()
            .enumerate()
            .map(|(index, item)| work(&mut state, index, item))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    // Stops every job from starting new items and keeps the error to return: an item's error
    // replaces a later item's (as a sequential run would report the earliest); a job that could
    // not start (`item: None`) is kept only when nothing failed before it.
    let fail = |item: Option<usize>, error: Error| {
        failed.store(true, Ordering::SeqCst);
        let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
        match item {
            Some(index) if slot.as_ref().is_none_or(|(first, _)| index < *first) => {
                *slot = Some((index, error));
            }
            Some(_) => {}
            None => {
                slot.get_or_insert((0, error));
            }
        }
    };
    // One job: take items until none is left (or one failed), each with the job's own state.
    let run_items = || {
        let mut state = match init() {
            Ok(state) => state,
            Err(error) => return fail(None, error),
        };
        loop {
            if failed.load(Ordering::SeqCst) {
                return;
            }
            let index = next.fetch_add(1, Ordering::SeqCst);
            let Some(item) = items.get(index) else {
                return;
            };
            match work(&mut state, index, item) {
                Ok(result) => {
                    results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
                }
                Err(error) => return fail(Some(index), error),
            }
        }
    };
    let own_pools = threads() == 1;
    if !own_pools && rayon::current_thread_index().is_some() {
        // Called on a thread of the pool (a command run with `on_pool`): the jobs are tasks of
        // this pool, this thread taking part, so that no pool thread sits blocked waiting for
        // threads of its own; at most one job per pool thread runs at a time.
        rayon::scope(|scope| {
            for _ in 1..jobs {
                scope.spawn(|_| run_items());
            }
            run_items();
        });
    } else {
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    if !own_pools {
                        return run_items();
                    }
                    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
                        Ok(pool) => pool.install(run_items),
                        Err(error) => fail(
                            None,
                            Error::invalid(format!("cannot start a job's thread: {error}")),
                        ),
                    }
                });
            }
        });
    }
    if let Some((_, error)) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(error);
    }
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|slot| slot.ok_or_else(|| Error::invalid("a job did not run")))
        .collect()
}

/// One part of N of a run's work: `--shard i/N` (0 ≤ i < N) or `--shard auto/N`, which reads
/// the index from `SLURM_ARRAY_TASK_ID` (a Slurm job array `--array=0-(N-1)`) or
/// `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// This part's index, 0-based.
    pub index: usize,
    /// The number of parts.
    pub count: usize,
}

/// The environment variables `--shard auto/N` reads, in order.
pub const SHARD_INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

impl Shard {
    /// The whole work as one part.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/N` or `auto/N` (the latter with `lookup` standing for the environment).
    pub fn parse_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let bad = |why: String| Error::invalid(format!("--shard '{text}': {why}"));
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| bad("expected i/N or auto/N".into()))?;
        let count: usize = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("N must be a whole number of at least 1".into()))?;
        let index_text = if index.trim() == "auto" {
            SHARD_INDEX_VARIABLES
                .iter()
                .find_map(|name| lookup(name).map(|value| (name, value)))
                .map(|(_, value)| value)
                .ok_or_else(|| {
                    bad(format!(
                        "auto needs {} in the environment",
                        SHARD_INDEX_VARIABLES.join(" or ")
                    ))
                })?
        } else {
            index.trim().to_string()
        };
        let index: usize = index_text
            .trim()
            .parse()
            .map_err(|_| bad(format!("index '{index_text}' is not a whole number")))?;
        if index >= count {
            return Err(bad(format!(
                "index {index} is not below the number of parts {count} (parts are numbered from 0)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Parses `i/N` or `auto/N` from the process environment.
    pub fn parse(text: &str) -> Result<Shard> {
        Shard::parse_with(text, |name| std::env::var(name).ok())
    }

    /// Whether item `index` of the work belongs to this part (round robin, which spreads
    /// items of different cost evenly over the parts).
    pub fn owns(&self, index: usize) -> bool {
        index % self.count == self.index
    }

    /// `i-of-N`, used to name a part's directory.
    pub fn label(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

/// The part directories named by `paths` (sorted within each run): a directory holding
/// `part_file` is a part; otherwise the subdirectories of its `parts/` are. `what` names the
/// kind of run in errors (`audit`, `bench`).
pub fn part_directories(
    paths: &[std::path::PathBuf],
    part_file: &str,
    what: &str,
) -> Result<Vec<std::path::PathBuf>> {
    let mut parts = Vec::new();
    for path in paths {
        if path.join(part_file).exists() {
            parts.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path.join("parts")).map_err(|_| {
            Error::invalid(format!(
                "{}: neither a {what} part (no {part_file}) nor a run directory with parts/",
                path.display()
            ))
        })?;
        let mut found: Vec<std::path::PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        parts.extend(found);
    }
    if parts.is_empty() {
        return Err(Error::invalid(format!("no {what} parts to merge")));
    }
    Ok(parts)
}

/// Reads each part's description file (`part_file`, JSON); a part without one did not finish
/// and is named as incomplete.
pub fn read_parts<T: serde::de::DeserializeOwned>(
    directories: &[std::path::PathBuf],
    part_file: &str,
) -> Result<Vec<(std::path::PathBuf, T)>> {
    directories
        .iter()
        .map(|directory| {
            let path = directory.join(part_file);
            let bytes = std::fs::read(&path).map_err(|_| {
                Error::invalid(format!(
                    "{}: incomplete part (no {part_file}; the part did not finish)",
                    directory.display()
                ))
            })?;
            let part = serde_json::from_slice(&bytes)
                .map_err(|e| Error::format(&path, format!("not a part description ({e})")))?;
            Ok((directory.clone(), part))
        })
        .collect()
}

/// Checks that `parts` (directory, shard) are all N parts of one run: the same N, none given
/// twice, none missing (named, with how to run them).
pub fn check_parts(parts: &[(&std::path::Path, Shard)]) -> Result<()> {
    let Some((first_dir, first)) = parts.first() else {
        return Err(Error::invalid("no parts to merge"));
    };
    let count = first.count;
    let mut present: std::collections::BTreeMap<usize, &std::path::Path> = Default::default();
    for (directory, shard) in parts {
        if shard.count != count {
            return Err(Error::invalid(format!(
                "{}: part {} of a {}-part run, while {} is of a {count}-part run",
                directory.display(),
                shard.label(),
                shard.count,
                first_dir.display()
            )));
        }
        if let Some(other) = present.insert(shard.index, directory) {
            return Err(Error::invalid(format!(
                "part {} given twice: {} and {}",
                shard.label(),
                other.display(),
                directory.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|index| !present.contains_key(index))
        .map(|index| Shard { index, count }.label())
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "missing parts: {} (run them with --shard i/{count}, then merge again)",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Where a merge writes: `out`, or the run directory above the first part's `parts/`.
pub fn merge_directory(
    first_part: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<std::path::PathBuf> {
    match out {
        Some(out) => Ok(out.to_path_buf()),
        None => first_part
            .parent()
            .filter(|parent| parent.file_name().is_some_and(|name| name == "parts"))
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| {
                Error::invalid("the parts are not under RUN/parts/; say where to write with --out")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_for_any_number_of_jobs() {
        let items: Vec<u64> = (0..37).collect();
        let expected: Vec<u64> = items.iter().map(|x| x * x + 1).collect();
        for jobs in [1, 2, 3, 8, 100] {
            let got = map_ordered(jobs, &items, || Ok(1u64), |one, _, x| Ok(x * x + *one)).unwrap();
            assert_eq!(got, expected, "jobs {jobs}");
        }
    }

    /// Work handed to `on_pool` runs on a thread of the pool, from outside it or inside.
    #[test]
    fn on_pool_runs_the_work_on_a_pool_thread() {
        assert_eq!(rayon::current_thread_index(), None);
        assert!(on_pool(rayon::current_thread_index).is_some());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (outer, inner) = pool.install(|| {
            let outer = rayon::current_thread_index();
            (outer, on_pool(rayon::current_thread_index))
        });
        assert!(outer.is_some());
        assert_eq!(
            inner, outer,
            "already on a pool thread: at once, on the same thread"
        );
    }

    /// From a thread of a pool (a command run with `on_pool`) the jobs become the pool's tasks,
    /// and with a one-thread pool each job gets a pool of its own: the same results, in order,
    /// and the earliest failure, whichever path runs them.
    #[test]
    fn jobs_called_from_a_pool_thread_give_the_same_results() {
        let items: Vec<u64> = (0..37).collect();
        let expected: Vec<u64> = items.iter().map(|x| x * x + 1).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for jobs in [1, 2, 5] {
                let got = pool.install(|| {
                    map_ordered(
                        jobs,
                        &items,
                        || Ok(1u64),
                        |one, _, x| {
                            // Kernels inside a job see the pool's thread count.
                            assert_eq!(rayon::current_num_threads(), threads);
                            Ok(x * x + *one)
                        },
                    )
                });
                assert_eq!(got.unwrap(), expected, "threads {threads}, jobs {jobs}");
                let error = pool
                    .install(|| {
                        map_ordered(
                            jobs,
                            &items,
                            || Ok(()),
                            |_, _, x| {
                                if *x == 3 {
                                    Err(Error::invalid("item 3 failed"))
                                } else {
                                    Ok(*x)
                                }
                            },
                        )
                    })
                    .unwrap_err();
                assert!(error.to_string().contains("item 3"), "{error}");
            }
        }
    }

    #[test]
    fn the_earliest_failure_is_reported() {
        let items: Vec<usize> = (0..20).collect();
        for jobs in [1, 2, 4] {
            let error = map_ordered(
                jobs,
                &items,
                || Ok(()),
                |_, _, x| {
                    if *x >= 5 {
                        Err(Error::invalid(format!("item {x} failed")))
                    } else {
                        Ok(*x)
                    }
                },
            )
            .unwrap_err();
            // Workers may have started later items, but item 5 is always reached before any
            // later item fails only on one thread; with several threads an item ≥ 5 fails.
            assert!(error.to_string().contains("failed"), "{error}");
            if jobs == 1 {
                assert!(error.to_string().contains("item 5"), "{error}");
            }
        }
    }

    #[test]
    fn shards_parse_partition_and_read_the_scheduler() {
        assert_eq!(
            Shard::parse_with("1/3", |_| None).unwrap(),
            Shard { index: 1, count: 3 }
        );
        let slurm = |name: &str| (name == "SLURM_ARRAY_TASK_ID").then(|| "2".to_string());
        assert_eq!(Shard::parse_with("auto/3", slurm).unwrap().index, 2);
        let k8s = |name: &str| (name == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        assert_eq!(Shard::parse_with("auto/4", k8s).unwrap().index, 0);
        for bad in ["3/3", "x/3", "1/0", "1", "auto/2"] {
            let error = Shard::parse_with(bad, |_| None).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
        let parts: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for item in 0..20 {
            assert_eq!(parts.iter().filter(|p| p.owns(item)).count(), 1);
        }
    }
}
