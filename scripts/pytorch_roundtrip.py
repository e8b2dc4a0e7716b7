"""PyTorch side of scripts/pytorch_roundtrip.sh: the torch.nn.Module twins of unlearn's MLP and
CNN (as in docs/pytorch.md), training on Fashion-MNIST, and the test accuracy of weights that
come back from unlearn, loaded with load_state_dict(strict=True).

    python pytorch_roundtrip.py train --model mlp --data DIR --epochs 3 --seed 0 --out M.safetensors
    python pytorch_roundtrip.py check --model mlp --data DIR --weights U.safetensors --expect TA
    python pytorch_roundtrip.py resnet --out DIR --logits-bin target/release/examples/resnet_logits

`resnet` is the ResNet-18 parity check: torchvision's resnet18 with the CIFAR stem (conv1 a 3x3
stride-1 convolution, maxpool an identity), random weights and BatchNorm statistics, imported
by unlearn; its evaluation-mode logits on 64 random images must agree with PyTorch's within
1e-4, and the weights unlearn exports must load with load_state_dict(strict=True) and give the
same logits again.
"""

import argparse
import gzip
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


class MLP(nn.Module):
    """unlearn's `mlp:W1,W2,...` (`mlp` is one hidden layer of 256; `softmax` is hidden=())."""

    def __init__(self, input_shape=(1, 28, 28), hidden=(256,), classes=10):
        super().__init__()
        c, h, w = input_shape
        widths = [c * h * w, *hidden, classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class CNN(nn.Module):
    """unlearn's `cnn:C1,C2,H` (`cnn` is 16 and 32 channels, 128 hidden)."""

    def __init__(self, input_shape=(1, 28, 28), channels=(16, 32), hidden=128, classes=10):
        super().__init__()
        c, h, w = input_shape
        self.input_shape = tuple(input_shape)
        self.convolutions = nn.ModuleList([
            nn.Conv2d(c, channels[0], 3, padding=1),
            nn.Conv2d(channels[0], channels[1], 3, padding=1),
        ])
        self.layers = nn.ModuleList([
            nn.Linear(channels[1] * (h // 4) * (w // 4), hidden),
            nn.Linear(hidden, classes),
        ])

    def forward(self, x):
        x = x.reshape(-1, *self.input_shape)
        for convolution in self.convolutions:
            x = F.max_pool2d(F.relu(convolution(x)), 2)
        x = x.flatten(1)
        return self.layers[1](F.relu(self.layers[0](x)))


def build(model):
    return {"mlp": MLP, "cnn": CNN}[model]()


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory, part):
    prefix = "train" if part == "train" else "t10k"
    # The same features unlearn's idx: loader makes: pixels / 255, no other normalisation.
    x = idx(f"{directory}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).copy()), torch.from_numpy(y.copy())


@torch.no_grad()
def accuracy(module, x, y):
    module.eval()
    correct = sum(
        (module(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
        for i in range(0, len(y), 1000)
    )
    return 100.0 * correct / len(y)


def train(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x, y = load(args.data, "train")
    module = build(args.model)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = args.epochs * ((len(y) + 127) // 128)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.time()
    for _ in range(args.epochs):
        module.train()
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), 128):
            batch = order[i:i + 128]
            loss = F.cross_entropy(module(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    test_x, test_y = load(args.data, "test")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, args.out)
    print(json.dumps({
        "model": args.model, "epochs": args.epochs, "seed": args.seed,
        "seconds": round(time.time() - started, 2),
        "pytorch_test_accuracy": accuracy(module, test_x, test_y), "out": args.out,
    }))


def check(args):
    module = build(args.model)
    module.load_state_dict(load_file(args.weights), strict=True)
    test_x, test_y = load(args.data, "test")
    ours = accuracy(module, test_x, test_y)
    difference = abs(ours - args.expect)
    print(json.dumps({
        "model": args.model, "weights": args.weights, "pytorch_test_accuracy": ours,
        "unlearn_test_accuracy": args.expect, "difference_points": round(difference, 4),
        "within_0.01": difference <= 0.01 + 1e-9,
    }))
    if difference > 0.01 + 1e-9:
        sys.exit(f"PyTorch's test accuracy {ours:.4f} differs from unlearn's {args.expect:.4f}")


def cifar_resnet18(classes=10):
    """torchvision's resnet18 with the CIFAR stem: unlearn's `resnet18`."""
    import torchvision
    module = torchvision.models.resnet18(num_classes=classes)
    module.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    module.maxpool = nn.Identity()
    return module


def resnet(args):
    import subprocess
    import torchvision
    torch.manual_seed(args.seed)
    module = cifar_resnet18()
    # Random weights (torchvision's initialisation) and BatchNorm statistics set away from
    # their defaults, so that a lost, swapped or transposed tensor shows in the logits.
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.2, 0.2)
                layer.running_mean.uniform_(-0.3, 0.3)
                layer.running_var.uniform_(0.5, 2.0)
                layer.num_batches_tracked.fill_(1000)
    module.eval()
    images = torch.rand(64, 3, 32, 32)
    with torch.no_grad():
        expected = module(images)
    state = {key: value.contiguous() for key, value in module.state_dict().items()}
    out = args.out
    save_file(state, f"{out}/torchvision_resnet18.safetensors")
    torch.save(state, f"{out}/torchvision_resnet18.pt")
    save_file({"images": images}, f"{out}/images.safetensors")
    report = {"torch": torch.__version__, "torchvision": torchvision.__version__,
              "images": 64, "keys": len(state)}
    for kind in ["safetensors", "pt"]:
        logits_path = f"{out}/unlearn_logits.{kind}.safetensors"
        exported = f"{out}/unlearn_exported.{kind}.safetensors"
        subprocess.run([args.logits_bin, f"{out}/torchvision_resnet18.{kind}",
                        f"{out}/images.safetensors", logits_path, exported], check=True)
        ours = load_file(logits_path)["logits"]
        difference = (ours - expected).abs().max().item()
        back = cifar_resnet18()
        back.load_state_dict(load_file(exported), strict=True)
        back.eval()
        with torch.no_grad():
            again = back(images)
        report[f"max_abs_logit_difference_{kind}"] = difference
        report[f"exported_strict_load_max_abs_difference_{kind}"] = (again - expected).abs().max().item()
    report["within_1e-4"] = all(
        value <= 1e-4 for key, value in report.items() if key.startswith(("max_abs", "exported")))
    print(json.dumps(report))
    if not report["within_1e-4"]:
        sys.exit("unlearn's ResNet-18 logits differ from PyTorch's by more than 1e-4")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["train", "check", "resnet"])
    parser.add_argument("--model", choices=["mlp", "cnn"])
    parser.add_argument("--logits-bin", default="target/release/examples/resnet_logits")
    parser.add_argument("--data")
    parser.add_argument("--out")
    parser.add_argument("--weights")
    parser.add_argument("--expect", type=float)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.command == "resnet":
        resnet(args)
    elif args.command == "train":
        train(args)
    else:
        check(args)


if __name__ == "__main__":
    main()
