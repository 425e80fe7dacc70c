"""Typed schema of the runner's config: Hydra checks every override against it at start.

The YAML under ``configs/`` fills these dataclasses; a key that is not here (a typo) or a value of the
wrong type is refused before anything runs. Checks that span fields live in :func:`validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore

from mesimp.data.embeddings import vectors_file
from mesimp.engine.device import resolve_device
from mesimp.errors import UserError
from mesimp.simplify.schedule import OptimizerReset


class Scope(Enum):
    example = "example"  # the paper's meProp: top-k per example
    batch = "batch"  # the paper's unified top-k: one index set per minibatch


class Select(Enum):
    topk = "topk"
    random = "random"  # the paper's control


class Rule(Enum):
    """How a per-example meProp layer builds dL/dW; dL/dx always comes from the top-k (mesimp/nn/sparse_grad.py)."""

    topk = "topk"  # the paper: the top-k entries of dy, a biased estimate of dy
    dense_dw = "dense_dw"  # ablation: the exact dL/dW (no saving on it)
    centred = "centred"  # the top-k for the centred input, plus the exact rank-one input-mean term
    unbiased = "unbiased"  # an unbiased k-entry sample of each row of dy (E[S] = dy)
    unbiased_centred = "unbiased_centred"  # the unbiased sample for the centred input, plus the mean term


class BiasGrad(Enum):
    dense = "dense"  # the authors' code: the bias sees the full dy
    kept = "kept"


class Gates(Enum):
    joint = "joint"  # LSTM: top-k over all 4h gate pre-activations of a time step
    per_gate = "per_gate"  # LSTM: top-k in each of the four gates (4k kept)


class InputGrad(Enum):
    topk = "topk"  # the paper: dL/dx from the kept entries of dL/dz
    dense = "dense"  # LSTM: dL/dx from the token's whole dL/dz (exact given the top-k recurrence)


class LrSchedule(Enum):
    constant = "constant"  # the paper (the authors' code has no schedule)
    cosine = "cosine"  # lr * (1 + cos(pi * t / T)) / 2 at update t of the run's T


class OptimName(Enum):
    adam = "adam"
    adagrad = "adagrad"
    sgd = "sgd"


class Init(Enum):
    torch = "torch"  # nn.Linear's default (Kaiming-uniform weights, uniform bias)
    authors = "authors"  # the authors' C#: N(0, 6/(fan_in+fan_out)) weights, zero bias


@dataclass
class MePropConfig:
    scope: Scope = Scope.example
    select: Select = Select.topk
    bias_grad: BiasGrad = BiasGrad.dense
    # Task configs set the default that trains (docs/decisions.md); topk is the paper's rule.
    rule: Rule = Rule.topk
    # The paper uses the hidden k at the output layer for MNIST and parsing; the authors' MNIST code never
    # sparsifies the 10-wide output layer. Task configs pick their default.
    output_layer: bool = False
    # LSTM only; the paper does not say where inside the LSTM it applies top-k. configs/task/pos.yaml: per_gate.
    gates: Gates = Gates.joint
    # LSTM only: how dL/dx, the gradient into the word embeddings and features, is built. configs/task_optim/
    # pos_adagrad.yaml: dense.
    input_grad: InputGrad = InputGrad.topk


class Device(Enum):
    auto = "auto"  # the GPU when torch sees one
    cpu = "cpu"
    cuda = "cuda"


class TagSet(Enum):
    xpos = "xpos"  # language-specific tags (Penn Treebank tags in EWT)
    upos = "upos"  # the 17 universal tags


@dataclass
class DataConfig:
    root: Optional[str] = None  # else $MESIMP_DATA, else ./data
    train_limit: Optional[int] = None  # keep only the first N training examples (smoke runs)
    fetch: bool = True  # download what is missing (MNIST; never in tests)
    # treebank tasks: a named dataset under root, or your own files (paths, directories or globs) per split
    name: Optional[str] = None
    train: Optional[str] = None
    dev: Optional[str] = None
    test: Optional[str] = None
    tagset: TagSet = TagSet.xpos
    label_subtypes: bool = False  # keep "nmod:poss" (true) or use "nmod" (false)
    lowercase: bool = True  # "The" and "the" share one word embedding (and one pretrained vector)
    word_min_count: int = 2  # rarer training words become the unknown word, so its embedding gets trained
    skip_bad_trees: bool = False  # parse: a bad tree stops the run, to be fixed; true drops it, counted in the log


@dataclass
class ModelConfig:
    hidden: List[int] = field(default_factory=lambda: [500, 500])
    dropout: float = 0.0
    init: Init = Init.torch
    embedding_dim: int = 50  # treebank tasks: dimensions per feature embedding (POS: of the word)
    feature_dim: int = 20  # POS: dimensions of each of the 7 word-shape features
    bidirectional: bool = False  # POS: the paper's tagger is unidirectional
    # treebank tasks: a word2vec or GloVe text file whose vectors start the word embedding's rows (the rest start
    # random); its dimension must be embedding_dim. Chen & Manning's parser started from 50-d vectors.
    pretrained_embeddings: Optional[str] = None


@dataclass
class OptimConfig:
    name: OptimName = OptimName.adam
    lr: Optional[float] = None  # None: the task's paper value for this optimizer (TrainConfig.default_lr)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_value: Optional[float] = None  # element-wise clipping; the authors' C# clips at 5, the paper says nothing
    lr_schedule: LrSchedule = LrSchedule.constant  # configs/task/mnist.yaml: cosine


class PruneThreshold(Enum):
    absolute = "absolute"  # the authors: kept for at least prune_rate of the examples since the last step
    relative = "relative"  # kept at least prune_rate times as often as the layer's average unit


class KPolicy(Enum):
    fixed = "fixed"  # the authors: k stays as the layer shrinks (dense once the layer is narrower than k)
    ratio = "ratio"  # k keeps its fraction of the layer's current width


@dataclass
class SimplifyConfig:
    enabled: bool = False
    prune_rate: float = 0.1  # a unit survives a step if kept for at least this fraction of the examples since the last
    cycle_epochs: int = 5  # simplifying and normal cycles alternate, each this many epochs
    prunes_per_epoch: int = 8  # simplification steps per epoch of a simplifying cycle
    warmup_epochs: int = 0  # normal epochs before the first cycle (the authors: none; the parser: 10)
    threshold: PruneThreshold = PruneThreshold.absolute
    k_policy: KPolicy = KPolicy.fixed
    optimizer_reset: OptimizerReset = OptimizerReset.cycle


@dataclass
class TrainConfig:
    task: str = "mnist"
    k: Optional[int] = None  # kept entries of dL/dy per example; None = full backprop
    k_ratio: Optional[float] = None  # k as a fraction of each layer's width, instead of k
    meprop: MePropConfig = field(default_factory=MePropConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    simplify: SimplifyConfig = field(default_factory=SimplifyConfig)
    default_lr: Dict[str, float] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 10
    evals_per_epoch: int = 8
    seed: int = 1
    resume: bool = True  # continue from the run directory's checkpoint when there is one
    # Not part of the run's identity: a run started on one device resumes on the other (the checkpoint is loaded
    # to the CPU, then moved). threads and flush_denormals act on the CPU only.
    device: Device = Device.auto
    threads: Optional[int] = None  # torch intra-op threads; None leaves torch's default
    # Subnormal floats read and written as zero on the CPU (the paper is silent): Adam's step over moments that
    # have decayed that far runs up to 30x slower otherwise (mesimp/engine/denormals.py). false keeps IEEE behaviour.
    flush_denormals: bool = True
    # Gradient diagnostics of the meProp layers (cosine to the exact dL/dW, input-mean share, dead units) every
    # diagnostics_every steps, into TensorBoard and metrics.json; each costs a dense dL/dW, so off by default.
    diagnostics: bool = False
    diagnostics_every: int = 100


def effective_rule(cfg: TrainConfig) -> Rule:
    """The weight-gradient rule a run really uses: ``meprop.rule`` for per-example top-k, where it is defined;
    the paper's topk for unified (scope=batch) and random-k, whose kept entries are not a top-k per example."""
    if (cfg.meprop.scope, cfg.meprop.select) == (Scope.example, Select.topk):
        return cfg.meprop.rule
    return Rule.topk


