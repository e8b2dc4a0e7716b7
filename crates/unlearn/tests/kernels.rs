//! The CPU kernels patched in `vendor/burn-flex` (issue 15) against direct implementations:
//! max pooling's values, and where its gradient goes (the first maximum of a window, the last
//! NaN), for the fast paths (2×2 and other non-overlapping windows) and the general one; the
//! convolution's forward pass and both its gradients against a direct f64 computation (the
//! general im2col path and the stride-1 padded-grid one); BatchNorm's fused kernels likewise.

use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor's values, row-major.
trait Values {
    fn values(self) -> Vec<f32>;
}

impl<const D: usize> Values for Tensor<D> {
    fn values(self) -> Vec<f32> {
        self.into_data().try_to_vec::<f32>().unwrap()
    }
}

/// Values with ties (a coarse grid, and zeros as after a ReLU) and, when asked, a few NaNs.
fn activations(len: usize, nans: bool, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let draw: f32 = rng.random();
            if nans && draw < 0.02 {
                f32::NAN
            } else if draw < 0.3 {
                0.0
            } else {
                (rng.random_range(0..8) as f32) * 0.25 - 0.5
            }
        })
        .collect()
}

/// Direct max pooling without padding: (values, index of the chosen input in its plane).
fn direct(
    input: &[f32],
    [batch, channels, height, width]: [usize; 4],
    kernel: usize,
    stride: usize,
) -> (Vec<f32>, Vec<usize>, [usize; 2]) {
    let out_h = (height - kernel) / stride + 1;
    let out_w = (width - kernel) / stride + 1;
    let mut values = Vec::new();
    let mut indices = Vec::new();
    for plane in 0..batch * channels {
        let x = &input[plane * height * width..(plane + 1) * height * width];
        for oh in 0..out_h {
            for ow in 0..out_w {
                let mut best: Option<(f32, usize)> = None;
                for kh in 0..kernel {
                    for kw in 0..kernel {
                        let index = (oh * stride + kh) * width + ow * stride + kw;
                        let value = x[index];
                        best = match best {
                            None => Some((value, index)),
                            Some((current, _)) if value > current || value.is_nan() => {
                                Some((value, index))
                            }
                            keep => keep,
                        };
                    }
                }
                let (value, index) = best.unwrap();
                values.push(value);
                indices.push(index);
            }
        }
    }
    (values, indices, [out_h, out_w])
}

fn check(shape: [usize; 4], kernel: usize, stride: usize, nans: bool, seed: u64) {
    let [batch, channels, height, width] = shape;
    let len = batch * channels * height * width;
    let input = activations(len, nans, seed);
    let (expected, chosen, [out_h, out_w]) = direct(&input, shape, kernel, stride);
    let pool = MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .init();

    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), shape), &device).require_grad();
    let output = pool.forward(x.clone());
    assert_eq!(output.dims(), [batch, channels, out_h, out_w]);
    let values: Vec<f32> = output.clone().values();
    for (position, (got, want)) in values.iter().zip(&expected).enumerate() {
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{shape:?} k{kernel} s{stride}: output {position} is {got}, expected {want}"
        );
    }

    // Output gradient = a distinct weight per output, so every routed value is identifiable.
    let weights: Vec<f32> = (0..values.len()).map(|i| 1.0 + i as f32).collect();
    let weights_tensor = Tensor::<4>::from_data(
        TensorData::new(weights.clone(), [batch, channels, out_h, out_w]),
        &device,
    );
    let gradients = (output * weights_tensor).sum().backward();
    let grad: Vec<f32> = x.grad(&gradients).unwrap().values();
    let mut want_grad = vec![0.0f32; len];
    let per_plane = out_h * out_w;
    for (position, &index) in chosen.iter().enumerate() {
        let plane = position / per_plane;
        want_grad[plane * height * width + index] += weights[position];
    }
    assert_eq!(
        grad, want_grad,
        "{shape:?} k{kernel} s{stride}: gradient routing"
    );
}

