"""The policy pack as the Pulumi engine runs it: `python -m policy` serves the analyzer over gRPC and
prints its port; the engine sends each resource to `Analyze`. The rules themselves are tested in
tests/unit/test_policy_rules.py; this is the adapter between them and the engine."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.config import ROOT
from policy.rules import LOG_GROUP, RULES

URN = "urn:pulumi:dev::celery-cluster::aws:cloudwatch/logGroup:LogGroup::worker-logs"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    server = subprocess.Popen(
        [sys.executable, "-m", "policy"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())  # the engine reads the port from the first line, as here
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        server.terminate()
        server.wait(10)


def _analyze(stub: analyzer_pb2_grpc.AnalyzerStub, props: dict[str, object]) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    properties = struct_pb2.Struct()
    properties.update(props)
    request = analyzer_pb2.AnalyzeRequest(type=LOG_GROUP, properties=properties, urn=URN, name="worker-logs")
    return list(stub.Analyze(request, timeout=30).diagnostics)


def test_the_pack_serves_every_rule_as_a_mandatory_policy(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(struct_pb2.Struct(), timeout=30)  # google.protobuf.Empty's wire form
    assert info.name == "celery-cluster-baseline"
    assert sorted(p.name for p in info.policies) == sorted(rule.name for rule in RULES)
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


def test_a_violating_resource_is_reported_by_its_rule_and_a_compliant_one_is_not(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    (violation,) = _analyze(analyzer, {"name": "worker-logs"})
    assert violation.policyName == "log-group-retention"
    assert violation.enforcementLevel == analyzer_pb2.MANDATORY
    assert "retentionInDays" in violation.message
    assert _analyze(analyzer, {"name": "worker-logs", "retentionInDays": 30}) == []
