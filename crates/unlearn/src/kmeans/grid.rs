//! The steps behind `unlearn kmeans train|delete|eval|bench|grid` (Ginart, Guan, Valiant, Zou
//! 2019): method options, feature loading (including the synthetic `gaussian:` source of
//! protocol P6), id lists, sequential deletions, evaluation and the P6 grid config. The
//! front ends parse and print; everything they compute is here.

use super::{
    DeletionBenchOptions, DeletionBenchReport, DeletionEfficientKMeans, DeletionMethod,
    DeletionOutcome, DivideConquerParams, KMeansArtifact, LloydKMeans, LloydParams, Points,
    QuantizedParams, deletion_benchmark, gaussian_blobs, kmeans_loss,
};
use crate::data::{DataSource, load};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A deletion-efficient k-means method and its hyper-parameters as the command line and a P6
/// config name them (`q`: Q-k-means, `dc`: DC-k-means).
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansOptions {
    /// `q` or `dc`.
    pub method: String,
    /// Number of clusters.
    pub k: usize,
    /// Q-k-means: quantisation step ε.
    pub epsilon: f64,
    /// Q-k-means: balance γ.
    pub balance: f64,
    /// Q-k-means: rounds T.
    pub iterations: usize,
    /// DC-k-means: tree widths below the root (empty: one level of round(sqrt(n/k)) leaves).
    pub widths: Vec<usize>,
    /// DC-k-means: most Lloyd iterations per node.
    pub max_iterations: usize,
    /// DC-k-means: k-means++ restarts per node.
    pub restarts: usize,
    /// DC-k-means: centroids kept by every node below the root (default 2k).
    pub node_clusters: Option<usize>,
}

impl KMeansOptions {
    /// The method for `points` training points; an unknown method name is refused.
    pub fn method(&self, points: usize) -> Result<DeletionMethod> {
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
            other => {
                return Err(Error::invalid(format!(
                    "unknown k-means method '{other}' (expected q or dc)"
                )));
            }
        })
    }
}

/// Features loaded for k-means: training rows with ids, and test rows if the source has any.
#[derive(Debug, Clone)]
pub struct Features {
    /// Training rows, row-major.
    pub train: Vec<f32>,
    /// Ids of the training rows.
    pub ids: Vec<u32>,
    /// Test rows, row-major (empty when the source has none).
    pub test: Vec<f32>,
    /// Features per row.
    pub dims: usize,
}

impl Features {
    /// Loads `spec`: the synthetic `gaussian:n=N,d=D,k=K[,std=S][,seed=S]` source of P6, or any
    /// [`DataSource`] (its pixels as features).
    pub fn load(spec: &str) -> Result<Features> {
        let Some(options) = spec.strip_prefix("gaussian:") else {
            let bundle = load(&DataSource::parse(spec)?)?;
            return Ok(Features {
                dims: bundle.train.dims(),
                train: bundle.train.features,
                ids: bundle.train.ids,
                test: bundle.test.features,
            });
        };
        let (mut n, mut dims, mut k, mut std, mut data_seed) = (None, None, None, 0.1, 0u64);
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let Some((key, value)) = option.split_once('=') else {
                return Err(Error::invalid(format!(
                    "gaussian data: option '{option}' is not key=value"
                )));
            };
            let bad = |e: &dyn std::fmt::Display| {
                Error::invalid(format!(
                    "gaussian data: {key}='{value}' is not a valid number: {e}"
                ))
            };
            match key {
                "n" => n = Some(value.parse::<usize>().map_err(|e| bad(&e))?),
                "d" => dims = Some(value.parse::<usize>().map_err(|e| bad(&e))?),
                "k" => k = Some(value.parse::<usize>().map_err(|e| bad(&e))?),
                "std" => std = value.parse::<f64>().map_err(|e| bad(&e))?,
                "seed" => data_seed = value.parse::<u64>().map_err(|e| bad(&e))?,
                _ => {
                    return Err(Error::invalid(format!(
                        "gaussian data: unknown option '{key}' (expected n, d, k, std, seed)"
                    )));
                }
            }
        }
        let (Some(n), Some(dims), Some(k)) = (n, dims, k) else {
            return Err(Error::invalid(
                "gaussian data needs n, d and k, e.g. gaussian:n=100000,d=25,k=5",
            ));
        };
        let (train, _) = gaussian_blobs(n, dims, k, std, data_seed)?;
        let count = u32::try_from(n)
            .map_err(|e| Error::invalid(format!("gaussian data: n is too large: {e}")))?;
        Ok(Features {
            train,
            ids: (0..count).collect(),
            test: Vec::new(),
            dims,
        })
    }

    /// The training rows as [`Points`] with their ids.
    pub fn points(&self) -> Result<Points<'_>> {
        Points::new(&self.train, self.dims, Some(&self.ids))
    }
}