#[test]
fn two_by_two_pooling_matches_a_direct_max_with_ties_and_nans() {
    for (seed, nans) in [(0, false), (1, true), (2, false)] {
        check([3, 4, 8, 6], 2, 2, nans, seed);
        // Odd sizes: the last row and column are dropped (floor mode).
        check([2, 3, 7, 9], 2, 2, nans, seed + 10);
        // The project's CNN shapes.
        check([2, 16, 28, 28], 2, 2, nans, seed + 20);
        check([2, 32, 14, 14], 2, 2, nans, seed + 30);
    }
}

#[test]
fn other_windows_match_a_direct_max() {
    for (seed, nans) in [(3, false), (4, true)] {
        // Non-overlapping 3×3 (the general fast path) and overlapping 3×3, stride 2 (the
        // upstream kernel).
        check([2, 3, 9, 10], 3, 3, nans, seed);
        check([2, 3, 9, 10], 3, 2, nans, seed + 10);
    }
}

/// A direct 2D convolution in f64: the output `[B, C_out, out_h, out_w]` and the gradients
/// (dx, dw) of `sum(conv(x, w) · output_weights)`.
#[allow(clippy::too_many_arguments)]
fn direct_conv(
    x: &[f32],
    [batch, channels_in, height, width]: [usize; 4],
    w: &[f32],
    bias: Option<&[f32]>,
    [channels_out, group_in, kh, kw]: [usize; 4],
    output_weights: &[f32],
    [out_h, out_w]: [usize; 2],
    stride: usize,
    dilation: usize,
    [pad_top, pad_left]: [usize; 2],
    groups: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let group_out = channels_out / groups;
    let mut y = vec![0.0f64; batch * channels_out * out_h * out_w];
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    for b in 0..batch {
        for o in 0..channels_out {
            let group = o / group_out;
            for oh in 0..out_h {
                for ow in 0..out_w {
                    let at = ((b * channels_out + o) * out_h + oh) * out_w + ow;
                    let gy = output_weights[at] as f64;
                    let mut sum = bias.map_or(0.0, |bias| bias[o] as f64);
                    for c in 0..group_in {
                        let channel = group * group_in + c;
                        for i in 0..kh {
                            for j in 0..kw {
                                let ih = (oh * stride + i * dilation) as isize - pad_top as isize;
                                let iw = (ow * stride + j * dilation) as isize - pad_left as isize;
                                if ih < 0 || iw < 0 || ih >= height as isize || iw >= width as isize
                                {
                                    continue;
                                }
                                let xi = ((b * channels_in + channel) * height + ih as usize)
                                    * width
                                    + iw as usize;
                                let wi = ((o * group_in + c) * kh + i) * kw + j;
                                sum += x[xi] as f64 * w[wi] as f64;
                                dw[wi] += gy * x[xi] as f64;
                                dx[xi] += gy * w[wi] as f64;
                            }
                        }
                    }
                    y[at] = sum;
                }
            }
        }
    }
    (y, dx, dw)
}

