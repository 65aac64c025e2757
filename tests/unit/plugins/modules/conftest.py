# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers for module tests: run a module's main() in-process, and a mocked EC2 (moto).

Stable interface (other module tests rely on it):
- fixture `aws_env`: fake credentials, region us-east-1, no profile/config files read.
- fixture `mocked_aws`: `aws_env` plus moto's `mock_aws()` active for the test.
- fixture `ec2`: a boto3 EC2 client in us-east-1 inside `mocked_aws`.
- fixture `instance_id`: a running moto instance to image.
- moto starts with only its base public images (MOTO_AMIS_PATH), which include Amazon Linux 2
  (`source_image_id`), and supports snapshot TagSpecifications in CreateImage (see below).
  Like EC2, CreateImage and CopyImage refuse a name the account already uses in the region
  (InvalidAMIName.Duplicate), and CreateImage an instance that is going or gone.
- fixture `run_module`: the function `run_module(module_main, args, check_mode=False, diff=False)
  -> dict`, the module's result, always with `failed`, `changed` and (on failure) `msg`.
- fixture `make_instance`: the function `make_instance(client, state="running") -> str`
  (state: running, stopped or terminated).
Test files are not a package, so they take these helpers as fixtures rather than importing them.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args
from moto import mock_aws
from moto_ec2_rules import patch_moto_like_ec2

REGION = "us-east-1"


@pytest.fixture(autouse=True, scope="session")
def _shared_botocore_loader() -> Iterator[None]:
    """Every module run builds a new boto3 session, which would parse botocore's large EC2 model
    again; one loader (and its cache) shared by all sessions keeps the tests fast."""
    import botocore.session

    loaders: dict[Any, Any] = {}
    original = botocore.session.create_loader

    def create_loader(search_path_string: Any = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = create_loader
    yield
    botocore.session.create_loader = original


class ModuleOutputError(AssertionError):
    pass


def run_module(module_main: Callable[[], Any], args: dict[str, Any], check_mode: bool = False, diff: bool = False) -> dict[str, Any]:
    """Runs `module_main` with `args` the way Ansible would, and returns the JSON result it printed."""
    full = dict(args)
    full["_ansible_check_mode"] = check_mode
    full["_ansible_diff"] = diff
    out = io.StringIO()
    with patch_module_args(full), contextlib.redirect_stdout(out):
        try:
            module_main()
        except SystemExit:
            pass
        else:
            raise ModuleOutputError("the module returned without calling exit_json or fail_json")
    text = out.getvalue().strip()
    if not text:
        raise ModuleOutputError("the module printed nothing")
    result: dict[str, Any] = json.loads(text.splitlines()[-1])
    result.setdefault("failed", False)
    result.setdefault("changed", False)
    return result


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_URL", "EC2_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # Never read the real user's files.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture(scope="session")
def _moto_amis_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    from moto.ec2.models import amis

    path = tmp_path_factory.mktemp("moto") / "amis.json"
    path.write_text(json.dumps(amis.AMIS), encoding="utf-8")
    return str(path)


@pytest.fixture
def mocked_aws(aws_env: None, monkeypatch: pytest.MonkeyPatch, _moto_amis_file: str) -> Iterator[None]:
    # Only moto's few dozen base images, not its >1000 per-region "latest" ones: a region's
    # backend then starts in milliseconds instead of seconds.
    monkeypatch.setenv("MOTO_AMIS_PATH", _moto_amis_file)
    patch_moto_like_ec2(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def ec2(mocked_aws: None) -> Any:
    return boto3.client("ec2", region_name=REGION)


def source_image_id(client: Any) -> str:
    """One of moto's built-in Amazon Linux 2 images."""
    images = client.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])["Images"]
    if not images:
        raise AssertionError("moto has no built-in amzn2 image in this region")
    return str(images[0]["ImageId"])


def make_instance(client: Any, state: str = "running") -> str:
    """An instance in `state` (running, stopped or terminated)."""
    instance = client.run_instances(ImageId=source_image_id(client), MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance_id = str(instance["Instances"][0]["InstanceId"])
    if state == "stopped":
        client.stop_instances(InstanceIds=[instance_id])
    elif state == "terminated":
        client.terminate_instances(InstanceIds=[instance_id])
    elif state != "running":
        raise ValueError(f"unsupported state {state!r}")
    return instance_id


@pytest.fixture
def instance_id(ec2: Any) -> str:
    return make_instance(ec2)


@pytest.fixture(name="run_module")
def run_module_fixture() -> Callable[..., dict[str, Any]]:
    return run_module


@pytest.fixture(name="make_instance")
def make_instance_fixture() -> Callable[..., str]:
    return make_instance
