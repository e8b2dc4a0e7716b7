//! `unlearn`: the command-line front end. It parses arguments, calls the library and prints;
//! every computation lives in the `unlearn` crate.

/// `println!` that ends the program quietly when standard output is closed (`| head`),
/// instead of panicking.
macro_rules! say {
    ($($argument:tt)*) => {{
        use std::io::Write;
        if let Err(error) = writeln!(std::io::stdout(), $($argument)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }};
}

mod audit_cmd;
mod certified_cmd;
mod kmeans_cmd;
mod recovery_cmd;
mod sisa_cmd;
mod store_cmd;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use unlearn::bench::{self, BenchConfig, BenchOptions};
use unlearn::device::{Device, DeviceChoice};
use unlearn::model::Artifact;
use unlearn::pipeline::Experiment;
use unlearn::progress::Progress;
use unlearn::workflow::{self, ModelKind, RecipeOptions, RecordingOptions, RunContext};

#[derive(Parser)]
#[command(
    name = "unlearn",
    version,
    about = "Remove training data from machine-learning models and measure that it is gone"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

#[derive(Args, Clone)]
pub(crate) struct Global {
    /// Seed of every random choice (initialisation, data order, forget-set sampling, attacks).
    #[arg(long, global = true, default_value_t = 0)]
    seed: u64,
    /// Compute device: cpu, cuda or wgpu (the last two need the cargo features of that name).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// Print machine-readable JSON on standard output instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    /// Threads used inside one computation (matrix products in blocks, a CNN's batch in one
    /// shard per thread; tensor kernels, the convex models' linear algebra, k-means); default:
    /// every core. The same number gives the same bits; an MLP gives the same bits with any
    /// number, while another number groups a CNN batch's gradient sum differently (float
    /// rounding; the sidecar records `threads`); the convex models' removals give the same bits
    /// with any number. Independent jobs (`--jobs`) share these threads, at most one job per
    /// thread at a time (with one thread, each job gets a thread of its own).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and save it (safetensors + JSON sidecar) with its split; or, with
    /// --certified, a certified convex model (JSON + secret state + deletion ledger).
    Train(Box<TrainArgs>),
    /// Unlearn a forget set from a trained model with one method, and save the result; on a
    /// certified model, remove with its certified method and append to its deletion ledger.
    Forget(ForgetArgs),
    /// Verify a certified model against its data, secret state and deletion ledger,
    /// recomputing every certificate (or the certificate of a network unlearned by a certified
    /// neural method).
    Verify(certified_cmd::VerifyArgs),
    /// Evaluate a model on a split: UA, RA, TA, MIA, and distances to a retrained reference.
    Eval(EvalArgs),
    /// Import a model trained in PyTorch (its state_dict as .safetensors or .pt, the modules of
    /// docs/pytorch.md) as a trained model with its split, ready for `forget` and `eval`.
    Import(ImportArgs),
    /// Write a model's weights as safetensors with PyTorch's key names and layout, for
    /// `load_state_dict(strict=True)` on the modules of docs/pytorch.md.
    Export(ExportArgs),
    /// Train on the embedded Fashion-MNIST subset, forget 1% with every method, print the table.
    Demo(DemoArgs),
    /// Run an experiment grid from a config file; writes results/NAME/ (JSON lines, Markdown,
    /// HTML with plots).
    Bench(BenchArgs),
    /// Audit unlearning over many models: U-LiRA, the NeurIPS 2023 challenge score, and the
    /// empirical ε of the certificates (`audit --config FILE`, `audit merge DIR...`).
    Audit(audit_cmd::AuditArgs),
    /// Check newton-guo's removal budget on real data: for each seed, train and calibrate as
    /// `train --certified newton-guo --removals N` would, then remove single random rows until
    /// the first forced retrain, and report how many it delivered.
    Budget(certified_cmd::BudgetArgs),
    /// Regenerate the Markdown and HTML reports of a grid from its JSON lines (or a P3
    /// report and plot from its p3.json).
    Report(ReportArgs),
    /// List the registered unlearning methods.
    Methods,
    /// Deletion-efficient k-means (Ginart et al. 2019): train, delete, eval, bench.
    #[command(subcommand)]
    Kmeans(kmeans_cmd::KmeansCommand),
    /// Model stores: import old certified files, export the ledger, manage tokens and policy.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Run the deletion-request service over a model store (HTTP; see the README).
    Serve(store_cmd::ServeArgs),
    /// SISA shard ensembles (Bourtoule et al. 2021): assemble shards trained as separate jobs.
    #[command(subcommand)]
    Sisa(sisa_cmd::SisaCommand),
}

#[derive(Args)]
struct RecipeArgs {
    /// Optimiser: sgd or adam.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05, allow_hyphen_values = true)]
    lr: f64,
    /// Learning-rate schedule: constant, cosine or step (÷10 at 50% and 75% of the steps).
    #[arg(long, default_value = "cosine")]
    schedule: String,
    /// Epochs [default: 5, with at least --min-steps steps].
    #[arg(long)]
    epochs: Option<usize>,
    /// Floor on the training steps: more epochs when the data is too small for 5 epochs to
    /// make this many [default: 1000 without --epochs, 0 with it].
    #[arg(long)]
    min_steps: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, allow_hyphen_values = true)]
    momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 5e-4, allow_hyphen_values = true)]
    weight_decay: f64,
    /// Data augmentation of the training batches: crop+flip (random crop with 4-pixel zero
    /// padding, horizontal flip), crop:P, flip or none; recorded in the model's recipe.
    #[arg(long, default_value = "none")]
    augment: String,
    /// Seed of the augmentation's crops and flips [default: the run's --seed].
    #[arg(long)]
    augment_seed: Option<u64>,
}