#[test]
fn convolution_forward_and_gradients_match_a_direct_computation() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    // (batch, in, out, size h×w, kernel, stride, dilation, padding (top, left, bottom, right), groups)
    let cases = [
        (3, 1, 4, [9, 9], 3, 1, 1, (1, 1, 1, 1), 1),
        (2, 4, 6, [8, 7], 3, 2, 1, (1, 1, 1, 1), 1),
        (2, 4, 6, [9, 10], 3, 1, 2, (2, 1, 2, 1), 2),
        (17, 3, 5, [6, 6], 2, 1, 1, (0, 0, 0, 0), 1),
        (2, 2, 2, [7, 8], 3, 2, 1, (1, 0, 2, 1), 1),
        // stride 1, undilated: the padded-grid path (issue 35), with asymmetric padding,
        // groups, a 5×5 kernel and no padding at all
        (2, 4, 6, [7, 9], 3, 1, 1, (0, 2, 1, 0), 2),
        (3, 3, 4, [8, 8], 5, 1, 1, (2, 2, 2, 2), 1),
        (2, 5, 3, [6, 7], 3, 1, 1, (0, 0, 0, 0), 1),
        // the SIMD kernels (conv_direct.rs): several blocks of output channels with a partial
        // last one, an odd channel left after the weight gradient's pairs, more samples than a
        // chunk; and a ResNet-sized 7×7 map (the grid's 63 columns round up to 64)
        (10, 17, 19, [12, 13], 3, 1, 1, (1, 1, 1, 1), 1),
        (9, 16, 32, [7, 7], 3, 1, 1, (1, 1, 1, 1), 1),
        // the channels-last kernels (7×7 maps; the weight gradient also at 14×14): blocks of
        // 4, 2 and 1 vectors of channels (80 = 64 + 16 out, 48 = 32 + 16 for the input
        // gradient), 49 positions in blocks with a tail, groups of 16 channels
        (3, 48, 80, [7, 7], 3, 1, 1, (1, 1, 1, 1), 1),
        (3, 64, 64, [7, 7], 3, 1, 1, (1, 1, 1, 1), 1),
        (2, 32, 32, [7, 7], 3, 1, 1, (1, 1, 1, 1), 2),
        (9, 16, 32, [14, 14], 3, 1, 1, (1, 1, 1, 1), 1),
    ];
    let device = Device::flex().autodiff();
    for (
        case,
        &(batch, channels_in, channels_out, [height, width], k, stride, dilation, pad, groups),
    ) in cases.iter().enumerate()
    {
        let conv = Conv2dConfig::new([channels_in, channels_out], [k, k])
            .with_stride([stride, stride])
            .with_dilation([dilation, dilation])
            .with_padding(PaddingConfig2d::Explicit(pad.0, pad.1, pad.2, pad.3))
            .with_groups(groups)
            .with_bias(case % 2 == 0)
            .init(&device);
        let shape = [batch, channels_in, height, width];
        let x_values = activations(batch * channels_in * height * width, false, case as u64);
        let x = Tensor::<4>::from_data(TensorData::new(x_values.clone(), shape), &device)
            .require_grad();
        let output = conv.forward(x.clone());
        let [_, _, out_h, out_w] = output.dims();
        let expected_len = |len: usize, before: usize, after: usize| {
            (len + before + after - dilation * (k - 1) - 1) / stride + 1
        };
        assert_eq!(
            [out_h, out_w],
            [
                expected_len(height, pad.0, pad.2),
                expected_len(width, pad.1, pad.3)
            ],
            "case {case}: output size"
        );
        let got_y: Vec<f32> = output.clone().values();

        let output_weights: Vec<f32> = (0..batch * channels_out * out_h * out_w)
            .map(|i| ((i * 7919) % 13) as f32 * 0.125 - 0.75)
            .collect();
        let weights_tensor = Tensor::<4>::from_data(
            TensorData::new(output_weights.clone(), [batch, channels_out, out_h, out_w]),
            &device,
        );
        let gradients = (output * weights_tensor).sum().backward();
        let dx: Vec<f32> = x.grad(&gradients).unwrap().values();
        let weight = conv.weight.val();
        let dw: Vec<f32> = weight.grad(&gradients).unwrap().values();
        let w_values: Vec<f32> = weight.values();
        let bias_values: Option<Vec<f32>> = conv.bias.as_ref().map(|bias| bias.val().values());
        let (want_y, want_dx, want_dw) = direct_conv(
            &x_values,
            shape,
            &w_values,
            bias_values.as_deref(),
            [channels_out, channels_in / groups, k, k],
            &output_weights,
            [out_h, out_w],
            stride,
            dilation,
            [pad.0, pad.1],
            groups,
        );
        let got_y: Vec<f64> = got_y.iter().map(|&v| v as f64).collect();
        let got_dx: Vec<f64> = dx.iter().map(|&v| v as f64).collect();
        let got_dw: Vec<f64> = dw.iter().map(|&v| v as f64).collect();
        for (name, got, want) in [
            ("output", &got_y, &want_y),
            ("input gradient", &got_dx, &want_dx),
            ("weight gradient", &got_dw, &want_dw),
        ] {
            assert_eq!(got.len(), want.len(), "case {case}: {name} size");
            for (index, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "case {case}: {name} {index} is {g}, expected {w}"
                );
            }
        }
    }
}

