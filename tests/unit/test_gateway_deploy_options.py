"""The deploy request's Serve options: fractional GPUs and autoscaling bounds, validated at the door."""

import pytest
from pydantic import ValidationError

from modelhub_gateway.schemas import DeploymentCreate, DeploymentPublic


def test_a_gpu_fraction_is_accepted_and_more_than_one_is_not():
    assert DeploymentCreate(name="d", num_gpus=0.5).num_gpus == 0.5
    for bad in (-0.1, 1.5, 2):
        with pytest.raises(ValidationError):
            DeploymentCreate(name="d", num_gpus=bad)


def test_autoscaling_bounds():
    ok = DeploymentCreate(name="d", min_replicas=0, max_replicas=4)
    assert (ok.min_replicas, ok.max_replicas) == (0, 4)
    assert DeploymentCreate(name="d", max_replicas=2).min_replicas is None  # the route makes it 1
    with pytest.raises(ValidationError, match="must not exceed"):
        DeploymentCreate(name="d", min_replicas=3, max_replicas=2)
    with pytest.raises(ValidationError, match="needs max_replicas"):
        DeploymentCreate(name="d", min_replicas=2)
    for bad in ({"max_replicas": 0}, {"max_replicas": 65}, {"min_replicas": -1, "max_replicas": 2}):
        with pytest.raises(ValidationError):
            DeploymentCreate.model_validate({"name": "d", **bad})


def test_scale_down_delay_goes_with_autoscaling_and_has_a_floor():
    zero = DeploymentCreate(name="d", min_replicas=0, max_replicas=1, scale_down_delay_s=5)
    assert (zero.min_replicas, zero.max_replicas, zero.scale_down_delay_s) == (0, 1, 5)
    assert DeploymentCreate(name="d", max_replicas=1).scale_down_delay_s is None  # the route makes it 600
    with pytest.raises(ValidationError, match="scale_down_delay_s needs max_replicas"):
        DeploymentCreate(name="d", scale_down_delay_s=60)
    for bad in (0, 4.9, 86_401, -1):
        with pytest.raises(ValidationError):
            DeploymentCreate(name="d", max_replicas=1, scale_down_delay_s=bad)
    assert DeploymentCreate.model_json_schema()["dependentRequired"]["scale_down_delay_s"] == ["max_replicas"]


def test_the_public_view_never_carries_the_serve_secret():
    doc = {
        "_id": "d",
        "name": "d",
        "model": "m",
        "version": 1,
        "model_type": "inference",
        "mini_batch": 1,
        "num_replicas": 1,
        "num_gpus": 0.5,
        "custom_env": False,
        "status": "running",
        "error": None,
        "ready_replicas": 1,
        "created_by": "u",
        "created_at": "2026-11-27T00:00:00Z",
        "updated_at": "2026-11-27T00:00:00Z",
        "serve_secret": "s3cret",
        "max_replicas": 3,
        "min_replicas": 1,
    }
    shown = DeploymentPublic.model_validate(doc).model_dump_json()
    assert "s3cret" not in shown and '"max_replicas":3' in shown and '"num_gpus":0.5' in shown
