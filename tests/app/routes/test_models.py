import json
import shutil

from octopi_core.model_config import default_checkpoint_dir, read_config
from octopi_core.registry import Registry


def test_models_lists_versions_and_the_champion(client, model_registry):
    body = client.get("/models").json()
    versions = {m["version"]: m for m in body["data"]}
    assert {model_registry.champion, model_registry.quiet} <= set(versions)
    assert body["champion"] == model_registry.champion and body["count"] == len(body["data"])
    assert versions[model_registry.champion]["champion"] and not versions[model_registry.quiet]["champion"]
    assert versions[model_registry.quiet]["voxel_size_a"] == 10.0
    assert "ribosome" in versions[model_registry.quiet]["classes"]


def test_a_named_version_is_used(client, model_registry, tomograms):
    job = client.post(
        "/predict", json={"tomogram_uri": str(tomograms.small), "model_version": model_registry.quiet}
    ).json()
    assert job["model_version"] == model_registry.quiet


def test_models_show_what_each_version_was_trained_on_and_its_held_out_scores(
    make_client, model_registry, tmp_path
):
    # A fine-tuned version as retrain --data records it: training.data and both held-out scores.
    source = Registry(model_registry.root).resolve(model_registry.quiet)
    checkpoint = tmp_path / "fine-tuned"
    shutil.copytree(source, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["training"] = {
        "recipe": {"init_version": model_registry.champion},
        "seed": 3,
        "data": {
            "source": "s3://lab/project/copick.json",
            "kind": "copick",
            "tomo_type": "wbp",
            "picks_users": ["curator"],
            "picks_sessions": ["1"],
            "holdout": "tomograms",
            "runs": {"TS_1": {"role": "training"}, "TS_2": {"role": "validation"}},
            "validation": {"runs": ["TS_2"], "holdout": "tomograms"},
        },
    }
    config["scores"] = {
        "validation": {"weighted_f_beta": 0.8},
        "held_out": {"weighted_f_beta": 0.61},
        "held_out_data": {"weighted_f_beta": 0.72, "data": {"runs": ["TS_2"]}},
    }
    (checkpoint / "config.json").write_text(json.dumps(config))
    registry = Registry(tmp_path / "registry")
    version = registry.add(checkpoint)

    body = make_client(registry_uri=str(tmp_path / "registry")).get("/models").json()
    models = {m["version"]: m for m in body["data"]}
    tuned = models[version]
    assert tuned["trained_on"]["kind"] == "copick"
    assert tuned["trained_on"]["source"] == "s3://lab/project/copick.json"
    assert tuned["trained_on"]["picks_users"] == ["curator"] and tuned["trained_on"]["picks_sessions"] == [
        "1"
    ]
    assert tuned["trained_on"]["held_out_runs"] == ["TS_2"] and tuned["trained_on"]["training_runs"] == [
        "TS_1"
    ]
    assert tuned["trained_on"]["init_version"] == model_registry.champion
    assert tuned["held_out"] == {"synthetic": 0.61, "data": 0.72}
    if (default_checkpoint_dir() / "config.json").is_file():  # the shipped model: generated data, by stage
        listed = models[read_config(default_checkpoint_dir()).version]
        assert listed["trained_on"]["kind"] == "synthetic" and listed["champion"]
        assert listed["trained_on"]["stages"][-1] == "gpu-refine" and listed["held_out"] == {}