/// Uniform values in [−1, 1): sums of these are not exact, so a different summation order
/// shows in the bits.
fn continuous(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Runs `work` on a rayon pool of `threads` threads (the kernels' parallel loops use the
/// current pool).
fn on_threads<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(work)
}

/// One element of a matrix product computed directly in f64: Σ_i left(i) · right(i), i < k.
fn direct_product(k: usize, left: impl Fn(usize) -> f32, right: impl Fn(usize) -> f32) -> f64 {
    (0..k).map(|i| left(i) as f64 * right(i) as f64).sum()
}

/// The left operand m × k of a product test: `values` hold it row-major, or its transpose
/// (k × m) when `transposed`, then read through a transposed (strided) view.
struct LeftOperand<'a> {
    values: &'a [f32],
    rows: usize,
    depth: usize,
    transposed: bool,
}

impl LeftOperand<'_> {
    /// The operand as a tensor on `device`.
    fn tensor(&self, device: &Device) -> Tensor<2> {
        let values = self.values.to_vec();
        if self.transposed {
            Tensor::<2>::from_data(TensorData::new(values, [self.depth, self.rows]), device)
                .transpose()
        } else {
            Tensor::<2>::from_data(TensorData::new(values, [self.rows, self.depth]), device)
        }
    }

    /// Element (row, i).
    fn at(&self, row: usize, i: usize) -> f32 {
        if self.transposed {
            self.values[i * self.rows + row]
        } else {
            self.values[row * self.depth + i]
        }
    }
}

