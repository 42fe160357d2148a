"""Reference PyTorch ResNet-20 (option B) training throughput, for comparison with m8.

The same network as m8: 3x3 conv 16 + BN + ReLU, three stages of three basic
blocks (16, 32, 64 filters), 1x1 stride-2 projection + BN where a stage
downsamples (option B), global average pooling, a 10-way linear layer; SGD
with momentum 0.9 (weight decay 1e-4), cross-entropy, batch 128, on the CPU.
Inputs are random standardized-like batches already in memory (no input
pipeline, unlike m8's fit, which augments on the fly).

It runs in its own process: importing torch into a process that has
TensorFlow crashes it. ``bench_training.py`` starts it with ``--serve`` and
interleaves its epochs with its own; it can also run alone:

    .venv/bin/python benchmarks/torch_reference.py [--steps 50] [--rounds 5]

Variants: ``eager`` (NCHW), ``channels_last`` and ``compile`` (torch.compile
of the channels_last model; skipped with a reason when it fails here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

VARIANTS = ("eager", "channels_last", "compile")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=0.1, eps=1e-5)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:  # option B: projection only where the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for block in range(3):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Trainer:
    """One variant: its own model, optimizer and in-memory batches."""

    def __init__(self, variant: str, batch: int, seed: int = 0):
        torch.manual_seed(seed)
        self.variant = variant
        self.batch = batch
        model = ResNet20()
        channels_last = variant in ("channels_last", "compile")
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.model = torch.compile(model) if variant == "compile" else model
        self.model.train()
        generator = torch.Generator().manual_seed(seed)
        self.batches = [(torch.randn(batch, 3, 32, 32, generator=generator).contiguous(memory_format=fmt),
                         torch.randint(0, 10, (batch,), generator=generator)) for _ in range(8)]
        self.loss = nn.CrossEntropyLoss()

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` training steps."""
        start = time.perf_counter()
        for i in range(steps):
            x, y = self.batches[i % len(self.batches)]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(x), y)
            loss.backward()
            self.optimizer.step()
        float(loss)  # wait for the last step
        return time.perf_counter() - start


def serve(batch: int) -> None:
    """Answer "VARIANT STEPS" lines on stdin with one JSON line each."""
    trainers: dict[str, Trainer | str] = {}
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        variant, steps = line.split()
        reply: dict = {"variant": variant}
        try:
            trainer = trainers.get(variant)
            if trainer is None:
                trainer = trainers[variant] = Trainer(variant, batch)
            if isinstance(trainer, str):
                raise RuntimeError(trainer)
            seconds = trainer.run(int(steps))
            reply.update(seconds=seconds, images=int(steps) * batch)
        except Exception as exc:  # e.g. torch.compile without a working C++ toolchain
            trainers[variant] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            reply["error"] = trainers[variant]
        print(json.dumps(reply), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--serve", action="store_true", help="worker mode for bench_training.py")
    args = parser.parse_args()
    if args.serve:
        serve(args.batch)
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.steps} steps per epoch, median of {args.rounds} after a warm-up")
    trainers = {v: Trainer(v, args.batch) for v in VARIANTS}
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds + 1):
        for variant, trainer in list(trainers.items()):
            try:
                seconds = trainer.run(args.steps)
            except Exception as exc:
                print(f"{variant}: failed ({type(exc).__name__}: {str(exc).splitlines()[0]})")
                del trainers[variant]
                continue
            if round_:
                rates[variant].append(args.steps * args.batch / seconds)
    for variant, values in rates.items():
        if values:
            print(f"  {variant:<14} {statistics.median(values):8.1f} img/s  ({', '.join(f'{v:.0f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
