//! Where a ResNet-20 training step spends its time (issue 35): the 3×3 convolutions of each
//! stage (16, 32, 64 channels on 28×28, 14×14, 7×7 Fashion-MNIST-sized maps) forward and
//! forward + backward, BatchNorm in training mode forward + backward, the two stride-2
//! convolutions between stages forward + backward, and a whole training step
//! (forward, cross-entropy, backward; no optimiser) at batch 128. Random inputs; each figure
//! is the minimum and the median of REPEATS runs after one warm-up (the minimum is the steadier
//! one on a shared machine). Not a test: a benchmark to run on an idle machine.
//!
//! ```sh
//! cargo run --release -p unlearn --example resnet_profile -- [THREADS] [REPEATS]
//! ```

use burn::module::Module;
use burn::nn::conv::Conv2dConfig;
use burn::nn::{BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::time::Instant;
use unlearn::model::resnet::{ResNet, ResNetVariant};

/// (minimum, median) milliseconds of `repeats` runs after one warm-up.
fn time_ms(repeats: usize, mut run: impl FnMut()) -> (f64, f64) {
    run();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let Some(threads) = args.next() {
        unlearn::parallel::set_threads(threads.parse()?)?;
    }
    let repeats: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let plain = Device::flex();
    let train = Device::flex().autodiff();
    let batch = 128;
    let mut rows: Vec<(String, (f64, f64))> = Vec::new();
    for (channels, size) in [(16, 28), (32, 14), (64, 7)] {
        let shape = [batch, channels, size, size];
        let conv = |device: &Device| {
            Conv2dConfig::new([channels, channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        let (conv_plain, conv_train) = (conv(&plain), conv(&train));
        let x = Tensor::<4>::random(shape, Distribution::Default, &plain);
        rows.push((
            format!("conv {channels}→{channels} {size}×{size}, forward"),
            time_ms(repeats, || {
                let _ = conv_plain.forward(x.clone()).into_data();
            }),
        ));
        let x = Tensor::<4>::random(shape, Distribution::Default, &train).require_grad();
        rows.push((
            format!("conv {channels}→{channels} {size}×{size}, forward + backward"),
            time_ms(repeats, || {
                let _ = conv_train.forward(x.clone()).sum().backward();
            }),
        ));
        let frozen = conv(&train).no_grad();
        rows.push((
            format!("conv {channels}→{channels} {size}×{size}, forward + input gradient"),
            time_ms(repeats, || {
                let _ = frozen.forward(x.clone()).sum().backward();
            }),
        ));
        let norm = BatchNormConfig::new(channels).init(&train);
        rows.push((
            format!("BatchNorm {channels} {size}×{size}, training forward + backward"),
            time_ms(repeats, || {
                let _ = norm.forward(x.clone()).sum().backward();
            }),
        ));
    }
    // The stage transitions: 3×3 stride-2 convolutions (28×28 → 14×14, 14×14 → 7×7).
    for (channels, size) in [(16, 28), (32, 14)] {
        let conv = Conv2dConfig::new([channels, 2 * channels], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&train);
        let x = Tensor::<4>::random([batch, channels, size, size], Distribution::Default, &train)
            .require_grad();
        rows.push((
            format!(
                "conv {channels}→{} {size}×{size} stride 2, forward + backward",
                2 * channels
            ),
            time_ms(repeats, || {
                let _ = conv.forward(x.clone()).sum().backward();
            }),
        ));
    }
    let network = ResNet::new(ResNetVariant::Resnet20, 1, &train);
    let images = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Default, &train);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &train);
    rows.push((
        "ResNet-20 training step (forward, loss, backward)".into(),
        time_ms(repeats, || {
            let logits = network.forward(images.clone());
            let loss = burn::nn::loss::CrossEntropyLossConfig::new()
                .init(&train)
                .forward(logits, labels.clone());
            let _ = loss.backward();
        }),
    ));
    println!(
        "threads {}, batch {batch}, {repeats} repeats",
        rayon::current_num_threads()
    );
    println!("| operation | min (ms) | median (ms) |\n|---|---:|---:|");
    for (name, (min, median)) in rows {
        println!("| {name} | {min:.2} | {median:.2} |");
    }
    Ok(())
}
