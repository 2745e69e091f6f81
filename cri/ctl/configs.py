"""crictl's pod and container config files: JSON or YAML with the proto's field names."""
from __future__ import annotations

import json

import yaml
from cri_api.v1 import api_pb2 as api
from google.protobuf import json_format


class ConfigFileError(Exception):
    pass


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected an object")
    return data


def _parse(path: str, msg):
    try:
        # Accepts the proto names crictl's files use (log_directory) and JSON names (logDirectory).
        return json_format.ParseDict(_load(path), msg)
    except json_format.ParseError as exc:
        raise ConfigFileError(f"{path}: {exc}") from None


def pod_config(path: str) -> api.PodSandboxConfig:
    return _parse(path, api.PodSandboxConfig())


def container_config(path: str) -> api.ContainerConfig:
    return _parse(path, api.ContainerConfig())
