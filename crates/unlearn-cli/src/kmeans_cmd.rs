//! `unlearn kmeans train|delete|eval|bench`: deletion-efficient k-means (Ginart, Guan,
//! Valiant, Zou 2019, "Making AI Forget You"). The command only parses and prints; every
//! computation lives in `unlearn::kmeans`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use unlearn::data::{DataSource, load};
use unlearn::kmeans::{
    DeletionEfficientKMeans, DeletionMethod, DivideConquerParams, KMeansArtifact, LloydKMeans,
    LloydParams, P6Options, P6Report, Points, QuantizedParams, gaussian_blobs, kmeans_loss,
    p6_benchmark,
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

/// A P6 config: defaults and one entry per benchmark run.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GridConfig {
    defaults: GridDefaults,
    run: Vec<GridRun>,
}

/// Settings shared by every run unless the run overrides them.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GridDefaults {
    deletions: usize,
    baseline_runs: usize,
    seed: u64,
}

/// One `unlearn kmeans bench` invocation, as data.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GridRun {
    name: String,
    data: String,
    k: usize,
    method: String,
    epsilon: Option<f64>,
    balance: Option<f64>,
    iterations: Option<usize>,
    widths: Option<Vec<usize>>,
    restarts: Option<usize>,
    node_clusters: Option<usize>,
    max_iterations: Option<usize>,
    deletions: Option<usize>,
    baseline_runs: Option<usize>,
    time_budget_seconds: Option<f64>,
    /// The equivalent command line (documentation only).
    #[allow(dead_code)]
    command: Option<String>,
}

impl GridRun {
    fn method_args(&self) -> MethodArgs {
        MethodArgs {
            method: self.method.clone(),
            k: self.k,
            epsilon: self.epsilon.unwrap_or(0.05),
            balance: self.balance.unwrap_or(0.2),
            iterations: self.iterations.unwrap_or(10),
            widths: self.widths.clone().unwrap_or_default(),
            max_iterations: self.max_iterations.unwrap_or(100),
            restarts: self.restarts.unwrap_or(1),
            node_clusters: self.node_clusters,
        }
    }
}

/// Reads and checks a P6 config before anything runs.
fn read_grid(path: &Path) -> Result<GridConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: GridConfig = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().replace('\n', " ")))?;
    if config.run.is_empty() {
        bail!("{}: no [[run]] entry", path.display());
    }
    for run in &config.run {
        run.method_args()
            .method(run.k.max(1))
            .with_context(|| format!("{}: run {}", path.display(), run.name))?;
    }
    Ok(config)
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
    fn method(&self, points: usize) -> Result<DeletionMethod> {
        Ok(match self.method.as_str() {
            "q" => DeletionMethod::Quantized(QuantizedParams {
                k: self.k,
                epsilon: self.epsilon,
                balance: self.balance,
                iterations: self.iterations,
            }),
            "dc" => {
                let widths = if self.widths.is_empty() {
                    DivideConquerParams::default_widths(points, self.k)
                } else {
                    self.widths.clone()
                };
                let defaults = DivideConquerParams::new(self.k, widths);
                DeletionMethod::DivideConquer(DivideConquerParams {
                    max_iterations: self.max_iterations,
                    restarts: self.restarts,
                    node_clusters: self.node_clusters.or(defaults.node_clusters),
                    ..defaults
                })
            }
            other => bail!("unknown k-means method '{other}' (expected q or dc)"),
        })
    }
}

/// Features loaded for k-means: training rows with ids, and test rows if the source has any.
struct Features {
    train: Vec<f32>,
    ids: Vec<u32>,
    test: Vec<f32>,
    dims: usize,
}