/// Reads a file of ids separated by commas, spaces or newlines.
pub fn read_ids(path: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(format!("cannot read ids file {}: {e}", path.display())))?;
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|token| !token.is_empty())
        .map(|token| {
            token.parse::<u32>().map_err(|e| {
                Error::invalid(format!("{}: '{token}' is not an id: {e}", path.display()))
            })
        })
        .collect()
}

/// Refuses an empty list of ids to delete, or one that repeats an id.
pub fn check_deletion_request(ids: &[u32]) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::invalid("no ids to delete (use --ids or --ids-file)"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(duplicate) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(Error::invalid(format!(
            "id {duplicate} is listed more than once"
        )));
    }
    Ok(())
}

impl KMeansArtifact {
    /// The data source to use: `data` if given, else the one the model records (read from
    /// `path`); refused when neither is known.
    pub fn data_source_or(&self, data: Option<String>, path: &Path) -> Result<String> {
        data.or_else(|| self.data_source.clone()).ok_or_else(|| {
            Error::invalid(format!(
                "{}: the model records no data source; pass --data",
                path.display()
            ))
        })
    }

    /// Deletes `ids` one after the other (refusing an empty or repeated list), calling
    /// `on_deleted` after each; returns what each deletion did.
    pub fn delete_ids(
        &mut self,
        points: &Points<'_>,
        ids: &[u32],
        on_deleted: &mut dyn FnMut(),
    ) -> Result<Vec<DeletionOutcome>> {
        check_deletion_request(ids)?;
        let mut outcomes = Vec::with_capacity(ids.len());
        for &id in ids {
            outcomes.push(self.model.delete(points, id)?);
            on_deleted();
        }
        Ok(outcomes)
    }

    /// The loss of the model on its live training points and on the test rows (if any), and
    /// with `compare` the loss of k-means++/Lloyd retrained on the live points (seeded).
    pub fn evaluate(
        &self,
        features: &Features,
        compare: bool,
        seed: u64,
    ) -> Result<KMeansEvaluation> {
        let model = &self.model;
        let points = features.points()?;
        let loss = model.loss(&points)?;
        let test_loss = if features.test.is_empty() {
            None
        } else {
            let test = Points::new(&features.test, features.dims, None)?;
            Some(kmeans_loss(&test, model.centroids(), &Default::default())?)
        };
        let baseline = if compare {
            let params = LloydParams::new(model.k());
            Some(LloydKMeans::train_excluding(&points, &params, seed, model.deleted())?.loss)
        } else {
            None
        };
        Ok(KMeansEvaluation {
            deleted: model.deleted().len(),
            k: model.k(),
            kmeans_plus_plus_loss: baseline,
            live_points: points.len() - model.deleted().len(),
            loss,
            loss_ratio: baseline.map(|b| loss / b),
            method: model.method_name().to_string(),
            retrains: model.retrains(),
            test_loss,
        })
    }
}

