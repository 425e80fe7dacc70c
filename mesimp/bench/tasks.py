"""Whole training epochs and decoding of the real task pipelines, dense against meProp, side by side.

The models are the runner's (same config files, same data); an epoch is the loop's work without evaluation:
forward, backward, Adam step for every minibatch of one shuffled pass. The meProp epoch also runs with the
compiled kernels turned off: its loss must match the kernels' (the speed comes from the same arithmetic).
"""

from __future__ import annotations

import importlib
import statistics
import time
from dataclasses import dataclass

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mesimp.config import TrainConfig, effective_rule
from mesimp.engine.optim import build_optimizer
from mesimp.nn import kernels
from mesimp.runner import TASKS, learning_rate

# case: overrides. MNIST and parsing at the minibatch; POS at 32 sentences (the paper's 1 is Python-bound).
# Each task's default weight-gradient rule, and the MLP tasks also under the paper's (their defaults differ).
EPOCH_CASES = {
    "mnist": ["task=mnist", "k=20", "batch_size=100"],
    "mnist-topk": ["task=mnist", "k=20", "batch_size=100", "meprop.rule=topk"],
    "parse": ["task=parse", "k=20"],
    "parse-topk": ["task=parse", "k=20", "meprop.rule=topk"],
    "pos": ["task=pos", "k=10", "batch_size=32"],
}


@dataclass
class EpochResult:
    group: str
    task: str
    k: int
    batch_size: int
    steps: int
    dense_s: float
    meprop_s: float
    ratio: float
    dense_loss: float
    meprop_loss: float
    meprop_pytorch_loss: float  # the same epoch with the compiled kernels off
    rule: str = "topk"


@dataclass
class DecodeResult:
    group: str
    task: str
    wide: list[int]
    narrow: list[int]
    wide_ms: float
    narrow_ms: float
    ratio: float
    what: str  # "scoring" (one forward over a batch) or "decoding" (the whole dev set)


def load_config(overrides: list[str]) -> TrainConfig:
    from mesimp.train import CONFIG_DIR  # registers the schema

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="train", overrides=overrides))


def _set_k(model: torch.nn.Module, tracked: set[str], k: int | None) -> None:
    for name in tracked:
        model.get_submodule(name).k = k


def bench_epoch(case: str, device: torch.device, max_steps: int | None = None, train_limit: int | None = None,
                repeats: int = 3) -> EpochResult:
    """One training epoch dense and with meProp, alternated ``repeats`` times from the same start: median times.

    A single pair moved the MNIST ratio between 1.0x and 1.5x from run to run (the backward is a small part of an
    epoch there, and the clock of whichever ran first carried the warm-up).
    """
    limit = [f"data.train_limit={train_limit}"] if train_limit else []
    cfg = load_config([*EPOCH_CASES[case], f"device={device.type}", *limit])
    torch.manual_seed(cfg.seed)
    built = importlib.import_module(TASKS[cfg.task]).build(cfg)
    task, model = built.task, built.task.model
    start_state = {key: value.clone() for key, value in model.state_dict().items()}
    # the sampled rules draw from these: each epoch starts from the same draws, so the kernels' loss is comparable
    generator_states = {name: gen.get_state() for name, gen in built.generators.items()}
    order = torch.randperm(task.train_size, generator=torch.Generator().manual_seed(cfg.seed))
    batches = order.split(cfg.batch_size)[:max_steps]

    def epoch(k: int | None) -> tuple[float, float]:
        model.load_state_dict(start_state)
        for name, state in generator_states.items():
            built.generators[name].set_state(state)
        _set_k(model, built.tracked_layers, k)
        optimizer = build_optimizer(cfg.optim.name.value, model.parameters(), learning_rate(cfg))
        optimizer.zero_grad(set_to_none=False)
        total = 0.0
        start = time.perf_counter()
        for indices in batches:
            loss = task.loss(task.train_batch(indices))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
            total += loss.item()
        return time.perf_counter() - start, total / len(batches)

    dense, meprop = zip(*[(epoch(None), epoch(cfg.k)) for _ in range(repeats)])
    dense_s, meprop_s = (statistics.median(seconds for seconds, _ in runs) for runs in (dense, meprop))
    dense_loss, meprop_loss = dense[-1][1], meprop[-1][1]  # every repetition starts from the same state and draws
    with kernels.use(False):
        _, pytorch_loss = epoch(cfg.k)
    return EpochResult("epoch", cfg.task, cfg.k, cfg.batch_size, len(batches), dense_s, meprop_s,
                       dense_s / meprop_s, dense_loss, meprop_loss, pytorch_loss, effective_rule(cfg).value)


def bench_parser_decoding(device: torch.device, narrow: int = 50, repeats: int = 3, train_limit: int | None = None
                          ) -> list[DecodeResult]:
    """A meSimp-sized parser (hidden ``narrow`` x 2) against the 500-wide one: scoring and greedy decoding."""
    from mesimp.bench.timing import side_by_side, synchronize
    from mesimp.tasks.parse.model import ParserModel

    limit = [f"data.train_limit={train_limit}"] if train_limit else []
    cfg = load_config(["task=parse", f"device={device.type}", *limit])
    task = importlib.import_module(TASKS["parse"]).build(cfg).task
    wide_model = task.model.eval()
    shape = (len(task.vocabs.words), len(task.vocabs.tags), len(task.vocabs.labels), 1 + 2 * task.vocabs.num_labels)
    narrow_model = ParserModel(*shape, [narrow, narrow], cfg.model.embedding_dim).to(device).eval()
    features = task.features[:10_000]

    def scorer(model):
        def run():
            with torch.no_grad():
                model(features)
            synchronize(device)
        return run

    def decoder(model):
        def run():
            task.model = model
            task.evaluate("dev")
        return run

    scoring = side_by_side({"wide": scorer(wide_model), "narrow": scorer(narrow_model)}, repeats * 10, 2)
    decoding = side_by_side({"wide": decoder(wide_model), "narrow": decoder(narrow_model)}, repeats, 1)
    task.model = wide_model
    wide, thin = list(cfg.model.hidden), [narrow, narrow]
    return [DecodeResult("decode", "parse", wide, thin, t["wide"] * 1e3, t["narrow"] * 1e3, t["wide"] / t["narrow"],
                         what) for what, t in (("scoring", scoring), ("decoding", decoding))]
