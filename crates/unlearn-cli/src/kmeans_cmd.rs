//! `unlearn kmeans train|delete|eval|bench`: deletion-efficient k-means (Ginart, Guan,
//! Valiant, Zou 2019, "Making AI Forget You"). The command only parses and prints; every
//! computation lives in `unlearn::kmeans`.

use crate::{Global, emit};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use unlearn::kmeans::{
    DeletionBenchOptions, Features, GridConfig, KMeansArtifact, KMeansOptions, bench_kmeans,
    check_deletion_request, read_ids, train_kmeans,
};
use unlearn::progress::Progress;

/// Deletion-efficient k-means (Ginart et al. 2019): Q-k-means and DC-k-means.
#[derive(Subcommand)]
pub enum KmeansCommand {
    /// Train Q-k-means or DC-k-means and save the model with its deletion metadata (JSON).
    Train {
        /// Data: gaussian:n=N,d=D,k=K[,std=S][,seed=S], idx:DIR, csv:FILE or embedded (features only).
        #[arg(long)]
        data: String,
        #[command(flatten)]
        method: MethodArgs,
        /// Where to write the model (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete points by id from a saved model; the deletions may come in later invocations.
    Delete {
        /// The saved model (JSON).
        #[arg(long)]
        model: PathBuf,
        /// Data; defaults to the source recorded in the model.
        #[arg(long)]
        data: Option<String>,
        /// Ids to delete, comma-separated.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<u32>,
        /// A file of ids to delete (separated by commas, spaces or newlines).
        #[arg(long)]
        ids_file: Option<PathBuf>,
        /// Where to write the updated model; defaults to overwriting --model.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Loss of a saved model on its live training points (and the test set, if any).
    Eval {
        /// The saved model (JSON).
        #[arg(long)]
        model: PathBuf,
        /// Data; defaults to the source recorded in the model.
        #[arg(long)]
        data: Option<String>,
        /// Also train k-means++/Lloyd on the live points and report the loss ratio.
        #[arg(long)]
        compare: bool,
    },
    /// Protocol P6: sequential random deletions timed against retraining k-means++.
    Bench {
        /// Data: gaussian:n=N,d=D,k=K[,std=S][,seed=S], idx:DIR, csv:FILE or embedded.
        #[arg(long)]
        data: String,
        #[command(flatten)]
        method: MethodArgs,
        /// Sequential deletions of random ids.
        #[arg(long, default_value_t = 1000)]
        deletions: usize,
        /// k-means++/Lloyd retrains timed for the baseline.
        #[arg(long, default_value_t = 3)]
        baseline_runs: usize,
        /// Stop deleting after this many seconds and report the deletions done.
        #[arg(long, allow_hyphen_values = true)]
        time_budget: Option<f64>,
    },
    /// Run every `[[run]]` of a P6 config (configs/p6_kmeans.toml) in turn, as `bench` would.
    Grid {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// Only the runs of these names (repeatable); default: all.
        #[arg(long = "run")]
        runs: Vec<String>,
    },
}

/// Method and hyper-parameters of `unlearn kmeans train` and `bench`.
#[derive(Args)]
pub struct MethodArgs {
    /// Method: q (Q-k-means) or dc (DC-k-means).
    #[arg(long, default_value = "q")]
    method: String,
    /// Number of clusters.
    #[arg(long)]
    k: usize,
    /// Q-k-means: quantisation step ε.
    #[arg(long, default_value_t = 0.05, allow_hyphen_values = true)]
    epsilon: f64,
    /// Q-k-means: balance γ.
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    balance: f64,
    /// Q-k-means: rounds T.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// DC-k-means: tree widths below the root, comma-separated (default: one level of
    /// round(sqrt(n/k)) leaves).
    #[arg(long, value_delimiter = ',')]
    widths: Vec<usize>,
    /// DC-k-means: most Lloyd iterations per node.
    #[arg(long, default_value_t = 100)]
    max_iterations: usize,
    /// DC-k-means: k-means++ restarts per node (the lowest loss is kept).
    #[arg(long, default_value_t = 1)]
    restarts: usize,
    /// DC-k-means: centroids kept by every node below the root (default 2k; k is Ginart et
    /// al.'s single k, which loses clusters a leaf's k-means++ run misses).
    #[arg(long)]
    node_clusters: Option<usize>,
}

impl MethodArgs {
    fn options(&self) -> KMeansOptions {
        KMeansOptions {
            method: self.method.clone(),
            k: self.k,
            epsilon: self.epsilon,
            balance: self.balance,
            iterations: self.iterations,
            widths: self.widths.clone(),
            max_iterations: self.max_iterations,
            restarts: self.restarts,
            node_clusters: self.node_clusters,
        }
    }
}

/// Runs one `unlearn kmeans` subcommand.
pub fn run(global: &Global, command: KmeansCommand) -> Result<()> {
    let (seed, json, progress) = (global.seed, global.json, crate::progress(global));
    match command {
        KmeansCommand::Train { data, method, out } => {
            let features = Features::load(&data)?;
            let started = Instant::now();
            let (model, loss) = train_kmeans(&features, &method.options(), seed)?;
            let seconds = started.elapsed().as_secs_f64();
            let (points, dims) = (features.ids.len(), features.dims);
            KMeansArtifact::new(model.clone(), Some(data)).save(&out)?;
            let value = serde_json::json!({
                "method": model.method_name(), "k": model.k(), "points": points, "dims": dims,
                "seed": seed, "loss": loss, "train_seconds": seconds,
                "out": out.display().to_string(),
            });
            let text = format!(
                "trained {}-k-means (k = {}) on {points} points x {dims} dims in {seconds:.3} s; loss {loss:.6}; saved {}",
                model.method_name(),
                model.k(),
                out.display()
            );
            emit(global, &value, &text)?;
        }
        KmeansCommand::Delete {
            model,
            data,
            mut ids,
            ids_file,
            out,
        } => {
            if let Some(file) = &ids_file {
                ids.extend(read_ids(file)?);
            }
            check_deletion_request(&ids)?;
            let mut artifact = KMeansArtifact::load(&model)?;
            let features = Features::load(&artifact.data_source_or(data, &model)?)?;
            let bar = progress.bar(ids.len() as u64, "deleting");
            let started = Instant::now();
            let outcomes = artifact.delete_ids(&features.points()?, &ids, &mut || bar.inc(1))?;
            bar.finish_and_clear();
            let seconds = started.elapsed().as_secs_f64();
            let out = out.unwrap_or(model);
            artifact.save(&out)?;
            let retrains = outcomes.iter().filter(|o| o.retrained).count();
            let total = artifact.model.deleted().len();
            let text = format!(
                "deleted {} point(s) in {seconds:.4} s ({retrains} retrain(s)); {total} deleted in total; saved {}",
                ids.len(),
                out.display()
            );
            let value = serde_json::json!({
                "deleted": ids, "retrains": retrains, "seconds": seconds, "total_deleted": total,
                "outcomes": outcomes, "out": out.display().to_string(),
            });
            emit(global, &value, &text)?;
        }
        KmeansCommand::Eval {
            model,
            data,
            compare,
        } => {
            let artifact = KMeansArtifact::load(&model)?;
            let features = Features::load(&artifact.data_source_or(data, &model)?)?;
            let evaluation = artifact.evaluate(&features, compare, seed)?;
            emit(global, &evaluation, &evaluation.describe())?;
        }
        KmeansCommand::Bench {
            data,
            method,
            deletions,
            baseline_runs,
            time_budget,
        } => {
            let options = DeletionBenchOptions {
                deletions,
                baseline_runs,
                baseline_max_iterations: 100,
                seed,
                time_budget_seconds: time_budget,
            };
            run_bench(&data, &method.options(), &options, json, &progress)?;
        }
        KmeansCommand::Grid { config, runs } => {
            let grid = GridConfig::load(&config)?;
            for run in grid.select(&runs, &config)? {
                if !json {
                    say!("== {} ==", run.name);
                }
                let options = run.deletion_bench_options(&grid.defaults);
                run_bench(&run.data, &run.options(), &options, json, &progress)?;
            }
        }
    }
    Ok(())
}

/// Runs one P6 benchmark and prints its report.
fn run_bench(
    data: &str,
    method: &KMeansOptions,
    options: &DeletionBenchOptions,
    json: bool,
    progress: &Progress,
) -> Result<()> {
    let bar = progress.bar(options.deletions as u64, "deleting");
    let report = bench_kmeans(data, method, options, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["data"] = serde_json::Value::String(data.to_string());
        say!("{value}");
    } else {
        say!("{}", report.describe(data));
    }
    Ok(())
}