/// What `unlearn kmeans eval` reports (fields in the order they print as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansEvaluation {
    /// Points deleted so far.
    pub deleted: usize,
    /// Number of clusters.
    pub k: usize,
    /// Loss of k-means++/Lloyd retrained on the live points (when compared).
    pub kmeans_plus_plus_loss: Option<f64>,
    /// Training points not deleted.
    pub live_points: usize,
    /// Loss on the live training points.
    pub loss: f64,
    /// `loss / kmeans_plus_plus_loss`.
    pub loss_ratio: Option<f64>,
    /// `Q` or `DC`.
    pub method: String,
    /// Forced retrains so far.
    pub retrains: usize,
    /// Loss on the test rows, if the source has any.
    pub test_loss: Option<f64>,
}

impl KMeansEvaluation {
    /// The lines `unlearn kmeans eval` prints.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{}-k-means, k = {}: {} live points, {} deleted, {} retrain(s)\nloss (train, live points)  {:.6}   (lower is better)",
            self.method, self.k, self.live_points, self.deleted, self.retrains, self.loss
        );
        if let Some(test_loss) = self.test_loss {
            text.push_str(&format!(
                "\nloss (test)                {test_loss:.6}   (lower is better)"
            ));
        }
        if let (Some(baseline), Some(ratio)) = (self.kmeans_plus_plus_loss, self.loss_ratio) {
            text.push_str(&format!(
                "\nk-means++/Lloyd loss       {baseline:.6}\nloss ratio                 {ratio:.4}     (<= 1.05 is the goal)"
            ));
        }
        text
    }
}

impl DeletionBenchReport {
    /// The report as `unlearn kmeans bench` prints it (`data` names the source).
    pub fn describe(&self, data: &str) -> String {
        let method = match &self.method {
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
        [
            format!(
                "P6 on {data}: {} points x {} dims; {method}",
                self.points, self.dims
            ),
            format!(
                "deletions                  {} of {} ({} retrain(s))",
                self.deletions_done, self.deletions_requested, self.retrains
            ),
            format!(
                "time per deletion          {:.6} s (amortised; training once took {:.3} s)",
                self.seconds_per_deletion, self.train_seconds
            ),
            format!(
                "k-means++ retrain          {:.4} s (mean of {} runs, {:.1} Lloyd iterations)",
                self.baseline_seconds_per_retrain, self.baseline_runs, self.baseline_iterations
            ),
            format!(
                "speed-up                   {:.1}x   (higher is better; goal >= 100x)",
                self.speedup
            ),
            format!(
                "loss / k-means++ loss      {:.6} / {:.6} = {:.4}   (mean of the runs; goal <= 1.05)",
                self.loss, self.baseline_loss, self.loss_ratio
            ),
            format!(
                "loss / best k-means++ loss {:.6} / {:.6} = {:.4}",
                self.loss, self.baseline_best_loss, self.loss_ratio_to_best
            ),
        ]
        .join("\n")
    }
}

/// Trains on `features` with `options` (seeded); returns the model and its training loss.
pub fn train_kmeans(
    features: &Features,
    options: &KMeansOptions,
    seed: u64,
) -> Result<(DeletionEfficientKMeans, f64)> {
    let points = features.points()?;
    let method = options.method(points.len())?;
    let model = DeletionEfficientKMeans::train(&points, &method, seed)?;
    let loss = model.loss(&points)?;
    Ok((model, loss))
}

/// Runs protocol P6 on the data `spec` names: sequential random deletions timed against
/// retraining k-means++ (`on_progress` gets the deletions done).
pub fn bench_kmeans(
    spec: &str,
    options: &KMeansOptions,
    p6: &DeletionBenchOptions,
    on_progress: &mut dyn FnMut(usize),
) -> Result<DeletionBenchReport> {
    let features = Features::load(spec)?;
    let points = features.points()?;
    let method = options.method(points.len())?;
    deletion_benchmark(&points, &method, p6, on_progress)
}

/// A P6 config (configs/p6_kmeans.toml): defaults and one entry per benchmark run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    /// Settings shared by every run unless the run overrides them.
    pub defaults: GridDefaults,
    /// The runs, in order.
    pub run: Vec<GridRun>,
}

