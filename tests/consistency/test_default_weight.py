from vaelab.objectives import ObjectiveConfig, build_objective


def test_consistency_kl_defaults_to_the_papers_lambda():
    obj = build_objective(ObjectiveConfig(terms=[{"type": "consistency_kl", "transform": "simple"}]), 10, 100)
    assert obj.weights[0](0) == 1e-3
