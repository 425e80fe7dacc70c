"""The config schema: the real configs compose, typos and wrong types fail, cross-field checks hold."""

import pytest
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from mesimp.config import OptimName, Scope, effective_rule, validate
from mesimp.errors import UserError
from mesimp.report.sweep import expand
from mesimp.runner import learning_rate, method_name
from tests.helpers import compose_config


def test_defaults_are_the_papers_mnist_setup():
    cfg = compose_config()
    assert cfg.task == "mnist" and cfg.k is None and list(cfg.model.hidden) == [500, 500]
    assert cfg.batch_size == 10 and cfg.epochs == 20 and cfg.evals_per_epoch == 8
    assert cfg.optim.name == OptimName.adam and learning_rate(cfg) == 0.001
    assert cfg.meprop.output_layer is False
    validate(cfg)


@pytest.mark.parametrize("optim,lr", [("adam", 0.001), ("adagrad", 0.1), ("sgd", 0.1)])
def test_optimizer_groups_take_the_tasks_paper_lr(optim, lr):
    cfg = compose_config(f"optim={optim}")
    assert cfg.optim.name.value == optim and learning_rate(cfg) == lr
    assert learning_rate(compose_config(f"optim={optim}", "optim.lr=0.5")) == 0.5
    if optim == "adagrad":
        assert cfg.optim.eps == 1e-6


def test_interface_keys_compose():
    cfg = compose_config("k=20", "meprop.scope=batch", "meprop.select=random", "epochs=3", "seed=7",
                         "data.root=/somewhere", "data.train_limit=300", "model.hidden=[20,20]")
    assert cfg.k == 20 and cfg.meprop.scope == Scope.batch and cfg.meprop.select.value == "random"
    assert cfg.epochs == 3 and cfg.seed == 7 and cfg.data.root == "/somewhere" and cfg.data.train_limit == 300
    assert list(cfg.model.hidden) == [20, 20]
    assert compose_config("k_ratio=0.04").k_ratio == 0.04


@pytest.mark.parametrize("override", ["epochz=3", "meprop.scope=rows", "k=abc", "meprop.select=best"])
def test_typos_and_wrong_types_fail_at_compose(override):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)):
        compose_config(override)