/// Settings shared by every run of a [`GridConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridDefaults {
    /// Sequential deletions.
    pub deletions: usize,
    /// k-means++ retrains timed for the baseline.
    pub baseline_runs: usize,
    /// Seed of every run.
    pub seed: u64,
}

/// One `unlearn kmeans bench` invocation, as data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridRun {
    /// Name of the run (`--run NAME`).
    pub name: String,
    /// Data source.
    pub data: String,
    /// Number of clusters.
    pub k: usize,
    /// `q` or `dc`.
    pub method: String,
    /// Q-k-means ε (default 0.05).
    pub epsilon: Option<f64>,
    /// Q-k-means γ (default 0.2).
    pub balance: Option<f64>,
    /// Q-k-means rounds (default 10).
    pub iterations: Option<usize>,
    /// DC-k-means widths (default one level).
    pub widths: Option<Vec<usize>>,
    /// DC-k-means restarts per node (default 1).
    pub restarts: Option<usize>,
    /// DC-k-means centroids per node below the root.
    pub node_clusters: Option<usize>,
    /// DC-k-means Lloyd iterations per node (default 100).
    pub max_iterations: Option<usize>,
    /// Deletions (default: the defaults').
    pub deletions: Option<usize>,
    /// Baseline runs (default: the defaults').
    pub baseline_runs: Option<usize>,
    /// Stop deleting after this many seconds.
    pub time_budget_seconds: Option<f64>,
    /// The equivalent command line (documentation only).
    pub command: Option<String>,
}

impl GridRun {
    /// The run's method options (unset values take the command line's defaults).
    pub fn options(&self) -> KMeansOptions {
        KMeansOptions {
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

    /// The run's P6 options under `defaults`.
    pub fn deletion_bench_options(&self, defaults: &GridDefaults) -> DeletionBenchOptions {
        DeletionBenchOptions {
            deletions: self.deletions.unwrap_or(defaults.deletions),
            baseline_runs: self.baseline_runs.unwrap_or(defaults.baseline_runs),
            baseline_max_iterations: 100,
            seed: defaults.seed,
            time_budget_seconds: self.time_budget_seconds,
        }
    }
}

impl GridConfig {
    /// Reads and checks a P6 config before anything runs: at least one run, every method
    /// valid.
    pub fn load(path: &Path) -> Result<GridConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(format!("reading {}: {e}", path.display())))?;
        GridConfig::parse(&text, path)
    }