/// Runs one `unlearn kmeans` subcommand.
pub fn run(command: KmeansCommand, seed: u64, json: bool, quiet: bool) -> Result<()> {
    let progress = Progress {
        quiet: quiet || json,
    };
    match command {
        KmeansCommand::Train { data, method, out } => {
            let features = load_features(&data)?;
            let points = Points::new(&features.train, features.dims, Some(&features.ids))?;
            let method = method.method(points.len())?;
            let started = Instant::now();
            let model = DeletionEfficientKMeans::train(&points, &method, seed)?;
            let seconds = started.elapsed().as_secs_f64();
            let loss = model.loss(&points)?;
            KMeansArtifact::new(model.clone(), Some(data)).save(&out)?;
            let summary = serde_json::json!({
                "method": model.method_name(),
                "k": model.k(),
                "points": points.len(),
                "dims": points.dims(),
                "seed": seed,
                "loss": loss,
                "train_seconds": seconds,
                "out": out.display().to_string(),
            });
            if json {
                say!("{summary}");
            } else {
                say!(
                    "trained {}-k-means (k = {}) on {} points x {} dims in {seconds:.3} s; loss {loss:.6}; saved {}",
                    model.method_name(),
                    model.k(),
                    points.len(),
                    points.dims(),
                    out.display()
                );
            }
        }
        KmeansCommand::Delete {
            model,
            data,
            ids,
            ids_file,
            out,
        } => {
            let mut requested = ids;
            if let Some(file) = &ids_file {
                requested.extend(read_ids(file)?);
            }
            if requested.is_empty() {
                bail!("no ids to delete (use --ids or --ids-file)");
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(duplicate) = requested.iter().find(|id| !seen.insert(**id)) {
                bail!("id {duplicate} is listed more than once");
            }
            let mut artifact = KMeansArtifact::load(&model)?;
            let source = data_source(data, &artifact, &model)?;
            let features = load_features(&source)?;
            let points = Points::new(&features.train, features.dims, Some(&features.ids))?;
            let bar = progress.bar(requested.len() as u64, "deleting");
            let started = Instant::now();
            let mut outcomes = Vec::with_capacity(requested.len());
            for &id in &requested {
                outcomes.push(artifact.model.delete(&points, id)?);
                bar.inc(1);
            }
            bar.finish_and_clear();
            let seconds = started.elapsed().as_secs_f64();
            let out = out.unwrap_or(model);
            artifact.save(&out)?;
            let retrains = outcomes.iter().filter(|o| o.retrained).count();
            if json {
                let summary = serde_json::json!({
                    "deleted": requested,
                    "retrains": retrains,
                    "seconds": seconds,
                    "total_deleted": artifact.model.deleted().len(),
                    "outcomes": outcomes,
                    "out": out.display().to_string(),
                });
                say!("{summary}");
            } else {
                say!(
                    "deleted {} point(s) in {seconds:.4} s ({retrains} retrain(s)); {} deleted in total; saved {}",
                    requested.len(),
                    artifact.model.deleted().len(),
                    out.display()
                );
            }
        }
        KmeansCommand::Eval {
            model,
            data,
            compare,
        } => {
            let artifact = KMeansArtifact::load(&model)?;
            let source = data_source(data, &artifact, &model)?;
            let features = load_features(&source)?;
            let points = Points::new(&features.train, features.dims, Some(&features.ids))?;
            let loss = artifact.model.loss(&points)?;
            let test_loss = if features.test.is_empty() {
                None
            } else {
                let test = Points::new(&features.test, features.dims, None)?;
                Some(kmeans_loss(
                    &test,
                    artifact.model.centroids(),
                    &Default::default(),
                )?)
            };
            let baseline_loss = if compare {
                let params = LloydParams::new(artifact.model.k());
                Some(
                    LloydKMeans::train_excluding(&points, &params, seed, artifact.model.deleted())?
                        .loss,
                )
            } else {
                None
            };
            let summary = serde_json::json!({
                "method": artifact.model.method_name(),
                "k": artifact.model.k(),
                "live_points": points.len() - artifact.model.deleted().len(),
                "deleted": artifact.model.deleted().len(),
                "retrains": artifact.model.retrains(),
                "loss": loss,
                "test_loss": test_loss,
                "kmeans_plus_plus_loss": baseline_loss,
                "loss_ratio": baseline_loss.map(|b| loss / b),
            });
            if json {
                say!("{summary}");
            } else {
                say!(
                    "{}-k-means, k = {}: {} live points, {} deleted, {} retrain(s)",
                    artifact.model.method_name(),
                    artifact.model.k(),
                    points.len() - artifact.model.deleted().len(),
                    artifact.model.deleted().len(),
                    artifact.model.retrains()
                );
                say!("loss (train, live points)  {loss:.6}   (lower is better)");
                if let Some(test_loss) = test_loss {
                    say!("loss (test)                {test_loss:.6}   (lower is better)");
                }
                if let Some(baseline) = baseline_loss {
                    say!("k-means++/Lloyd loss       {baseline:.6}");
                    say!(
                        "loss ratio                 {:.4}     (<= 1.05 is the goal)",
                        loss / baseline
                    );
                }
            }
        }
        KmeansCommand::Bench {
            data,
            method,
            deletions,
            baseline_runs,
            time_budget,
        } => {
            let options = P6Options {
                deletions,
                baseline_runs,
                baseline_max_iterations: 100,
                seed,
                time_budget_seconds: time_budget,
            };
            run_bench(&data, &method, &options, json, &progress)?;
        }
        KmeansCommand::Grid { config, runs } => {
            let grid = read_grid(&config)?;
            if let Some(unknown) = runs
                .iter()
                .find(|name| !grid.run.iter().any(|r| &r.name == *name))
            {
                bail!("{}: no run named '{unknown}'", config.display());
            }
            for run in grid
                .run
                .iter()
                .filter(|r| runs.is_empty() || runs.contains(&r.name))
            {
                if !json {
                    say!("== {} ==", run.name);
                }
                let options = P6Options {
                    deletions: run.deletions.unwrap_or(grid.defaults.deletions),
                    baseline_runs: run.baseline_runs.unwrap_or(grid.defaults.baseline_runs),
                    baseline_max_iterations: 100,
                    seed: grid.defaults.seed,
                    time_budget_seconds: run.time_budget_seconds,
                };
                run_bench(&run.data, &run.method_args(), &options, json, &progress)?;
            }
        }
    }
    Ok(())
}

/// Runs one P6 benchmark and prints its report.
fn run_bench(
    data: &str,
    method: &MethodArgs,
    options: &P6Options,
    json: bool,
    progress: &Progress,
) -> Result<()> {
    let features = load_features(data)?;
    let points = Points::new(&features.train, features.dims, Some(&features.ids))?;
    let method = method.method(points.len())?;
    let bar = progress.bar(options.deletions as u64, "deleting");
    let report = p6_benchmark(&points, &method, options, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["data"] = serde_json::Value::String(data.to_string());
        say!("{value}");
    } else {
        print_report(data, &report);
    }
    Ok(())
}

fn print_report(data: &str, report: &P6Report) {
    let method = match &report.method {
        DeletionMethod::Quantized(p) => format!(
            "Q-k-means (k = {}, epsilon = {}, balance = {}, rounds = {})",
            p.k, p.epsilon, p.balance, p.iterations
        ),
        DeletionMethod::DivideConquer(p) => format!(
            "DC-k-means (k = {}, widths = {:?}, restarts = {}, {} centroids below the root)",
            p.k,
            p.widths,
            p.restarts,
            p.clusters_below_root()
        ),
    };
    say!(
        "P6 on {data}: {} points x {} dims; {method}",
        report.points,
        report.dims
    );
    say!(
        "deletions                  {} of {} ({} retrain(s))",
        report.deletions_done,
        report.deletions_requested,
        report.retrains
    );
    say!(
        "time per deletion          {:.6} s (amortised; training once took {:.3} s)",
        report.seconds_per_deletion,
        report.train_seconds
    );
    say!(
        "k-means++ retrain          {:.4} s (mean of {} runs, {:.1} Lloyd iterations)",
        report.baseline_seconds_per_retrain,
        report.baseline_runs,
        report.baseline_iterations
    );
    say!(
        "speed-up                   {:.1}x   (higher is better; goal >= 100x)",
        report.speedup
    );
    say!(
        "loss / k-means++ loss      {:.6} / {:.6} = {:.4}   (mean of the runs; goal <= 1.05)",
        report.loss,
        report.baseline_loss,
        report.loss_ratio
    );
    say!(
        "loss / best k-means++ loss {:.6} / {:.6} = {:.4}",
        report.loss,
        report.baseline_best_loss,
        report.loss_ratio_to_best
    );
}

fn data_source(data: Option<String>, artifact: &KMeansArtifact, model: &Path) -> Result<String> {
    match data.or_else(|| artifact.data_source.clone()) {
        Some(source) => Ok(source),
        None => bail!(
            "{}: the model records no data source; pass --data",
            model.display()
        ),
    }
}

fn read_ids(path: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read ids file {}", path.display()))?;
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|token| !token.is_empty())
        .map(|token| {
            token
                .parse::<u32>()
                .with_context(|| format!("{}: '{token}' is not an id", path.display()))
        })
        .collect()
}

