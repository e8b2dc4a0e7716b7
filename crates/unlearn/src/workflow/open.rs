//! What a model path names ([`ModelKind`], told from the file itself) and opening it: a
//! network artifact, a certified convex model, a SISA ensemble directory or a k-means model;
//! evaluating a saved network or ensemble on its split.

#[allow(unused_imports)]
use super::*;

/// What a model path names, told from the file itself (cheap: a certified or k-means model is
/// recognised by its JSON `format`, a SISA ensemble by its manifest or plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A network artifact: `.safetensors` weights with a JSON sidecar (the default: a missing
    /// or damaged file is reported when it is loaded).
    Network,
    /// A certified convex model (JSON, with its secret state and deletion ledger beside it);
    /// with `training.features` a certified head on a network's features.
    Certified,
    /// A SISA ensemble directory (`sisa.json` or its plan).
    Sisa,
    /// A deletion-efficient k-means model (JSON).
    KMeans,
}

impl ModelKind {
    /// The kind of model at `path`.
    pub fn of(path: &Path) -> ModelKind {
        if disk::is_sisa_dir(path) {
            ModelKind::Sisa
        } else if CertifiedModelFile::is_certified_model(path) {
            ModelKind::Certified
        } else if json_format(path).as_deref() == Some(KMEANS_FORMAT) {
            ModelKind::KMeans
        } else {
            ModelKind::Network
        }
    }
}

/// The `format` field of the JSON file at `path`, if it is one (only a file whose first byte
/// is `{` is read).
pub(super) fn json_format(path: &Path) -> Option<String> {
    let mut first = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut first))
        .ok()
        .filter(|()| first[0] == b'{')?;
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    value.get("format")?.as_str().map(String::from)
}

/// A model opened by [`open_model`].
pub enum OpenedModel {
    /// A network artifact.
    Network(Box<Artifact>),
    /// A certified convex model (or certified head).
    Certified(Box<CertifiedModelFile>),
    /// A SISA ensemble and the split saved with it.
    Sisa(Box<SisaEnsemble>, Split),
    /// A deletion-efficient k-means model.
    KMeans(Box<KMeansArtifact>),
}

/// Opens the model at `path` as what it is ([`ModelKind::of`]), checking its hashes; a
/// missing path is refused in one line.
pub fn open_model(path: &Path, device: &Device) -> Result<OpenedModel> {
    if !path.exists() {
        return Err(Error::NotFound(format!(
            "cannot read {}: no such file",
            path.display()
        )));
    }
    Ok(match ModelKind::of(path) {
        ModelKind::Network => OpenedModel::Network(Box::new(Artifact::load(path, device)?)),
        ModelKind::Certified => OpenedModel::Certified(Box::new(CertifiedModelFile::load(path)?)),
        ModelKind::Sisa => {
            let (_, ensemble, split) = disk::load(path, device)?;
            OpenedModel::Sisa(Box::new(ensemble), split)
        }
        ModelKind::KMeans => OpenedModel::KMeans(Box::new(KMeansArtifact::load(path)?)),
    })
}

/// Loads the network at `model`, its data (`data`, or the source its sidecar records) and a
/// split: a new request `forget` drawn with the run's seed, else `split`, else the split
/// saved next to the model.
pub fn open_network(
    context: &RunContext,
    model: &Path,
    data: Option<String>,
    split: Option<PathBuf>,
    forget: Option<String>,
) -> Result<(Experiment, Artifact)> {
    let artifact = Artifact::load(model, &context.device)?;
    let description = data.unwrap_or_else(|| artifact.metadata.dataset.clone());
    let bundle = load_data(&description)?;
    let split = match forget {
        Some(selector) => Split::new(&bundle, &ForgetSelector::parse(&selector)?, context.seed)?,
        None => {
            let path = split.unwrap_or_else(|| split_path_for(model));
            Split::load(&path)
                .map_err(|e| Error::invalid(format!("reading split {}: {e}", path.display())))?
        }
    };
    let spec = artifact.metadata.spec.clone();
    let recipe = artifact.metadata.recipe.clone();
    let setup = setup(context, &description, bundle, split, spec, recipe)?;
    Ok((setup, artifact))
}

/// Evaluates the network at `model` on its split (see [`open_network`]) and, with
/// `reference`, against that retrained network (Avg. Gap, KL, JS, parameter distance);
/// errors name the files.
pub fn evaluate_saved(
    context: &RunContext,
    model: &Path,
    data: Option<String>,
    split: Option<PathBuf>,
    reference: Option<&Path>,
) -> Result<Evaluation> {
    if ModelKind::of(model) == ModelKind::Sisa {
        return evaluate_saved_ensemble(context, model, data, split, reference);
    }
    let (setup, artifact) = open_network(context, model, data, split, None)?;
    let loaded = match reference {
        None => None,
        Some(path) => Some(Artifact::load(path, &setup.device)?),
    };
    setup
        .evaluate_model(&artifact, loaded.as_ref())
        .map_err(|e| {
            let what = match reference {
                Some(reference) => format!(
                    "evaluating {} against {}",
                    model.display(),
                    reference.display()
                ),
                None => format!("evaluating {}", model.display()),
            };
            Error::invalid(format!("{what}: {e}"))
        })
}

/// [`evaluate_saved`] for a SISA ensemble directory: its saved split unless `split`.
pub(super) fn evaluate_saved_ensemble(
    context: &RunContext,
    model: &Path,
    data: Option<String>,
    split: Option<PathBuf>,
    reference: Option<&Path>,
) -> Result<Evaluation> {
    let (_, ensemble, saved_split) = disk::load(model, &context.device)?;
    let bundle = load_data(data.as_deref().unwrap_or(&ensemble.plan.dataset))?;
    let split = match split {
        Some(path) => Split::load(&path)
            .map_err(|e| Error::invalid(format!("reading split {}: {e}", path.display())))?,
        None => saved_split,
    };
    let loaded = match reference {
        None => None,
        Some(path) => Some((path, Artifact::load(path, &context.device)?)),
    };
    let reference = loaded.as_ref().map(|(path, artifact)| (*path, artifact));
    ensemble
        .evaluate_against(&bundle, &split, reference, context.seed)
        .map_err(|e| Error::invalid(format!("evaluating {}: {e}", model.display())))
}