    /// Parses the text of a P6 config (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<GridConfig> {
        let config: GridConfig = toml::from_str(text).map_err(|e| {
            Error::invalid(format!(
                "{}: {}",
                path.display(),
                e.message().replace('\n', " ")
            ))
        })?;
        if config.run.is_empty() {
            return Err(Error::invalid(format!(
                "{}: no [[run]] entry",
                path.display()
            )));
        }
        for run in &config.run {
            run.options().method(run.k.max(1)).map_err(|e| {
                Error::invalid(format!("{}: run {}: {e}", path.display(), run.name))
            })?;
        }
        Ok(config)
    }

    /// The runs named in `names` (all when empty), in config order; an unknown name is
    /// refused.
    pub fn select(&self, names: &[String], path: &Path) -> Result<Vec<&GridRun>> {
        if let Some(unknown) = names
            .iter()
            .find(|name| !self.run.iter().any(|r| &r.name == *name))
        {
            return Err(Error::invalid(format!(
                "{}: no run named '{unknown}'",
                path.display()
            )));
        }
        Ok(self
            .run
            .iter()
            .filter(|r| names.is_empty() || names.contains(&r.name))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str = r#"
[defaults]
deletions = 5
baseline_runs = 1
seed = 3

[[run]]
name = "a"
data = "gaussian:n=50,d=2,k=2"
k = 2
method = "q"

[[run]]
name = "b"
data = "gaussian:n=50,d=2,k=2"
k = 2
method = "dc"
deletions = 2
"#;

    #[test]
    fn a_grid_selects_its_runs_and_fills_defaults() {
        let path = Path::new("p6.toml");
        let grid = GridConfig::parse(GRID, path).unwrap();
        assert_eq!(grid.select(&[], path).unwrap().len(), 2);
        let only = grid.select(&["b".to_string()], path).unwrap();
        assert_eq!(only.len(), 1);
        let options = only[0].deletion_bench_options(&grid.defaults);
        assert_eq!(
            (options.deletions, options.baseline_runs, options.seed),
            (2, 1, 3)
        );
        assert_eq!(only[0].options().epsilon, 0.05);
        let error = grid.select(&["c".to_string()], path).unwrap_err();
        assert_eq!(error.to_string(), "p6.toml: no run named 'c'");
    }

    #[test]
    fn a_bad_grid_is_refused_in_one_line() {
        let path = Path::new("p6.toml");
        let bad_method = GRID.replace("method = \"dc\"", "method = \"x\"");
        let error = GridConfig::parse(&bad_method, path)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "p6.toml: run b: unknown k-means method 'x' (expected q or dc)"
        );
        let empty = "run = []\n[defaults]\ndeletions = 1\nbaseline_runs = 1\nseed = 0\n";
        let error = GridConfig::parse(empty, path).unwrap_err().to_string();
        assert_eq!(error, "p6.toml: no [[run]] entry");
        assert!(!error.contains('\n'));
    }

    #[test]
    fn gaussian_features_and_bad_specs() {
        let features = Features::load("gaussian:n=30,d=3,k=2,seed=4").unwrap();
        assert_eq!(
            (features.train.len(), features.ids.len(), features.dims),
            (90, 30, 3)
        );
        assert!(features.test.is_empty());
        for (spec, message) in [
            ("gaussian:n=30,d=3", "gaussian data needs n, d and k"),
            (
                "gaussian:n=x,d=3,k=2",
                "gaussian data: n='x' is not a valid number",
            ),
            ("gaussian:n=3,q=1", "unknown option 'q'"),
            ("gaussian:n", "option 'n' is not key=value"),
        ] {
            let error = Features::load(spec).unwrap_err().to_string();
            assert!(error.contains(message), "{spec}: {error}");
            assert!(!error.contains('\n'));
        }
    }

    #[test]
    fn deletions_evaluate_against_the_live_points() {
        let features = Features::load("gaussian:n=60,d=2,k=3,seed=1").unwrap();
        let options = GridRun {
            k: 3,
            ..GridConfig::parse(GRID, Path::new("g")).unwrap().run[0].clone()
        }
        .options();
        let (model, loss) = train_kmeans(&features, &options, 0).unwrap();
        assert!(loss.is_finite() && loss >= 0.0);
        let mut artifact = KMeansArtifact::new(model, None);
        let points = features.points().unwrap();
        let mut count = 0;
        let outcomes = artifact
            .delete_ids(&points, &[4, 9], &mut || count += 1)
            .unwrap();
        assert_eq!((outcomes.len(), count), (2, 2));
        let duplicate = artifact.delete_ids(&points, &[1, 1], &mut || {});
        assert_eq!(
            duplicate.unwrap_err().to_string(),
            "id 1 is listed more than once"
        );
        assert!(artifact.delete_ids(&points, &[], &mut || {}).is_err());
        let evaluation = artifact.evaluate(&features, true, 0).unwrap();
        assert_eq!((evaluation.live_points, evaluation.deleted), (58, 2));
        let ratio = evaluation.loss_ratio.unwrap();
        assert!(
            (ratio - evaluation.loss / evaluation.kmeans_plus_plus_loss.unwrap()).abs() < 1e-12
        );
        let missing = artifact.data_source_or(None, Path::new("m.json"));
        assert_eq!(
            missing.unwrap_err().to_string(),
            "m.json: the model records no data source; pass --data"
        );
    }
}
