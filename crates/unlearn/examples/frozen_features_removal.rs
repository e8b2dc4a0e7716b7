//! Certified head on frozen features (issue 33; Guo, Goldstein, Hannun, van der Maaten 2020
//! §4), measured in process: opens the extractor NET (trained with `unlearn train
//! --public-fraction F --public-seed S`) as `train --certified newton-guo --features NET`
//! does, trains the 10-class one-vs-rest head on its penultimate activations of the private
//! rows at ε = 1, δ = 1/n, λ = 1e-3 with σ calibrated for 10 removals (the CLI's rule), and
//! prints its test accuracy. Then times REMOVALS single removals of seeded random private rows
//! (median, quartiles, CPU time) on a head trained the same way with σ = 1e3, so that no
//! removal forces a retrain (a Newton removal's work does not depend on σ). Not a test: a
//! benchmark to run on an idle machine.
//!
//! ```sh
//! cargo run --release -p unlearn --example frozen_features_removal -- DATA NET [FRACTION] [PUBLIC_SEED] [REMOVALS] [THREADS]
//! ```
//! FRACTION defaults to 0.2, PUBLIC_SEED to 0, REMOVALS to 50, THREADS (the linear-algebra
//! threads) to all cores.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::Path;
use std::time::Instant;
use unlearn::convex::{
    CertifiedTraining, CertifiedUnlearner, ConvexTask, FeatureExtractor, NewtonGuo,
    NewtonGuoConfig, PublicSlice, train_certified,
};
use unlearn::data::{DataSource, load};

/// CPU seconds of this process so far (0 where the system does not say).
fn cpu_seconds() -> f64 {
    unlearn::machine::process_cpu_seconds().unwrap_or(0.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(source), Some(network)) = (args.next(), args.next()) else {
        return Err(
            "usage: frozen_features_removal DATA NET [FRACTION] [PUBLIC_SEED] [REMOVALS] [THREADS]"
                .into(),
        );
    };
    let fraction: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0.2);
    let public_seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let removals: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    if let Some(threads) = args.next() {
        unlearn::parallel::set_threads(threads.parse()?)?;
    }
    let bundle = load(&DataSource::parse(&source)?)?;
    let started = Instant::now();
    let extractor = FeatureExtractor::declare(
        Path::new(&network),
        &bundle.train,
        PublicSlice::new(fraction, public_seed)?,
    )?;
    let task = ConvexTask::AllClasses;
    let private = extractor.features(&bundle.train, &extractor.private_ids(&bundle.train))?;
    let rows = task.rows(&private)?;
    let test = task.rows(&extractor.features(&bundle.test, &bundle.test.ids)?)?;
    let extraction = started.elapsed().as_secs_f64();
    let n = rows.len();
    let ids = rows.ids().to_vec();

    let training = CertifiedTraining {
        features: Some(extractor.record.clone()),
        ..CertifiedTraining::new("newton-guo", 1.0, 0)
    };
    let started = Instant::now();
    let trained = train_certified(rows.clone(), Some(&test), &training)?;
    let calibrated_seconds = started.elapsed().as_secs_f64();
    let accuracy = 100.0 * trained.unlearner.model().accuracy(&test)?;
    println!(
        "head on {} features of {} ({}): {} private rows, {} public; features in {:.1} s; calibrated σ {:.4e} (ε 1, δ 1/n, λ 1e-3, 10 removals) trained in {:.1} s: test accuracy {:.2}%",
        extractor.record.width,
        network,
        extractor.record.network_spec,
        n,
        extractor.record.public_ids.len(),
        extraction,
        trained.resolved.noise_sigma.unwrap_or(f64::NAN),
        calibrated_seconds,
        accuracy
    );

    let config = NewtonGuoConfig::new(1e-3, 1e3, 1.0, 1.0 / n as f64, 0);
    let mut guo = NewtonGuo::train(rows, config)?;
    let mut order = ids;
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let mut seconds = Vec::with_capacity(removals);
    let cpu_before = cpu_seconds();
    for id in order.into_iter().take(removals) {
        let started = Instant::now();
        let removal = guo.remove(&[id])?;
        seconds.push(started.elapsed().as_secs_f64());
        if removal.certificate.retrained {
            return Err("a removal forced a retrain: raise σ".into());
        }
    }
    let cpu_per_removal = (cpu_seconds() - cpu_before) / removals as f64;
    seconds.sort_by(f64::total_cmp);
    println!(
        "newton-guo head, {n} rows, d = {}, 10 classes: {removals} single removals, median {:.2} ms (quartiles {:.2}–{:.2} ms), CPU time {:.1} ms per removal on {} thread(s); machine: {}",
        extractor.record.width + 1,
        1e3 * quantile(&seconds, 0.5),
        1e3 * quantile(&seconds, 0.25),
        1e3 * quantile(&seconds, 0.75),
        1e3 * cpu_per_removal,
        rayon::current_num_threads(),
        unlearn::machine::Machine::current().describe()
    );
    Ok(())
}
