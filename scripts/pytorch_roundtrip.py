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
    return {"mlp": MLP, "cnn": CNN, "resnet20": lambda: ResNet20(in_channels=1)}[model]()


def crop_and_flip(images, generator):
    """unlearn's --augment crop+flip: a random 4-pixel-padded crop, then a random flip."""
    n, _, h, w = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, images.shape[1], h, w + 8)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, images.shape[1], h, w)
    cropped = cropped.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


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
    if args.limit:
        # The first `limit` samples of each class (the timing needs the size, not the choice).
        keep = torch.cat([torch.nonzero(y == c).flatten()[:args.limit] for c in range(10)])
        x, y = x[keep.sort().values], y[keep.sort().values]
    module = build(args.model)
    augment = args.model == "resnet20"
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
            inputs = crop_and_flip(x[batch], generator) if augment else x[batch]
            loss = F.cross_entropy(module(inputs), y[batch])
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


class BasicBlockA(nn.Module):
    """A basic block of He et al.'s CIFAR ResNet with the parameter-free "option A" shortcut
    (x[:, :, ::2, ::2] with zero channels on both sides when the shape changes)."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.pad = (outputs - inputs) // 2 if stride != 1 or inputs != outputs else 0

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    """unlearn's `resnet20` (He et al. 2016, CIFAR): keys conv1, bn1, layer1..3, fc."""

    def __init__(self, in_channels=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        inputs = 16
        for stage, width in enumerate([16, 32, 64]):
            blocks = [BasicBlockA(inputs if b == 0 else width, width,
                                  2 if b == 0 and stage > 0 else 1) for b in range(3)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            inputs = width
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


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
    report = {"torch": torch.__version__, "torchvision": torchvision.__version__, "images": 64}
    images = None
    for model, build_module in [("resnet18", cifar_resnet18), ("resnet20", ResNet20)]:
        torch.manual_seed(args.seed)
        module = build_module()
        # Random weights (the module's own initialisation) and BatchNorm statistics set away
        # from their defaults, so that a lost, swapped or transposed tensor shows.
        with torch.no_grad():
            for layer in module.modules():
                if isinstance(layer, nn.BatchNorm2d):
                    layer.weight.uniform_(0.5, 1.5)
                    layer.bias.uniform_(-0.2, 0.2)
                    layer.running_mean.uniform_(-0.3, 0.3)
                    layer.running_var.uniform_(0.5, 2.0)
                    layer.num_batches_tracked.fill_(1000)
        module.eval()
        if images is None:
            images = torch.rand(64, 3, 32, 32)
            save_file({"images": images}, f"{args.out}/images.safetensors")
        with torch.no_grad():
            expected = module(images)
        state = {key: value.contiguous() for key, value in module.state_dict().items()}
        base = f"{args.out}/{model}"
        save_file(state, f"{base}.torch.safetensors")
        torch.save(state, f"{base}.torch.pt")
        report[f"{model}_keys"] = len(state)
        for kind in ["safetensors", "pt"]:
            logits_path = f"{base}.unlearn_logits.{kind}.safetensors"
            exported = f"{base}.unlearn_exported.{kind}.safetensors"
            subprocess.run([args.logits_bin, f"{base}.torch.{kind}",
                            f"{args.out}/images.safetensors", logits_path, exported, "10", model],
                           check=True)
            ours = load_file(logits_path)["logits"]
            back = build_module()
            back.load_state_dict(load_file(exported), strict=True)
            back.eval()
            with torch.no_grad():
                again = back(images)
            report[f"{model}_{kind}_max_abs_logit_difference"] = (ours - expected).abs().max().item()
            report[f"{model}_{kind}_exported_strict_load_max_abs_difference"] = (
                (again - expected).abs().max().item())
    report["within_1e-4"] = all(
        value <= 1e-4 for key, value in report.items() if "difference" in key)
    print(json.dumps(report))
    if not report["within_1e-4"]:
        sys.exit("unlearn's ResNet logits differ from PyTorch's by more than 1e-4")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["train", "check", "resnet"])
    parser.add_argument("--model", choices=["mlp", "cnn", "resnet20"])
    parser.add_argument("--limit", type=int, default=0)
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
