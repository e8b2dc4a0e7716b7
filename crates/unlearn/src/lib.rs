//! `unlearn`: remove training data from machine-learning models after the fact, and measure
//! how well it is gone.
//!
//! The pipeline runs in one direction: load a [`data::Dataset`], draw a [`data::Split`]
//! (train / test / forget), [`train`] a [`model::Network`], apply an unlearning method from
//! [`methods`], and [`eval`]uate it against the model retrained without the forgotten data.

pub mod audit;
pub mod bench;
pub mod convex;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod io;
pub mod kmeans;
pub mod machine;
pub mod methods;
pub mod model;
pub mod parallel;
pub mod pipeline;
pub mod privacy;
pub mod progress;
pub mod sisa;
pub mod store;
pub mod train;
pub mod workflow;

pub use error::{Error, Result};
