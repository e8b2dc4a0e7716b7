//! Where a CNN training step spends its time (issue 15: "profile first"): times every
//! operation of the project's small CNN (conv16-conv32 with padding 1, ReLU, 2×2 max pooling,
//! then 1568-128-10) alone, forward and backward, at the training batch size, and the
//! inference forward at the evaluation batch size. Random inputs; the figures are medians of
//! REPEATS runs after one warm-up. Not a test: a benchmark to run on an idle machine.
//!
//! ```sh
//! cargo run --release -p unlearn --example cnn_profile -- [THREADS] [REPEATS]
//! ```

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;

fn median_ms(repeats: usize, mut run: impl FnMut()) -> f64 {
    run();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Forces the lazy computation behind `tensor` (and reads back one value).
fn sync<const D: usize>(tensor: Tensor<D>) {
    let _ = tensor.sum().into_scalar::<f32>();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let Some(threads) = args.next() {
        unlearn::parallel::set_threads(threads.parse()?)?;
    }
    let repeats: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let plain = Device::flex();
    let train = Device::flex().autodiff();
    let batch = 128;

    let conv1 = Conv2dConfig::new([1, 16], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&train);
    let conv2 = Conv2dConfig::new([16, 32], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&train);
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let hidden: Linear = LinearConfig::new(1568, 128).init(&train);
    let output: Linear = LinearConfig::new(128, 10).init(&train);

    let images =
        |shape: [usize; 4], device: &Device| Tensor::random(shape, Distribution::Default, device);
    let mut rows: Vec<(String, f64)> = Vec::new();
    let mut time = |name: &str, ms: f64| {
        println!("{name:<44} {ms:>9.3} ms");
        rows.push((name.to_string(), ms));
    };

    // Forward alone (no autodiff graph), training batch.
    let (c1, c2, p, h, o) = (
        conv1.valid(),
        conv2.valid(),
        pool.clone(),
        hidden.valid(),
        output.valid(),
    );
    let x1 = images([batch, 1, 28, 28], &plain);
    let x2 = images([batch, 16, 14, 14], &plain);
    let a1 = images([batch, 16, 28, 28], &plain);
    let a2 = images([batch, 32, 14, 14], &plain);
    let f = Tensor::<2>::random([batch, 1568], Distribution::Default, &plain);
    let g = Tensor::<2>::random([batch, 128], Distribution::Default, &plain);
    time(
        "forward conv1 1→16 28×28",
        median_ms(repeats, || sync(c1.forward(x1.clone()))),
    );
    time(
        "forward conv2 16→32 14×14",
        median_ms(repeats, || sync(c2.forward(x2.clone()))),
    );
    time(
        "forward relu 16×28×28",
        median_ms(repeats, || sync(relu(a1.clone()))),
    );
    time(
        "forward maxpool 16×28×28",
        median_ms(repeats, || sync(p.forward(a1.clone()))),
    );
    time(
        "forward maxpool 32×14×14",
        median_ms(repeats, || sync(p.forward(a2.clone()))),
    );
    time(
        "forward linear 1568→128",
        median_ms(repeats, || sync(h.forward(f.clone()))),
    );
    time(
        "forward linear 128→10",
        median_ms(repeats, || sync(o.forward(g.clone()))),
    );

    // Forward + backward of each operation alone (autodiff), training batch.
    let backward = |name: &str, shape: [usize; 4], op: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        let input = images(shape, &train).require_grad();
        let ms = median_ms(repeats, || {
            let out = op(input.clone());
            let grads = out.sum().backward();
            let _ = input.grad(&grads);
        });
        (name.to_string(), ms)
    };
    for (name, ms) in [
        backward(
            "fwd+bwd conv1 (weights and input)",
            [batch, 1, 28, 28],
            &|x| conv1.forward(x),
        ),
        backward(
            "fwd+bwd conv2 (weights and input)",
            [batch, 16, 14, 14],
            &|x| conv2.forward(x),
        ),
        backward("fwd+bwd relu 16×28×28", [batch, 16, 28, 28], &|x| relu(x)),
        backward("fwd+bwd maxpool 16×28×28", [batch, 16, 28, 28], &|x| {
            pool.forward(x)
        }),
        backward("fwd+bwd maxpool 32×14×14", [batch, 32, 14, 14], &|x| {
            pool.forward(x)
        }),
    ] {
        time(&name, ms);
    }
    let flat = Tensor::<2>::random([batch, 1568], Distribution::Default, &train).require_grad();
    time(
        "fwd+bwd linear 1568→128 → 10",
        median_ms(repeats, || {
            let out = output.forward(relu(hidden.forward(flat.clone())));
            let grads = out.sum().backward();
            let _ = flat.grad(&grads);
        }),
    );

    // The whole network, one training step's forward and backward.
    let x = images([batch, 1, 28, 28], &train);
    let whole = median_ms(repeats, || {
        let a = pool.forward(relu(conv1.forward(x.clone())));
        let a = pool.forward(relu(conv2.forward(a)));
        let out = output.forward(relu(hidden.forward(a.flatten::<2>(1, 3))));
        let _ = out.sum().backward();
    });
    time("whole step fwd+bwd (batch 128)", whole);

    // Inference forward at several batch sizes, per 1,000 rows (evaluation's chunk size).
    for eval_batch in [32, 64, 128, 256, 1000] {
        let x = images([eval_batch, 1, 28, 28], &plain);
        let inference = median_ms(repeats.min(5), || {
            let a = p.forward(relu(c1.forward(x.clone())));
            let a = p.forward(relu(c2.forward(a)));
            sync(o.forward(relu(h.forward(a.flatten::<2>(1, 3)))));
        });
        time(
            &format!("inference forward per 1000 rows (batch {eval_batch})"),
            inference * 1000.0 / eval_batch as f64,
        );
    }
    Ok(())
}
