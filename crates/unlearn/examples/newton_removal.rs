//! Times `newton-guo` single removals in process (docs/experiments.md P7: Newton removal time at
//! d = 785): Fashion-MNIST 7 vs 9 (12,000 rows, unit-norm rows with a bias feature), λ = 1e-3,
//! ε = 1, δ = 1/n, a σ large enough that no removal forces a retrain, then REMOVALS single
//! removals of seeded random rows, each timed; prints the median, the quartiles and the
//! exact retraining time for comparison. Not a test: a benchmark to run on an idle machine.
//!
//! ```sh
//! cargo run --release -p unlearn --example newton_removal -- [DATA] [REMOVALS] [THREADS]
//! ```
//! DATA defaults to `idx:/usr/share/datasets/fashion-mnist`, REMOVALS to 50, THREADS (the
//! linear-algebra threads of the removal) to all cores.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::time::Instant;
use unlearn::convex::{CertifiedUnlearner, ConvexTask, NewtonGuo, NewtonGuoConfig};
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
    let source = args
        .next()
        .unwrap_or_else(|| "idx:/usr/share/datasets/fashion-mnist".into());
    let removals: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    if let Some(threads) = args.next() {
        unlearn::parallel::set_threads(threads.parse()?)?;
    }
    let bundle = load(&DataSource::parse(&source)?)?;
    let data = ConvexTask::parse("7,9")?.rows(&bundle.train)?;
    let rows = data.len();
    let ids = data.ids().to_vec();
    let config = NewtonGuoConfig::new(1e-3, 1e3, 1.0, 1.0 / rows as f64, 0);
    let started = Instant::now();
    let mut guo = NewtonGuo::train(data, config)?;
    let training = started.elapsed().as_secs_f64();
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
        "newton-guo, {rows} rows, d = 785: {removals} single removals, median {:.2} ms (quartiles {:.2}–{:.2} ms), CPU time {:.1} ms per removal on {} thread(s); exact training {:.2} s; machine: {}",
        1e3 * quantile(&seconds, 0.5),
        1e3 * quantile(&seconds, 0.25),
        1e3 * quantile(&seconds, 0.75),
        1e3 * cpu_per_removal,
        rayon::current_num_threads(),
        training,
        unlearn::machine::Machine::current().describe()
    );
    Ok(())
}
