"""Time one training step of AnomalyNet (forward, BCE loss, backward, Adam) in several numeric setups.

Usage:
    .venv/bin/python scripts/bench_model.py [--size 224] [--batch 8] [--steps 5] [--warmup 2]
        [--device cpu|cuda] [--threads N] [--configs fp32,fp32-cl,bf16,bf16-cl]

Configs: ``fp32`` (NCHW, float32), ``fp32-cl`` (channels_last), ``bf16`` (bf16 autocast, NCHW),
``bf16-cl`` (bf16 autocast, channels_last). Prints the median seconds per step and per image and
the parameter count. Random inputs and labels; nothing is read or downloaded.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from nsad.models.loss import bce_loss
from nsad.models.net import AnomalyNet, count_parameters

CONFIGS = {"fp32": (False, False), "fp32-cl": (True, False), "bf16": (False, True), "bf16-cl": (True, True)}


def time_steps(name: str, size: int, batch: int, steps: int, warmup: int, device: str) -> list[float]:
    """Return the wall-clock seconds of ``steps`` training steps after ``warmup`` untimed ones."""
    channels_last, bf16 = CONFIGS[name]
    torch.manual_seed(0)
    net = AnomalyNet().to(device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    images = (
        torch.randn(batch, 3, size, size, generator=gen).to(device).contiguous(memory_format=memory_format)
    )
    labels = (torch.rand(batch, 1, size, size, generator=gen) > 0.9).float().to(device)
    times = []
    for index in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = bce_loss(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Parse the options, time each config and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from {list(CONFIGS)}")
    args = parser.parse_args()
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    if args.threads:
        torch.set_num_threads(args.threads)

    device_name = (
        torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    )
    print(
        f"AnomalyNet: {count_parameters(AnomalyNet()):,} parameters; torch {torch.__version__}, "
        f"{args.device} ({device_name}), {torch.get_num_threads()} threads; "
        f"batch {args.batch} at {args.size}x{args.size}, "
        f"median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"{'config':<10} {'s/step':>8} {'s/image':>8} {'min s/step':>10}")
    for name in names:
        times = time_steps(name, args.size, args.batch, args.steps, args.warmup, args.device)
        median = statistics.median(times)
        print(f"{name:<10} {median:8.3f} {median / args.batch:8.4f} {min(times):10.3f}", flush=True)


if __name__ == "__main__":
    main()