def register_schema() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def validate(cfg: TrainConfig) -> None:
    """Cross-field checks the schema cannot express; raises UserError with a one-line message."""
    if cfg.k is not None and cfg.k_ratio is not None:
        raise UserError(f"set k or k_ratio, not both (k={cfg.k}, k_ratio={cfg.k_ratio})")
    if cfg.k is not None and cfg.k < 0:
        raise UserError(f"k must be >= 0 or null, got {cfg.k}")
    if cfg.k_ratio is not None and not 0.0 < cfg.k_ratio <= 1.0:
        raise UserError(f"k_ratio must be in (0, 1], got {cfg.k_ratio}")
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "evals_per_epoch": cfg.evals_per_epoch,
                "diagnostics_every": cfg.diagnostics_every}
    for name, value in positive.items():
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if cfg.data.word_min_count < 1 or cfg.model.embedding_dim < 1 or cfg.model.feature_dim < 1:
        raise UserError("data.word_min_count, model.embedding_dim and model.feature_dim must be >= 1")
    if cfg.data.train_limit is not None and cfg.data.train_limit < 1:
        raise UserError(f"data.train_limit must be >= 1 or null, got {cfg.data.train_limit}")
    if any(width < 1 for width in cfg.model.hidden):
        raise UserError(f"model.hidden widths must be >= 1, got {list(cfg.model.hidden)}")
    simplify = cfg.simplify
    if simplify.enabled:
        if not 0.0 <= simplify.prune_rate < 1.0:
            raise UserError(f"simplify.prune_rate must be in [0, 1), got {simplify.prune_rate}")
        if simplify.cycle_epochs < 1 or simplify.prunes_per_epoch < 1:
            raise UserError(f"simplify.cycle_epochs and simplify.prunes_per_epoch must be >= 1, got "
                            f"{simplify.cycle_epochs} and {simplify.prunes_per_epoch}")
        if simplify.warmup_epochs < 0:
            raise UserError(f"simplify.warmup_epochs must be >= 0, got {simplify.warmup_epochs}")
        if cfg.k is None and cfg.k_ratio is None:
            raise UserError("simplify=mesimp needs meProp's top-k (set k or k_ratio): with k=null there is no "
                            "activeness to count")
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise UserError(f"model.dropout must be in [0, 1), got {cfg.model.dropout}")
    if cfg.threads is not None and cfg.threads < 1:
        raise UserError(f"threads must be >= 1 or null (torch's default), got {cfg.threads}")
    if cfg.model.pretrained_embeddings is not None:
        if cfg.task not in ("parse", "pos"):
            raise UserError(f"model.pretrained_embeddings is for the word embeddings of task=parse and task=pos, "
                            f"not task={cfg.task}")
        vectors_file(cfg.model.pretrained_embeddings)
    if cfg.meprop.input_grad != InputGrad.topk and cfg.task != "pos":
        raise UserError(f"meprop.input_grad={cfg.meprop.input_grad.value} is for the tagger's LSTM (task=pos), "
                        f"not task={cfg.task}")
    resolve_device(cfg.device.value)  # device=cuda without a GPU
    validate_optim(cfg.optim, cfg.default_lr)
    validate_meprop_widths(cfg)