@pytest.mark.parametrize("overrides,message", [
    (["k=-1"], "k must be >= 0"),
    (["k_ratio=0"], "k_ratio must be in"),
    (["k_ratio=1.5"], "k_ratio must be in"),
    (["k=20", "k_ratio=0.1"], "not both"),
    (["epochs=0"], "epochs must be"),
    (["data.train_limit=0"], "train_limit"),
    (["model.dropout=1.0"], "dropout"),
])
def test_cross_field_validation(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(compose_config(*overrides))


@pytest.mark.parametrize("overrides,method", [
    ([], "full"), (["k=20"], "meprop"), (["k=20", "meprop.scope=batch"], "meprop-unified"),
    (["k_ratio=0.1", "meprop.select=random"], "meprop-random"),
])
def test_method_names(overrides, method):
    assert method_name(compose_config(*overrides)) == method


@pytest.mark.parametrize("overrides, rule", [
    (["task=parse", "k=20"], "unbiased_centred"),  # the default of the MLP tasks: the rule that trains best
    (["task=mnist", "k=20"], "unbiased_centred"),
    (["task=pos", "k=5"], "topk"),
    (["task=parse", "k=20", "meprop.rule=topk"], "topk"),
    (["task=parse", "k=20", "meprop.scope=batch"], "topk"),  # unified top-k has no per-example rule
    (["task=mnist", "k=20", "meprop.select=random", "meprop.rule=unbiased"], "topk"),
])
def test_effective_weight_gradient_rule(overrides, rule):
    cfg = OmegaConf.to_object(compose_config(*overrides))
    assert effective_rule(cfg).value == rule


def test_each_task_defaults_to_the_settings_that_train_and_the_paper_s_stay_one_override_away():
    """Issue 15: MNIST's rate falls along a cosine, the tagger keeps k in each gate; the parser keeps both papers'."""
    rate = {task: compose_config(f"task={task}").optim.lr_schedule.value for task in ("mnist", "parse", "pos")}
    assert rate == {"mnist": "cosine", "parse": "constant", "pos": "constant"}
    # ... with Adam: under AdaGrad cosine costs the rule that trains 0.3 (configs/task_optim/mnist_adagrad.yaml)
    assert compose_config("task=mnist", "optim=adagrad").optim.lr_schedule.value == "constant"
    assert compose_config("task=mnist", "optim=adagrad", "optim.lr_schedule=cosine").optim.lr_schedule.value == "cosine"
    assert compose_config("task=pos", "optim=adagrad").optim.lr_schedule.value == "constant"
    assert compose_config("task=mnist", "optim.lr_schedule=constant").optim.lr_schedule.value == "constant"
    assert compose_config("task=pos").meprop.gates.value == "per_gate"
    assert compose_config("task=pos", "meprop.gates=joint").meprop.gates.value == "joint"
    # a unit's activeness sums its four gates, and k in each gate keeps 4k a token: the tagger prunes at 0.3
    rate = {task: compose_config(f"task={task}", "simplify=mesimp").simplify.prune_rate for task in ("mnist", "pos")}
    assert rate == {"mnist": 0.1, "pos": 0.3}
    # AdaGrad: the tagger's rate is the one chosen on dev (0.1), the paper's tables pin the paper's 0.01
    rate = {task: learning_rate(OmegaConf.to_object(compose_config(f"task={task}", "optim=adagrad")))
            for task in ("mnist", "parse", "pos")}
    assert rate == {"mnist": 0.1, "parse": 0.01, "pos": 0.1}
    assert {job.values["optim.lr"] for job in expand("table1_adagrad_pos")} == {"0.01"}
    # the tagger with AdaGrad sends each token's whole dL/dz into its embeddings (configs/task_optim/pos_adagrad.yaml)
    grads = {optim: compose_config("task=pos", f"optim={optim}").meprop.input_grad.value
             for optim in ("adam", "adagrad")}
    assert grads == {"adam": "topk", "adagrad": "dense"}
    assert compose_config("task=pos", "optim=adagrad", "meprop.input_grad=topk").meprop.input_grad.value == "topk"
    assert {job.values["meprop.input_grad"] for job in expand("table1_adagrad_pos")} == {"topk"}
    # Table 1's row of the tagger's AdaGrad defaults pins exactly what `task=pos optim=adagrad k=5` runs
    plain = compose_config("task=pos", "optim=adagrad", "k=5")
    defaults = {"optim.lr": str(learning_rate(OmegaConf.to_object(plain))), "meprop.gates": plain.meprop.gates.value,
                "meprop.input_grad": plain.meprop.input_grad.value}
    for job in expand("table1_adagrad_pos_default"):
        assert {key: job.values[key] for key in defaults} == defaults


def test_unknown_rule_fails_at_compose():
    with pytest.raises(Exception, match="rule"):
        compose_config("meprop.rule=biased")


def test_the_parser_warms_up_then_takes_one_mesimp_step_an_epoch_and_the_others_follow_the_authors():
    parse = compose_config("task=parse", "simplify=mesimp").simplify
    assert (parse.prunes_per_epoch, parse.warmup_epochs) == (1, 10)
    assert compose_config("task=mnist", "simplify=mesimp").simplify.warmup_epochs == 0
    assert compose_config("task=mnist", "simplify=mesimp").simplify.prunes_per_epoch == 8
    assert compose_config("task=pos", "simplify=mesimp").simplify.prunes_per_epoch == 8
    assert compose_config("task=parse", "simplify=mesimp", "simplify.prunes_per_epoch=8").simplify.prunes_per_epoch == 8
