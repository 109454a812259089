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