def validate_optim(optim: OptimConfig, default_lr: Dict[str, float]) -> None:
    for source, lr in [("optim.lr", optim.lr), *((f"default_lr.{name}", lr) for name, lr in default_lr.items())]:
        if lr is not None and not lr > 0.0:  # `not >` also refuses nan
            raise UserError(f"{source} must be > 0, got {lr}")
    betas = list(optim.betas)
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        raise UserError(f"optim.betas must be two numbers in [0, 1), got {betas}")
    if not optim.eps > 0.0:
        raise UserError(f"optim.eps must be > 0, got {optim.eps}")
    if not optim.momentum >= 0.0 or not optim.weight_decay >= 0.0:
        raise UserError(f"optim.momentum and optim.weight_decay must be >= 0, got {optim.momentum} and "
                        f"{optim.weight_decay}")
    if optim.clip_value is not None and not optim.clip_value > 0.0:
        raise UserError(f"optim.clip_value must be > 0 or null, got {optim.clip_value}")


def validate_meprop_widths(cfg: TrainConfig) -> None:
    """k against the widths the config alone fixes, before any data loads. The output layer's width comes from
    the data (labels, tags), so with meprop.output_layer=true the task checks k once it is built."""
    if cfg.k is None and cfg.k_ratio is None:
        return
    # an LSTM (task=pos) ranks its 4h gate pre-activations jointly, or one gate's h at a time
    per_unit = 4 if cfg.task == "pos" and cfg.meprop.gates == Gates.joint else 1
    widths = [per_unit * width for width in cfg.model.hidden]
    if not widths and not cfg.meprop.output_layer:
        raise UserError("meProp has no layer to act on: model.hidden=[] and meprop.output_layer=false "
                        "(set k=null for full backprop, or give hidden layers)")
    if widths and cfg.k is not None and cfg.k > max(widths) and not cfg.meprop.output_layer:
        per_gate = " (meprop.gates=per_gate keeps k in each LSTM gate)" if cfg.task == "pos" and per_unit == 1 else ""
        raise UserError(f"k={cfg.k} exceeds the widest meProp layer ({max(widths)}){per_gate}; use k=null for full "
                        f"backprop")