impl RecipeArgs {
    fn options(&self) -> RecipeOptions {
        RecipeOptions {
            optimizer: self.optimizer.clone(),
            learning_rate: self.lr,
            schedule: self.schedule.clone(),
            epochs: self.epochs,
            min_steps: self.min_steps,
            batch_size: self.batch_size,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            augment: self.augment.clone(),
            augment_seed: self.augment_seed,
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Data: embedded, idx:DIR, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR or
    /// csv:FILE[?label=COL&header=auto|yes|no&scale=standard|minmax|none&test=F&split-seed=S]
    /// (plain or gzip), each optionally with ?limit=CLASS:N[,CLASS:N...] (keep N training
    /// samples of a class).
    #[arg(long, default_value = "embedded")]
    data: String,
    /// Model: softmax, mlp, mlp:W1,W2,..., cnn, cnn:C1,C2,H, resnet20 or resnet18 (default mlp).
    #[arg(long)]
    model: Option<String>,
    /// Forget set to record in the saved split: random:N, random:P%, class:C, subclass:C, ids:FILE.
    #[arg(long, default_value = "random:1%")]
    forget: String,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Train a certified L2 logistic regression instead: newton-guo, newton-sekhari, d2d or
    /// langevin (Guo et al. 2020; Sekhari et al. 2021; Neel et al. 2021; Chien et al. 2024).
    /// OUT is then a JSON model, with OUT.state (secret) and OUT.ledger.jsonl beside it.
    #[arg(long)]
    certified: Option<String>,
    #[command(flatten)]
    certified_args: certified_cmd::CertifiedArgs,
    /// Where to write the weights (.safetensors); the sidecar and split go next to it.
    #[arg(long, required_unless_present = "store")]
    out: Option<PathBuf>,
    /// With --certified: train into a new model store at this directory (deletion ledger,
    /// versions and secret states in one transactional store) instead of --out files.
    #[arg(long, requires = "certified", conflicts_with = "out")]
    store: Option<PathBuf>,
    /// With --certified newton-guo (or any certified method): train the certified head on the
    /// penultimate activations of this network (.safetensors with its sidecar and split),
    /// which must have been trained only on the public slice (--public-fraction,
    /// --public-seed); the head trains on the other (private) rows, and only the head is
    /// certified (Guo et al. 2020, §4).
    #[arg(long, requires = "certified", requires = "public_fraction")]
    features: Option<PathBuf>,
    /// Declare a seeded public slice of this fraction of the training rows: a network is then
    /// trained on those rows only (its split records them), and `--certified --features`
    /// trains its head on the others.
    #[arg(long, conflicts_with = "sisa", allow_hyphen_values = true)]
    public_fraction: Option<f64>,
    /// Seed of the public slice's draw (with --public-fraction).
    #[arg(long, requires = "public_fraction", default_value_t = 0)]
    public_seed: u64,
    /// Record for amnesiac unlearning while training: amnesiac-batch or amnesiac-sample
    /// (repeatable); each writes MODEL.amnesiac-KIND.records next to the model.
    #[arg(long = "record")]
    record: Vec<String>,
    /// Samples to record: forget (the split's forget set), all, or ids:FILE.
    #[arg(long, default_value = "forget")]
    sensitive: String,
    /// How records store values: f32, f16 or topk:FRACTION (e.g. topk:0.01).
    #[arg(long, default_value = "f32")]
    record_format: String,
    /// Grouping of the records: none (one record per batch for amnesiac-batch, per sample for
    /// amnesiac-sample) or class (one running sum per class for either; such records can only
    /// remove whole classes).
    #[arg(long, default_value = "none")]
    record_groups: String,
    /// Train a SISA shard ensemble instead (Bourtoule et al. 2021):
    /// shards=S,slices=R[,aggregate=vote|mean-softmax][,stratified=true]. OUT is then a
    /// directory (manifest sisa.json, plan, split and one subdirectory per shard).
    #[arg(long, conflicts_with_all = ["certified", "store", "record"])]
    sisa: Option<String>,
    /// With --sisa: train only this shard (a number, or `auto` to read SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX); then `unlearn sisa assemble OUT` once every shard is trained.
    #[arg(long, requires = "sisa", conflicts_with = "jobs")]
    shard_index: Option<String>,
    /// With --sisa: shards trained at once on this machine (the result does not depend on it).
    #[arg(long, requires = "sisa")]
    jobs: Option<usize>,
}

#[derive(Args)]
struct ForgetArgs {
    /// The trained model (.safetensors with its .json sidecar), or a certified model's JSON.
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    model: Option<PathBuf>,
    /// A model store (see `unlearn store`): the request is committed to its queue, then every
    /// pending request is applied in commit order, each as one transaction.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Split file (JSON); defaults to the one saved next to the model.
    #[arg(long, conflicts_with = "forget")]
    split: Option<PathBuf>,
    /// A new deletion request instead of the saved split: random:N, class:C, ids:FILE, ...
    #[arg(long)]
    forget: Option<String>,
    /// Unlearning method (see `unlearn methods`); a certified model uses its own method.
    #[arg(long)]
    method: Option<String>,
    /// Method hyper-parameter, key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Wrap the method in the feasible-update mask (Dine, Furon, Faure 2025): hard or soft.
    #[arg(long)]
    feasible: Option<String>,
    /// The mask's α: each kept coordinate is feasible with probability ≥ 1 − α (with --feasible).
    #[arg(long, requires = "feasible", allow_hyphen_values = true)]
    alpha: Option<f64>,
    /// Data source; defaults to the one recorded in the model's sidecar.
    #[arg(long)]
    data: Option<String>,
    /// Where to write the unlearned model (.safetensors).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    out: Option<PathBuf>,
    /// With --store: an idempotency key; a request already committed with it is not
    /// submitted again.
    #[arg(long, requires = "store")]
    key: Option<String>,
    /// Record files made while training the model (repeatable); default: the
    /// MODEL.amnesiac-batch.records and MODEL.amnesiac-sample.records files next to it.
    #[arg(long = "records")]
    records: Vec<PathBuf>,
    /// On a SISA ensemble: retrain only this shard (a number, or `auto` for
    /// SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX); then `unlearn sisa assemble OUT`.
    #[arg(long, conflicts_with = "jobs")]
    shard_index: Option<String>,
    /// On a SISA ensemble: shards retrained at once on this machine (same result for any value).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Args)]
struct EvalArgs {
    /// The model to evaluate.
    #[arg(long)]
    model: PathBuf,
    /// Split file (JSON); defaults to the one saved next to the model.
    #[arg(long)]
    split: Option<PathBuf>,
    /// The retrained reference model, for Avg. Gap and distances.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Data source; defaults to the one recorded in the model's sidecar.
    #[arg(long)]
    data: Option<String>,
}

#[derive(Args)]
struct ImportArgs {
    /// The PyTorch state_dict: .safetensors (safetensors.torch.save_file) or .pt / .pth
    /// (torch.save).
    #[arg(long)]
    pytorch: PathBuf,
    /// The architecture it was trained with: softmax, mlp, mlp:W1,W2,..., cnn, cnn:C1,C2,H, resnet20 or resnet18.
    #[arg(long, default_value = "mlp")]
    model: String,
    /// The data it was trained on (as for `train`); its training ids are the split's.
    #[arg(long, default_value = "embedded")]
    data: String,
    /// Forget set to record in the saved split: random:N, random:P%, class:C, subclass:C, ids:FILE.
    #[arg(long, default_value = "random:1%")]
    forget: String,
    /// The recipe later unlearning methods follow (the PyTorch training's, ideally).
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Where to write the model (.safetensors; the sidecar and split go next to it).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ExportArgs {
    /// The model (.safetensors with its .json sidecar).
    #[arg(long)]
    model: PathBuf,
    /// Where to write its weights for PyTorch (.safetensors).
    #[arg(long)]
    pytorch: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Data (the default needs no set-up: it is compiled into the binary).
    #[arg(long, default_value = "embedded")]
    data: String,
    /// Model.
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Forget set.
    #[arg(long, default_value = "random:1%")]
    forget: String,
    /// Methods to compare (comma-separated registry names, each optionally with
    /// +feasible-hard or +feasible-soft[:ALPHA]); default: every registered method.
    #[arg(long)]
    methods: Option<String>,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Directory for demo.json and demo.md.
    #[arg(long, default_value = "results/demo")]
    out_dir: PathBuf,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: BenchRunArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Build one grid's results from the parts of a sharded run (`--shard i/N`): checks that
    /// every part is present, complete and from the same config.
    Merge(BenchMergeArgs),
}

#[derive(Args)]
struct BenchMergeArgs {
    /// Part directories (results/NAME/parts/i-of-N) or grid directories holding parts/.
    #[arg(required = true)]
    directories: Vec<PathBuf>,
    /// Where to write the merged results (default: the grid directory above parts/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct BenchRunArgs {
    /// The grid's config (see configs/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Cells (forget set × seed) run at once (default: the number of cores); the records do
    /// not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Run part i of N of the cells (0-based) into results/NAME/parts/i-of-N/; `auto/N` reads
    /// SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX. Merge with `unlearn bench merge`.
    #[arg(long)]
    shard: Option<String>,
    /// Skip runs already recorded in results/NAME/runs.jsonl.
    #[arg(long, conflicts_with = "fresh")]
    resume: bool,
    /// Ignore cached original and reference models (and overwrite them).
    #[arg(long)]
    fresh: bool,
    /// Retrain cached retrained references, so that their time is measured in this run: a
    /// speed-up is only computed against a retraining timed in the same run.
    #[arg(long)]
    retime: bool,
    /// Directory for results/NAME/.
    #[arg(long, default_value = "results")]
    results_dir: PathBuf,
    /// Directory of cached models.
    #[arg(long, default_value = "results/cache")]
    cache_dir: PathBuf,
}

#[derive(Args)]
struct ReportArgs {
    /// A grid's or an audit's results directory, e.g. results/p1_random, results/p3_certified
    /// or results/p8_audit.
    directory: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("error: {}", unlearn::error::one_line(error.as_ref()));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let global = cli.global;
    if let Some(threads) = global.threads {
        unlearn::parallel::set_threads(threads)?;
    }
    // Commands that compute run on a thread of the pool, so that with `--threads 1` the
    // kernels run inline instead of being handed to the pool's one thread piece by piece
    // (`unlearn::parallel::on_pool`). The service stays off it: its handlers use the pool.
    match cli.command {
        Command::Train(args) => unlearn::parallel::on_pool(|| train(&global, *args)),
        Command::Forget(args) => unlearn::parallel::on_pool(|| forget(&global, args)),
        Command::Verify(args) => {
            unlearn::parallel::on_pool(|| certified_cmd::verify(&global, &args))
        }
        Command::Eval(args) => unlearn::parallel::on_pool(|| eval(&global, args)),
        Command::Import(args) => import(&global, args),
        Command::Export(args) => export(&global, args),
        Command::Demo(args) => unlearn::parallel::on_pool(|| demo(&global, args)),
        Command::Kmeans(command) => {
            unlearn::parallel::on_pool(|| kmeans_cmd::run(&global, command))
        }
        Command::Bench(args) => unlearn::parallel::on_pool(|| bench(&global, args)),
        Command::Audit(args) => unlearn::parallel::on_pool(|| audit_cmd::audit(&global, args)),
        Command::Report(args) => {
            let rebuilt = workflow::rebuild_reports(&args.directory)?;
            say!("{}", rebuilt.describe(&args.directory));
            Ok(())
        }
        Command::Store(command) => store_cmd::run(&global, command),
        Command::Serve(args) => store_cmd::serve(&global, &args),
        Command::Budget(args) => {
            unlearn::parallel::on_pool(|| certified_cmd::budget(&global, &args))
        }
        Command::Sisa(command) => unlearn::parallel::on_pool(|| sisa_cmd::run(&global, command)),
        Command::Methods => {
            let candidates = unlearn::pipeline::candidates();
            let entries: Vec<serde_json::Value> = candidates
                .iter()
                .map(|(name, description)| serde_json::json!({"name": name, "description": description}))
                .collect();
            let lines: Vec<String> = candidates
                .iter()
                .map(|(name, description)| format!("{name:<18} {description}"))
                .collect();
            emit(&global, &entries, &lines.join("\n"))
        }
    }
}

pub(crate) fn progress(global: &Global) -> Progress {
    Progress {
        quiet: global.quiet || global.json,
    }
}

/// The autodiff device `--device` names.
pub(crate) fn device(global: &Global) -> Result<Device> {
    Ok(DeviceChoice::parse(&global.device)?.device()?.autodiff())
}

/// Device, seed and progress display of this run.
pub(crate) fn context(global: &Global) -> Result<RunContext> {
    Ok(RunContext {
        device: device(global)?,
        seed: global.seed,
        progress: progress(global),
    })
}

/// The setup `train` starts from (a public slice only with `public`).
pub(crate) fn train_setup(
    global: &Global,
    args: &TrainArgs,
    public: Option<(f64, u64)>,
) -> Result<Experiment> {
    let model = args.model.as_deref().unwrap_or("mlp");
    let recipe = args.recipe.options();
    let context = context(global)?;
    Ok(workflow::new_setup(
        &context,
        &args.data,
        &args.forget,
        model,
        &recipe,
        public,
    )?)
}

fn train(global: &Global, args: TrainArgs) -> Result<()> {
    if let Some(sisa) = &args.sisa {
        return sisa_cmd::train(global, &args, sisa);
    }
    if let Some(method) = &args.certified {
        return certified_cmd::train(global, &args, method);
    }
    let out = args.out.clone().context("--out is required")?;
    let recording = RecordingOptions {
        kinds: args.record.clone(),
        sensitive: args.sensitive.clone(),
        format: args.record_format.clone(),
        groups: args.record_groups.clone(),
    };
    recording.checked()?;
    let public = args.public_fraction.map(|f| (f, args.public_seed));
    let setup = train_setup(global, &args, public)?;
    let report = workflow::train_and_save(&setup, &recording, &out)?;
    emit(global, &report, &report.text)
}

/// Prints `value` as JSON with --json, else `text`.
pub(crate) fn emit(global: &Global, value: &impl serde::Serialize, text: &str) -> Result<()> {
    if global.json {
        say!("{}", serde_json::to_string(value)?);
    } else {
        say!("{text}");
    }
    Ok(())
}

fn forget(global: &Global, args: ForgetArgs) -> Result<()> {
    if let Some(store) = &args.store {
        return store_cmd::forget(global, &args, store);
    }
    let (Some(model), Some(out)) = (args.model.clone(), args.out.clone()) else {
        bail!("--model and --out are required (or --store)");
    };
    let kind = ModelKind::of(&model);
    if kind == ModelKind::Sisa {
        return sisa_cmd::forget(global, &args, &model, &out);
    }
    if args.shard_index.is_some() || args.jobs.is_some() {
        bail!(
            "--shard-index and --jobs apply to SISA ensembles only, and {} is not one (no sisa.json)",
            model.display()
        );
    }
    if kind == ModelKind::Certified {
        return certified_cmd::forget(global, &args, &model, &out);
    }
    let Some(method_name) = &args.method else {
        bail!("--method is required (see `unlearn methods`)");
    };
    let method = workflow::build_method(
        method_name,
        &args.params,
        args.feasible.as_deref(),
        args.alpha,
    )?;
    let records = if args.records.is_empty() {
        workflow::records_next_to(&model)
    } else {
        args.records.clone()
    };
    let (setup, original) = workflow::open_network(
        &context(global)?,
        &model,
        args.data,
        args.split,
        args.forget,
    )?;
    let report = workflow::forget_and_save(&setup, &original, method.as_ref(), &records, &out)?;
    for warning in report.notes.iter().filter(|n| n.starts_with("warning: ")) {
        eprintln!("{warning}");
    }
    emit(global, &report, &report.text)
}

fn export(global: &Global, args: ExportArgs) -> Result<()> {
    let device = DeviceChoice::parse(&global.device)?.device()?;
    let artifact = Artifact::load(&args.model, &device)?;
    unlearn::model::pytorch::save_pytorch(&artifact.network, &args.pytorch)?;
    let spec = &artifact.metadata.spec;
    let value = serde_json::json!({"model": args.model, "pytorch": args.pytorch, "spec": spec});
    let text = format!(
        "wrote {} ({}, PyTorch key names and layout; see docs/pytorch.md)",
        args.pytorch.display(),
        spec.describe()
    );
    emit(global, &value, &text)
}

fn import(global: &Global, args: ImportArgs) -> Result<()> {
    let pytorch = &args.pytorch;
    let recipe = args.recipe.options();
    let context = context(global)?;
    let setup = workflow::new_setup(
        &context,
        &args.data,
        &args.forget,
        &args.model,
        &recipe,
        None,
    )?;
    let report = workflow::import_and_save(&setup, pytorch, &args.out)?;
    emit(global, &report, &report.text)
}

fn eval(global: &Global, args: EvalArgs) -> Result<()> {
    if ModelKind::of(&args.model) == ModelKind::Certified {
        bail!(
            "{} is a certified model: its test accuracy is printed by `train --certified` and `forget`, and `unlearn verify` checks it",
            args.model.display()
        );
    }
    let (model, reference) = (&args.model, args.reference.as_deref());
    let evaluation =
        workflow::evaluate_saved(&context(global)?, model, args.data, args.split, reference)?;
    emit(
        global,
        &evaluation,
        &workflow::evaluation_text(model, &evaluation),
    )
}

fn demo(global: &Global, args: DemoArgs) -> Result<()> {
    let methods = workflow::build_methods(args.methods.as_deref())?;
    let recipe = args.recipe.options();
    let context = context(global)?;
    let setup = workflow::new_setup(
        &context,
        &args.data,
        &args.forget,
        &args.model,
        &recipe,
        None,
    )?;
    let (json, markdown) = workflow::run_demo(&setup, &methods, &args.out_dir)?;
    if global.json {
        say!("{json}");
    } else {
        say!("{markdown}");
        say!(
            "wrote {} and {}",
            args.out_dir.join("demo.json").display(),
            args.out_dir.join("demo.md").display()
        );
    }
    Ok(())
}

fn bench(global: &Global, args: BenchArgs) -> Result<()> {
    if let Some(BenchCommand::Merge(merge)) = args.command {
        let (out, runs) = bench::merge(&merge.directories, merge.out.as_deref())?;
        say!(
            "merged {runs} runs into {0}/runs.jsonl, report.md, report.html, summary.json",
            out.display()
        );
        return Ok(());
    }
    let args = args.run;
    let Some(config_path) = args.config else {
        bail!("bench needs --config FILE (or `bench merge DIR...`)");
    };
    if certified_cmd::is_epsilon_curve_config(&config_path) {
        return certified_cmd::bench_epsilon_curve(global, &config_path, &args.results_dir);
    }
    if recovery_cmd::is_recovery_curve_config(&config_path) {
        return recovery_cmd::bench_recovery_curve(
            global,
            &config_path,
            args.results_dir,
            args.cache_dir,
            args.fresh,
            args.shard.is_some() || args.resume,
        );
    }
    let config = BenchConfig::load(&config_path)?;
    let shard = workflow::shard_or_whole(args.shard.as_deref())?;
    let options = BenchOptions {
        jobs: workflow::jobs_or_cores(args.jobs)?,
        shard,
        results_dir: args.results_dir,
        cache_dir: args.cache_dir,
        resume: args.resume,
        fresh: args.fresh,
        retime: args.retime,
        device: device(global)?,
        progress: progress(global),
    };
    let outcome = bench::run_grid(&config, &options)?;
    emit(global, &outcome, &workflow::grid_text(&outcome, shard))
}
