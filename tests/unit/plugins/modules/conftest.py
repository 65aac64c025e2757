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
from typing import Any, Callable, Iterator

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args
from moto import mock_aws

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


def refuse_like_ec2(backend: Any, instance_id: str, name: str) -> None:
    """What EC2 refuses in CreateImage and moto 5.2 lets through: an instance that is going or
    gone, and a name the account already uses in the region (ami_create relies on both answers)."""
    from moto.ec2.exceptions import EC2ClientError

    instance = backend.get_instance(instance_id)
    if instance.state in ("shutting-down", "terminated"):
        raise EC2ClientError("IncorrectInstanceState", f"The instance '{instance_id}' is not in a state from which it can be imaged.")
    for ami in backend.amis.values():
        if ami.name == name and ami.owner_id == backend.account_id and ami.state != "deregistered":
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")


def _create_image_with_snapshot_tags(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto 5.2 raises NotImplementedError for snapshot TagSpecifications in CreateImage; EC2
    tags the new snapshots with them. This supplies that so modules can be run end to end; the
    exact request is checked separately with botocore's Stubber."""

    def create_image(backend: Any, instance_id: str, name: str, description: str, tag_specifications: list[dict[str, Any]]) -> Any:
        image_specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        snapshot_tags = [t for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])]
        refuse_like_ec2(backend, instance_id, name)
        ami = original(backend, instance_id, name, description, tag_specifications=image_specs)
        if snapshot_tags:
            # moto gives an image one snapshot, its root volume's.
            backend.create_tags([ami.ebs_snapshot.id], {t["Key"]: t["Value"] for t in snapshot_tags})
        return ami

    return create_image


def _copy_image_refusing_taken_names(original: Callable[..., Any]) -> Callable[..., Any]:
    """EC2 refuses a CopyImage whose name the account already uses in the target region (ami_copy
    relies on that answer); moto 5.2 makes a second image."""

    def copy_image(backend: Any, source_image_id: str, source_region: str, name: Any = None, description: Any = None) -> Any:
        from moto.ec2.exceptions import EC2ClientError

        for ami in backend.amis.values():
            if name and ami.name == name and ami.owner_id == backend.account_id and ami.state != "deregistered":
                raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")
        return original(backend, source_image_id, source_region, name, description)

    return copy_image


@pytest.fixture(scope="session")
def _moto_amis_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    from moto.ec2.models import amis

    path = tmp_path_factory.mktemp("moto") / "amis.json"
    path.write_text(json.dumps(amis.AMIS), encoding="utf-8")
    return str(path)


@pytest.fixture
def mocked_aws(aws_env: None, monkeypatch: pytest.MonkeyPatch, _moto_amis_file: str) -> Iterator[None]:
    from moto.ec2.models.amis import AmiBackend

    # Only moto's few dozen base images, not its >1000 per-region "latest" ones: a region's
    # backend then starts in milliseconds instead of seconds.
    monkeypatch.setenv("MOTO_AMIS_PATH", _moto_amis_file)
    monkeypatch.setattr(AmiBackend, "create_image", _create_image_with_snapshot_tags(AmiBackend.create_image))
    monkeypatch.setattr(AmiBackend, "copy_image", _copy_image_refusing_taken_names(AmiBackend.copy_image))
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