/// Loads `spec`: the synthetic `gaussian:...` source of P6, or any `unlearn::data` source.
fn load_features(spec: &str) -> Result<Features> {
    if let Some(options) = spec.strip_prefix("gaussian:") {
        let (mut n, mut dims, mut k, mut std, mut data_seed) = (None, None, None, 0.1, 0u64);
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let Some((key, value)) = option.split_once('=') else {
                bail!("gaussian data: option '{option}' is not key=value");
            };
            let bad = || format!("gaussian data: {key}='{value}' is not a valid number");
            match key {
                "n" => n = Some(value.parse::<usize>().with_context(bad)?),
                "d" => dims = Some(value.parse::<usize>().with_context(bad)?),
                "k" => k = Some(value.parse::<usize>().with_context(bad)?),
                "std" => std = value.parse::<f64>().with_context(bad)?,
                "seed" => data_seed = value.parse::<u64>().with_context(bad)?,
                _ => bail!("gaussian data: unknown option '{key}' (expected n, d, k, std, seed)"),
            }
        }
        let (Some(n), Some(dims), Some(k)) = (n, dims, k) else {
            bail!("gaussian data needs n, d and k, e.g. gaussian:n=100000,d=25,k=5");
        };
        let (train, _) = gaussian_blobs(n, dims, k, std, data_seed)?;
        let count = u32::try_from(n).context("gaussian data: n is too large")?;
        return Ok(Features {
            train,
            ids: (0..count).collect(),
            test: Vec::new(),
            dims,
        });
    }
    let source = DataSource::parse(spec)?;
    let bundle = load(&source)?;
    Ok(Features {
        dims: bundle.train.dims(),
        train: bundle.train.features,
        ids: bundle.train.ids,
        test: bundle.test.features,
    })
}
