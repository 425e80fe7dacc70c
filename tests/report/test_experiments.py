"""The experiment configs: each composes into valid runs, names them as Hydra does, changes nothing but the
sweep, and the runs that two tables share are the same directories."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from mesimp.config import validate
from mesimp.errors import UserError
from mesimp.report.ablations import ablations
from mesimp.report.build import experiments
from mesimp.report.sweep import (EXPERIMENT_DIR, Extras, expand, experiment_names, full_backprop_job, make_job,
                                 same_size_job)
from mesimp.train import CONFIG_DIR, run_name
from tests.helpers import assert_one_line_error, train


def _compose(overrides):
    cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    name = run_name(cfg.hydra.job.override_dirname)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, name


@pytest.mark.parametrize("experiment", experiment_names())
def test_experiment_composes_and_names_its_runs_as_hydra(experiment):
    jobs = expand(experiment)
    assert jobs
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for job in jobs:
            if job.values.get("seed", "1") != "1":
                continue  # seeds change neither composition nor naming
            cfg, name = _compose([f"+experiment={experiment}", *job.overrides])
            assert name == job.name and cfg.task == job.task
            validate(OmegaConf.to_object(cfg))  # the runner's own cross-field checks
        # the experiment only names a sweep: a job's config and directory are those of the plain command line
        first = jobs[0].overrides
        assert _compose(first) == _compose([f"+experiment={experiment}", *first])


def test_sweep_values_are_written_as_overrides():
    """Hydra turns a YAML null into the string 'None' and a YAML list into its repr: sweeps must be strings."""
    for path in EXPERIMENT_DIR.glob("*.yaml"):
        params = OmegaConf.load(path).hydra.sweeper.params
        for key, value in params.items():
            assert isinstance(value, (str, int, float)) and not isinstance(value, bool), (path.name, key, value)


def test_the_reports_read_every_experiment():
    assert sorted(experiments() + ablations()) == experiment_names()


def test_runs_shared_between_tables_are_the_same_directories():
    def paths(name, **where):
        return {job.path(CONFIG_DIR) for job in expand(name) if all(job.values[k] == v for k, v in where.items())}

    constant, cosine = {"optim.lr_schedule": "constant"}, {"optim.lr_schedule": "cosine"}
    assert paths("table1_adam_mnist", **{"meprop.rule": "topk"}, **constant) <= paths("fig4_topk")
    assert paths("table1_adam_mnist", **{"meprop.rule": "unbiased_centred"}, **constant) <= paths("ablation_mnist_b10")
    assert paths("table1_adam_mnist", **cosine) == paths("ablation_mnist_lr")
    assert paths("table1_adam_mnist_full", **cosine) == {
        job.path(CONFIG_DIR) for job in map(full_backprop_job, expand("ablation_mnist_lr"))}
    assert paths("table1_adam_parse") <= paths("ablation_parse_adam")
    assert paths("table1_adam_parse_full") == {
        job.path(CONFIG_DIR) for job in map(full_backprop_job, expand("ablation_parse_adam"))}
    assert paths("readme_a_mnist") <= paths("fig4_topk")
    assert paths("table3_mnist") <= paths("fig4_hk")


def test_extras_win_per_task_and_hydra_settings_name_no_run():
    extras = Extras(("seed=1", "parse:data.name=null", "parse:data.train=/wsj/train.conllu", "pos:epochs=1",
                     "hydra.launcher.partition=cpu"))
    parse = expand("table1_adam_parse", extras)
    assert [job.name for job in parse] == [
        "data.name=null,data.train=_wsj_train.conllu,k=20,meprop.rule=topk,seed=1",
        "data.name=null,data.train=_wsj_train.conllu,k=20,meprop.rule=unbiased_centred,seed=1"]
    mnist = expand("table1_adam_mnist", extras)
    assert len(mnist) == 4 and all("epochs" not in job.values for job in mnist)


def test_same_size_twin_keeps_the_settings_and_drops_simplification():
    job = expand("readme_b_mnist_mesimp")[0]
    twin = same_size_job(job, [325, 243])
    assert twin == make_job(["task=mnist", "batch_size=100", "optim.lr_schedule=constant", "seed=1", "k=null",
                             "model.hidden=[325,243]"])
    assert twin.name == "batch_size=100,k=null,model.hidden=[325,243],optim.lr_schedule=constant,seed=1"


@pytest.mark.parametrize("bad", [("nope",), ("parsing:k=1",), ("k",)])
def test_bad_input_is_a_user_error(bad):
    with pytest.raises(UserError):
        expand(*bad) if bad == ("nope",) else Extras(bad)


def test_unknown_experiment_on_the_command_line_is_one_line(tmp_path):
    assert_one_line_error(train("-m", "+experiment=table9", runs=tmp_path), "unknown experiment 'table9'")


def test_slurm_launcher_and_its_local_twin_share_the_job_resources():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        slurm, twin = (compose(config_name="train", overrides=[f"hydra/launcher={name}"],
                               return_hydra_config=True).hydra.launcher for name in ("slurm", "slurm_local"))
    assert slurm._target_.endswith("SlurmLauncher") and twin._target_.endswith("LocalLauncher")
    resources = OmegaConf.load(CONFIG_DIR / "hydra" / "launcher" / "resources" / "run.yaml")
    for key, value in resources.items():
        assert slurm[key] == twin[key] == value
    assert slurm.max_num_timeout > 0  # runs resume from their checkpoints, so a timed-out job may be resubmitted
