"""PyTorch's side of `cargo run --release -p unlearn --example resnet_profile` (issue 35): the
same rows — each ResNet-20 stage's 3×3 convolution (16, 32, 64 channels on 28×28, 14×14, 7×7
maps) forward, forward + backward, forward + input gradient only, BatchNorm in training mode
forward + backward, the two stride-2 convolutions between stages forward + backward, and a
whole ResNet-20 training step (forward, cross-entropy, backward; no optimiser) at batch 128 —
as the minimum and the median of REPEATS runs after one warm-up. A benchmark script, not CI:
run it with the torch virtual environment of scripts/torch_venv.sh, on an idle machine,
interleaved with the Rust example.

Usage: python scripts/resnet_layer_times.py [THREADS] [REPEATS]
"""
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from pytorch_roundtrip import ResNet20  # noqa: E402


def time_ms(repeats, run):
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    return times[0], times[len(times) // 2]


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batch = 128
    rows = []
    for channels, size in [(16, 28), (32, 14), (64, 7)]:
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        x = torch.rand(batch, channels, size, size)
        with torch.no_grad():
            rows.append((f"conv {channels}→{channels} {size}×{size}, forward",
                         time_ms(repeats, lambda: conv(x))))
        xg = x.clone().requires_grad_()
        rows.append((f"conv {channels}→{channels} {size}×{size}, forward + backward",
                     time_ms(repeats, lambda: conv(xg).sum().backward())))
        frozen = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).requires_grad_(False)
        rows.append((f"conv {channels}→{channels} {size}×{size}, forward + input gradient",
                     time_ms(repeats, lambda: frozen(xg).sum().backward())))
        norm = torch.nn.BatchNorm2d(channels).train()
        rows.append((f"BatchNorm {channels} {size}×{size}, training forward + backward",
                     time_ms(repeats, lambda: norm(xg).sum().backward())))
    for channels, size in [(16, 28), (32, 14)]:
        conv = torch.nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False)
        xg = torch.rand(batch, channels, size, size).requires_grad_()
        name = f"conv {channels}→{2 * channels} {size}×{size} stride 2, forward + backward"
        rows.append((name, time_ms(repeats, lambda: conv(xg).sum().backward())))
    network = ResNet20(in_channels=1).train()
    images = torch.rand(batch, 1, 28, 28)
    labels = torch.arange(batch) % 10
    rows.append(("ResNet-20 training step (forward, loss, backward)",
                 time_ms(repeats, lambda: F.cross_entropy(network(images), labels).backward())))
    print(f"torch {torch.__version__}, threads {threads}, batch {batch}, {repeats} repeats")
    print("| operation | min (ms) | median (ms) |\n|---|---:|---:|")
    for name, (low, median) in rows:
        print(f"| {name} | {low:.2f} | {median:.2f} |")


if __name__ == "__main__":
    main()