/// A product element within f32 rounding of its direct f64 value.
fn assert_close(got: f32, want: f64, what: &str) {
    assert!(
        (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
        "{what} is {got}, expected {want}"
    );
}

/// Matrix products above the parallel threshold are cut along k when k is their longest side
/// (two halves at a fixed point, added), else into one block of output rows or columns per
/// thread: the same bits on 1, 2 and 3 threads, and the product itself.
#[test]
fn matrix_products_are_right_and_independent_of_the_thread_count() {
    let device = Device::flex();
    // (m, k, n, left operand transposed): a linear layer's forward pass at a training and an
    // evaluation batch (cut along k), an odd k cut into unequal halves longer than gemm's own
    // pieces with a strided left operand, the weight gradient's shape (split by rows), a wide
    // product (by columns), and a k longer than gemm's pieces split by rows (gemm would cut
    // it differently for blocks of different shapes).
    let cases = [
        (128, 784, 256, false),
        (256, 784, 256, false),
        (60, 2001, 90, true),
        (784, 128, 256, false),
        (300, 200, 1000, false),
        (600, 1100, 300, false),
    ];
    for (case, &(m, k, n, transposed)) in cases.iter().enumerate() {
        let a = continuous(m * k, 100 + case as u64);
        let b = continuous(k * n, 200 + case as u64);
        let left = LeftOperand {
            values: &a,
            rows: m,
            depth: k,
            transposed,
        };
        let product = || {
            let rhs = Tensor::<2>::from_data(TensorData::new(b.clone(), [k, n]), &device);
            left.tensor(&device).matmul(rhs).values()
        };
        let one = on_threads(1, product);
        for threads in [2, 3] {
            let other = on_threads(threads, product);
            assert!(
                one.iter()
                    .zip(&other)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "case {case}: the product differs between 1 and {threads} threads"
            );
        }
        for (index, &got) in one.iter().enumerate().step_by(97) {
            let (row, column) = (index / n, index % n);
            let want = direct_product(k, |i| left.at(row, i), |i| b[i * n + column]);
            assert_close(got, want, &format!("case {case}: element {index}"));
        }
    }
}

/// The convolution's forward pass and gradients give the same bits on 1 and 3 threads.
#[test]
fn convolutions_are_independent_of_the_thread_count() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let device = Device::flex().autodiff();
    // the grid kernels (12×12), and the channels-last ones (7×7, 32 channels)
    for (channels_in, channels_out, size) in [(4, 8, 12), (16, 32, 7)] {
        let conv = Conv2dConfig::new([channels_in, channels_out], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let shape = [21, channels_in, size, size];
        let x_values = continuous(shape.iter().product(), 7);
        let run = || {
            let x = Tensor::<4>::from_data(TensorData::new(x_values.clone(), shape), &device)
                .require_grad();
            let output = conv.forward(x.clone());
            let values: Vec<f32> = output.clone().values();
            let gradients = (output.clone() * output).sum().backward();
            let dx: Vec<f32> = x.grad(&gradients).unwrap().values();
            let dw: Vec<f32> = conv.weight.val().grad(&gradients).unwrap().values();
            [values, dx, dw].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
        };
        let one = on_threads(1, run);
        let three = on_threads(3, run);
        for (name, (a, b)) in ["output", "input gradient", "weight gradient"]
            .iter()
            .zip(one.iter().zip(three.iter()))
        {
            assert_eq!(
                a, b,
                "{name} differs between 1 and 3 threads ({size}×{size})"
            );
        }
    }
}

/// The convolution tests again in a child process with each other kernel choice of
/// vendor/burn-flex's conv_direct.rs: the AVX2 kernels (chosen over AVX-512 on a machine with
/// both), the matrix-product path (every non-x86 machine, and f64), and the grid kernels on
/// every map (`BURN_FLEX_CONV_LAYOUT=grid`: no channels-last kernels). The choice is read once
/// per process, so each runs in its own child; the child skips this test itself.
#[test]
fn convolutions_match_with_every_kernel_choice() {
    if std::env::var_os("BURN_FLEX_CONV").is_some()
        || std::env::var_os("BURN_FLEX_CONV_LAYOUT").is_some()
    {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (variable, choice) in [
        ("BURN_FLEX_CONV", "avx2"),
        ("BURN_FLEX_CONV", "gemm"),
        ("BURN_FLEX_CONV_LAYOUT", "grid"),
    ] {
        let output = std::process::Command::new(&exe)
            .args(["convolution", "--test-threads", "1"])
            .env(variable, choice)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("3 passed"),
            "{variable}={choice}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The products a data-parallel training step makes (`train::fit`): shards of 42, 43 and 64
/// rows against a linear layer's weights, and the weight gradient Xᵀ·dH with a transposed
/// (strided) left operand, against a direct f64 computation of every element. gemm picks AVX-512
/// or AVX2 kernels at run time, and tile edges differ with the row count.
#[test]
fn shard_sized_and_transposed_products_match_a_direct_computation() {
    let device = Device::flex();
    for &(m, k, n, transposed) in &[
        (42, 784, 256, false),
        (43, 784, 256, false),
        (64, 784, 256, false),
        (43, 256, 10, false),
        (784, 43, 256, true),
        (784, 64, 256, true),
        (256, 43, 10, true),
    ] {
        let a = continuous(m * k, 300 + m as u64);
        let b = continuous(k * n, 400 + k as u64);
        let left = LeftOperand {
            values: &a,
            rows: m,
            depth: k,
            transposed,
        };
        let rhs = Tensor::<2>::from_data(TensorData::new(b.clone(), [k, n]), &device);
        let got = left.tensor(&device).matmul(rhs).values();
        assert_eq!(got.len(), m * n);
        for (index, &value) in got.iter().enumerate() {
            let (row, column) = (index / n, index % n);
            let want = direct_product(k, |i| left.at(row, i), |i| b[i * n + column]);
            let what = format!("{m}×{k}×{n} (transposed {transposed}): element {index}");
            assert_close(value, want, &what);
        }
    }
}

/// A product's output is not zero-filled before gemm writes it (vendor/burn-flex, issue 15):
/// every element is written, including where k = 0 (an empty sum: zeros, not leftover memory),
/// over and over, so that reused allocations cannot leak old values into a result.
#[test]
fn products_write_every_output_element_even_with_nothing_to_sum() {
    let device = Device::flex();
    for round in 0..20 {
        // Leave non-zero values behind in freed memory of the sizes that follow.
        let filler = Tensor::<2>::from_data(TensorData::new(vec![7.5f32; 6 * 5], [6, 5]), &device);
        drop(filler.clone().matmul(Tensor::ones([5, 5], &device)));
        let empty_sum = Tensor::<2>::zeros([6, 0], &device).matmul(Tensor::zeros([0, 5], &device));
        assert_eq!(empty_sum.dims(), [6, 5]);
        assert!(
            empty_sum.values().iter().all(|&v| v == 0.0),
            "round {round}: k = 0 product is not all zeros"
        );
        let ones = Tensor::<2>::ones([6, 3], &device).matmul(Tensor::ones([3, 5], &device));
        assert!(ones.values().iter().all(|&v| v == 3.0), "round {round}");
    }
}

/// BatchNorm in f64: the batch's mean and biased variance per channel, the normalised output,
/// and the gradients of Σ y·w for the input, γ and β. `x` is `[N, C, S]` flattened.
#[allow(clippy::type_complexity)]
fn direct_batch_norm(
    x: &[f32],
    [batch, channels, positions]: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    w: &[f32],
    epsilon: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let index = |n: usize, c: usize, s: usize| (n * channels + c) * positions + s;
    let count = (batch * positions) as f64;
    let mut y = vec![0.0; x.len()];
    let mut dx = vec![0.0; x.len()];
    let (mut means, mut variances, mut dgamma, mut dbeta) = (vec![], vec![], vec![], vec![]);
    for c in 0..channels {
        let values = || (0..batch).flat_map(move |n| (0..positions).map(move |s| index(n, c, s)));
        let mean = values().map(|i| x[i] as f64).sum::<f64>() / count;
        let variance = values().map(|i| (x[i] as f64 - mean).powi(2)).sum::<f64>() / count;
        let inv_std = 1.0 / (variance + epsilon).sqrt();
        let xhat = |i: usize| (x[i] as f64 - mean) * inv_std;
        for i in values() {
            y[i] = xhat(i) * gamma[c] as f64 + beta[c] as f64;
        }
        let sum_w = values().map(|i| w[i] as f64).sum::<f64>();
        let sum_w_xhat = values().map(|i| w[i] as f64 * xhat(i)).sum::<f64>();
        for i in values() {
            dx[i] = gamma[c] as f64
                * inv_std
                * (w[i] as f64 - sum_w / count - xhat(i) * sum_w_xhat / count);
        }
        means.push(mean);
        variances.push(variance);
        dgamma.push(sum_w_xhat);
        dbeta.push(sum_w);
    }
    (y, means, variances, dx, dgamma, dbeta)
}

/// Runs BatchNorm in training mode on `shape` and checks the output, the batch statistics and
/// the three gradients against [`direct_batch_norm`]; then inference with the batch's
/// statistics as running ones, which must give the same output. Returns the bits of every
/// result, for the thread-count check.
fn batch_norm_case<const D: usize>(shape: [usize; D], offset: f32, seed: u64) -> Vec<Vec<u32>> {
    use burn::tensor::module::{batch_norm, batch_norm_train};
    let device = Device::flex().autodiff();
    let channels = shape[1];
    let len: usize = shape.iter().product();
    let flat = [shape[0], channels, len / (shape[0] * channels)];
    let x_values: Vec<f32> = continuous(len, seed)
        .iter()
        .enumerate()
        .map(|(i, v)| v + offset * ((i / flat[2]) % channels) as f32)
        .collect();
    let gamma_values = continuous(channels, seed + 1);
    let beta_values = continuous(channels, seed + 2);
    let w_values = continuous(len, seed + 3);
    let epsilon = 1e-5;
    let x =
        Tensor::<D>::from_data(TensorData::new(x_values.clone(), shape), &device).require_grad();
    let gamma = Tensor::<1>::from_data(TensorData::new(gamma_values.clone(), [channels]), &device)
        .require_grad();
    let beta = Tensor::<1>::from_data(TensorData::new(beta_values.clone(), [channels]), &device)
        .require_grad();
    let w = Tensor::<D>::from_data(TensorData::new(w_values.clone(), shape), &device);
    let result = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), epsilon);
    let y: Vec<f32> = result.output.clone().values();
    let mean: Vec<f32> = result.mean.clone().values();
    let variance: Vec<f32> = result.variance.clone().values();
    let gradients = (result.output * w).sum().backward();
    let dx: Vec<f32> = x.grad(&gradients).unwrap().values();
    let dgamma: Vec<f32> = gamma.grad(&gradients).unwrap().values();
    let dbeta: Vec<f32> = beta.grad(&gradients).unwrap().values();
    let inference: Vec<f32> = batch_norm(
        x.inner(),
        gamma.inner(),
        beta.inner(),
        result.mean.inner(),
        result.variance.inner(),
        epsilon,
    )
    .values();
    let (want_y, want_mean, want_var, want_dx, want_dgamma, want_dbeta) = direct_batch_norm(
        &x_values,
        flat,
        &gamma_values,
        &beta_values,
        &w_values,
        epsilon,
    );
    for (name, got, want, scale) in [
        ("output", &y, &want_y, 1.0),
        ("inference output", &inference, &want_y, 1.0),
        ("mean", &mean, &want_mean, 1.0),
        ("variance", &variance, &want_var, 1.0),
        ("input gradient", &dx, &want_dx, 1.0),
        (
            "gamma gradient",
            &dgamma,
            &want_dgamma,
            (flat[0] * flat[2]) as f64,
        ),
        (
            "beta gradient",
            &dbeta,
            &want_dbeta,
            (flat[0] * flat[2]) as f64,
        ),
    ] {
        assert_eq!(got.len(), want.len(), "{shape:?}: {name} size");
        for (index, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 2e-5 * (scale.sqrt() + w.abs()),
                "{shape:?} offset {offset}: {name} {index} is {g}, expected {w}"
            );
        }
    }
    [y, inference, mean, variance, dx, dgamma, dbeta]
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// BatchNorm's fused kernels (inference, training, training gradient) against a direct f64
/// computation: image-shaped inputs whose plane is not a multiple of the kernel's lanes, a
/// 2D `[N, C]` input, a 3D one, channels whose mean is a hundred times their spread; and the
/// same bits on 1 and 3 threads.
#[test]
fn batch_norm_matches_a_direct_computation_and_is_independent_of_the_thread_count() {
    batch_norm_case([5, 3, 4, 7], 0.0, 1);
    batch_norm_case([9, 6], 0.5, 2);
    batch_norm_case([3, 2, 37], 0.0, 3);
    batch_norm_case([4, 3, 5, 5], 100.0, 4);
    let one = on_threads(1, || batch_norm_case([33, 5, 6, 6], 1.0, 5));
    let three = on_threads(3, || batch_norm_case([33, 5, 6, 6], 1.0, 5));
    assert_eq!(one, three, "BatchNorm differs between 1 and 3 threads");
}
