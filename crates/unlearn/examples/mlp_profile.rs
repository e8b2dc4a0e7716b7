//! Where an MLP training step spends its time (issue 15: "profile first"): the matrix products
//! of the MLP 784-256-10 alone at batch 128 (no autodiff), then its whole forward and backward
//! pass on an autodiff device, with and without the first layer — what is left without it
//! (ReLU, the 10-class layer, the loss and their gradients) runs on one thread whatever the
//! thread count. Random inputs; medians of REPEATS runs after one warm-up, in µs. Not a test:
//! a benchmark to run on an idle machine.
//!
//! ```sh
//! cargo run --release -p unlearn --example mlp_profile -- [THREADS] [REPEATS]
//! ```

use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::time::Instant;

fn median_us(repeats: usize, mut run: impl FnMut()) -> f64 {
    run();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let Some(threads) = args.next() {
        unlearn::parallel::set_threads(threads.parse()?)?;
    }
    let repeats: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(400);
    // Like `fit`, on one of the pool's threads.
    unlearn::parallel::on_pool(|| profile(repeats));
    Ok(())
}

fn profile(repeats: usize) {
    let plain = Device::flex();
    let train = Device::flex().autodiff();
    let batch = 128;
    let random = |shape: [usize; 2], device: &Device| {
        Tensor::<2>::random(shape, Distribution::Default, device)
    };
    let (inputs, first_weights) = (random([batch, 784], &plain), random([784, 256], &plain));
    let (hidden, last_weights) = (random([batch, 256], &plain), random([256, 10], &plain));
    let output_gradient = random([batch, 10], &plain);
    let mut rows: Vec<(&str, f64)> = vec![
        (
            "product 128x784 · 784x256",
            median_us(repeats, || {
                drop(inputs.clone().matmul(first_weights.clone()))
            }),
        ),
        (
            "product 128x256 · 256x10",
            median_us(repeats, || {
                drop(hidden.clone().matmul(last_weights.clone()))
            }),
        ),
        (
            "product (128x256)ᵀ · 128x10",
            median_us(repeats, || {
                drop(hidden.clone().transpose().matmul(output_gradient.clone()))
            }),
        ),
        (
            "product 128x10 · (256x10)ᵀ",
            median_us(repeats, || {
                drop(
                    output_gradient
                        .clone()
                        .matmul(last_weights.clone().transpose()),
                )
            }),
        ),
    ];

    let first: Linear = LinearConfig::new(784, 256).init(&train);
    let last: Linear = LinearConfig::new(256, 10).init(&train);
    let inputs = random([batch, 784], &train);
    let targets = Tensor::<1, Int>::from_data(
        TensorData::new((0..batch as i64).map(|i| i % 10).collect(), [batch]),
        &train,
    );
    let loss = |logits: Tensor<2>| {
        log_softmax(logits, 1)
            .gather(1, targets.clone().reshape([batch, 1]))
            .reshape([batch])
            .neg()
            .mean()
    };
    rows.push((
        "forward + backward",
        median_us(repeats, || {
            drop(loss(last.forward(relu(first.forward(inputs.clone())))).backward())
        }),
    ));
    let first_output = first.forward(inputs.clone()).detach();
    rows.push((
        "forward + backward without the first layer",
        median_us(repeats, || {
            let hidden = relu(first_output.clone().require_grad());
            drop(loss(last.forward(hidden)).backward())
        }),
    ));
    println!("threads {}", rayon::current_num_threads());
    for (name, micros) in rows {
        println!("{name:<44} {micros:>8.1} µs");
    }
}
