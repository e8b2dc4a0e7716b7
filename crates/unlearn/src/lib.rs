//! `unlearn`: remove training data from machine-learning models after the fact, and measure
//! how well it is gone.
//!
//! The pipeline runs in one direction: load a [`data::Dataset`], draw a [`data::Split`]
//! (train / test / forget), build an experiment ([`experiment::Experiment::new`]), train the
//! original [`model::Network`], run a [`pipeline::Candidate`] — an unlearning method from
//! [`methods`], or a scheme such as SISA — and [`eval`]uate it against the model retrained
//! without the forgotten data. Certified removal for convex models is in [`convex`], the
//! transactional model store in [`store`], grids in [`bench`] and the audit in [`audit`].
//!
//! # Quick start
//!
//! Train a small network on the embedded Fashion-MNIST subset, forget 1% of its training set
//! with fine-tuning, and compare with retraining:
//!
//! ```
//! use unlearn::prelude::*;
//!
//! # fn main() -> unlearn::Result<()> {
//! let data = load(&DataSource::parse("embedded")?)?;
//! let split = Split::new(&data, &ForgetSelector::parse("random:1%")?, 0)?;
//! let spec = ModelSpec::parse("mlp:16", data.train.shape, data.train.num_classes)?;
//! let recipe = Recipe { epochs: 1, ..Recipe::default() };
//! let device = DeviceChoice::parse("cpu")?.device()?.autodiff();
//! let experiment = Experiment::new("embedded", data, split, spec, &recipe, device, 0)?;
//!
//! let original = experiment.train_original(&mut [])?;
//! let finetune = Candidate::Method(Box::new(Finetune::default()));
//! let comparison = compare_with(&experiment, &original, &[finetune])?;
//! for run in &comparison.runs {
//!     let gap = run.evaluation.as_ref().and_then(|e| e.reference.as_ref()).map(|r| r.average_gap);
//!     println!("{:<10} {:>6.2}s  average gap {:?}", run.method, run.seconds, gap);
//! }
//! assert_eq!(comparison.runs[2].method, "finetune");
//! # Ok(())
//! # }
//! ```

pub mod audit;
pub mod bench;
pub mod convex;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod io;
pub mod kmeans;
pub mod machine;
pub mod methods;
pub mod model;
pub mod parallel;
pub mod params;
pub mod pipeline;
pub mod prelude;
pub mod privacy;
pub mod progress;
pub mod recipe;
pub mod sisa;
pub mod store;
pub mod train;
pub mod workflow;

pub use error::{Error, Result};
