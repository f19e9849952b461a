"""What machine we run on and how many FLOP/s it can do at best: the denominator of MFU and of `llmlab plan`.

    from llmlab.hardware import describe_machine, peak_flops
    peak, source = peak_flops("cpu")   # measured once per process by a square-matmul probe (about 1 s)
    peak, source = peak_flops("cuda")  # the datasheet's dense bf16 figure for this GPU, from ACCELERATORS

    .venv/bin/python -m llmlab.hardware   # prints the machine and its probed fp32 peak

On a CPU there is no trustworthy datasheet figure (clocks, SIMD width and neighbours on a shared host all vary), so
the peak is what a large matmul actually reaches here: MFU on CPU therefore means "fraction of the best this
machine's BLAS does", an honest ceiling for eager PyTorch. The 2-core Xeon (AVX-512) this project is developed on
probes at about 370 GFLOP/s fp32 when its host is quiet and about a third of that when neighbours are busy; the
probe keeps the best of several repeats so that brief contention does not lower it.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import time
from dataclasses import dataclass

import torch

from llmlab.errors import LlmlabError

PROBE_REPEATS = 5  # the probe's time is split into this many timed runs; the fastest one counts


@dataclass(frozen=True)
class Accelerator:
    """One row of ACCELERATORS."""

    name: str  # the name shown in plans
    patterns: tuple[str, ...]  # lower-case substrings of torch.cuda.get_device_name() (or of a user's spelling)
    bf16_flops: float  # dense (no 2:4 sparsity) bf16 tensor-core peak, FLOP/s; fp16 where there is no bf16
    usd_per_hour: float  # indicative rental price of one device, USD


# Peaks are the vendors' datasheet figures for dense bf16 matmul with fp32 accumulation. NVIDIA's datasheets print
# the 2:4-sparsity figure first (H100 SXM "1,979 TFLOPS*"), so the dense number is half of it: the convention of
# PaLM's and nanoGPT's MFU, which this project follows. Prices are mid-2025 on-demand rates per GPU-hour at GPU
# clouds and marketplaces (Lambda, RunPod, vast.ai and the like); hyperscalers list 2-4x more and long commitments
# less, so a dollar figure from them is an order of magnitude, not a quote. Order matters: the first row whose
# pattern is a substring wins, so the specific names ("h100 pcie") come before the ones they contain ("h100").
ACCELERATORS: tuple[Accelerator, ...] = (
    Accelerator("H100 PCIe", ("h100 pcie", "h100-pcie"), 756e12, 2.0),  # lower clocks and power than the SXM
    Accelerator("H100 NVL", ("h100 nvl",), 835e12, 2.5),
    Accelerator("H100 SXM", ("h100",), 989e12, 2.5),  # "NVIDIA H100 80GB HBM3" is the SXM part
    Accelerator("H200", ("h200", "gh200"), 989e12, 3.5),  # the H100 SXM's compute with more, faster memory
    Accelerator("B200", ("b200",), 2250e12, 5.0),
    Accelerator("MI300X", ("mi300x",), 1307e12, 2.0),  # AMD's datasheet: 2,615 TFLOPS with sparsity
    Accelerator("A100", ("a100",), 312e12, 1.5),  # SXM and PCIe, 40 and 80 GB: the same tensor-core peak
    Accelerator("A10G", ("a10g",), 125e12, 1.0),  # AWS part with no datasheet of its own: the A10's figure
    Accelerator("L40S", ("l40s",), 362e12, 1.0),
    Accelerator("L4", ("l4",), 121e12, 0.7),
    Accelerator("RTX 4090", ("4090",), 165e12, 0.4),  # GeForce: fp32 accumulation runs at half the fp16-acc rate
    Accelerator("RTX 3090", ("3090",), 71e12, 0.25),  # likewise (GA102 whitepaper)
    Accelerator("V100", ("v100",), 125e12, 0.5),  # no bf16 on Volta: the fp16 tensor-core peak (SXM2)
    Accelerator("T4", ("t4",), 65e12, 0.35),  # no bf16 on Turing either: fp16 (the free Colab GPU)
)


def find_accelerator(name: str) -> Accelerator | None:
    """The first ACCELERATORS row one of whose patterns occurs in `name` (case-insensitive), or None.

    A pattern must not be followed by a digit, so that "l4" does not match "L40S" nor "a100" "A1000"."""
    lowered = name.lower().replace("_", " ")
    for accelerator in ACCELERATORS:
        if any(re.search(re.escape(pattern) + r"(?!\d)", lowered) for pattern in accelerator.patterns):
            return accelerator
    return None


def gpu_peak_flops(name: str) -> float | None:
    """Dense bf16 peak FLOP/s of the GPU called `name` (e.g. torch.cuda.get_device_name()), None if not in the table."""
    accelerator = find_accelerator(name)
    return None if accelerator is None else accelerator.bf16_flops


def measure_gemm_peak(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int = 1024, seconds: float = 1.0
) -> float:
    """FLOP/s of `size` x `size` matmuls on `device` in `dtype`: the fastest of PROBE_REPEATS timed runs.

    A matmul of two n x n matrices is 2 n^3 FLOPs. After a warm-up (thread pools, kernel selection), one matmul is
    timed to choose how many fit in seconds / PROBE_REPEATS; each run times that many, synchronising CUDA around it.
    On CPU, 1024 is about where MKL reaches its plateau (512 gets a fraction of it, 2048 a few percent more).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise LlmlabError(f"matmul probe: size must be a positive integer, got {size!r}")
    if not seconds > 0:
        raise LlmlabError(f"matmul probe: seconds must be positive, got {seconds!r}")
    device = torch.device(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def timed(n_matmuls: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(n_matmuls):
            torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed(3)  # warm-up
    per_run = seconds / PROBE_REPEATS
    n_matmuls = max(1, int(per_run / max(timed(1), 1e-9)))
    best = min(timed(n_matmuls) for _ in range(PROBE_REPEATS))
    return 2 * size**3 * n_matmuls / max(best, 1e-9)


@functools.lru_cache(maxsize=None)
def _probed_peak(device: str, dtype: torch.dtype, size: int) -> float:
    return measure_gemm_peak(device, dtype, size)


def peak_flops(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """(peak FLOP/s of one `device`, where the number comes from), for MFU.

    CUDA: the dense bf16 datasheet figure of ACCELERATORS (the convention published MFUs use, whatever dtype the
    run computes in); a GPU missing from the table is probed instead with 4096 x 4096 bf16 matmuls, which reach a
    little under the datasheet figure, so MFU against it reads a little high. CPU: the matmul probe in `dtype`,
    measured once per process (about a second).
    """
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak_flops(name)
        if peak is not None:
            return peak, f"datasheet dense bf16 peak of {find_accelerator(name).name} ({name})"
        measured = _probed_peak(str(device), torch.bfloat16, 4096)
        return measured, f"measured: bf16 4096 matmul probe ({name} is not in llmlab.hardware.ACCELERATORS)"
    if device.type == "cpu":
        dtype_name = str(dtype).removeprefix("torch.")
        return _probed_peak("cpu", dtype, 1024), f"measured: best {dtype_name} 1024x1024 matmul rate on this CPU"
    raise LlmlabError(f"no peak FLOP/s known for device {str(device)!r}: use cpu or cuda")


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags from /proc/cpuinfo (Linux), else from platform."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def describe_machine() -> dict:
    """CPU model and matmul-relevant SIMD features, cores, memory, torch version and CUDA devices, JSON-safe."""
    import psutil

    model, flags = _cpu_model_and_flags()
    cuda_devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": model,
        "cpu_features": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_devices": cuda_devices,
        "cuda_peak_flops": [gpu_peak_flops(name) for name in cuda_devices],
    }


if __name__ == "__main__":
    for key, value in describe_machine().items():
        print(f"{key:16s} {value}")
    peak, source = peak_flops("cpu")
    print(f"{'cpu_peak':16s} {peak / 1e9:.0f} GFLOP/s ({source})")
