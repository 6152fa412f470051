"""Interop: a Python team's client, generated from the proto (gen/python), against a running broker.

Run by test/interop/interop.test.ts, which starts the broker and sets the environment.
"""
import os
import re
from urllib.parse import parse_qs, urlsplit

import grpc
import protovalidate
import pytest
from google.rpc import error_details_pb2, status_pb2

from oauth2broker.v1 import (
    connection_service_pb2,
    connection_service_pb2_grpc,
    credential_pb2,
    credential_service_pb2,
    credential_service_pb2_grpc,
)

TOKEN = [("authorization", f"Bearer {os.environ['BROKER_ADMIN_TOKEN']}")]


@pytest.fixture(scope="module")
def channel():
    with grpc.insecure_channel(os.environ["BROKER_GRPC_ADDR"]) as ch:
        yield ch


def test_initialise_builds_the_url(channel):
    credentials = credential_service_pb2_grpc.CredentialServiceStub(channel)
    connections = connection_service_pb2_grpc.ConnectionServiceStub(channel)
    created = credentials.CreateCredential(
        credential_service_pb2.CreateCredentialRequest(
            credential=credential_pb2.Credential(
                organisation_id="py-team", name="Provider", client_id="py-client",
                client_secret="py-secret", token_url="https://idp.example/token",
            )
        ),
        metadata=TOKEN,
    ).credential
    assert created.client_secret_set and created.client_secret == ""

    response = connections.InitialiseOAuth2Connection(
        connection_service_pb2.InitialiseOAuth2ConnectionRequest(
            organisation_id="py-team", connector_id="sheets",
            credential=connection_service_pb2.CredentialReference(id=created.id, organisation_id="py-team"),
            authorize_url="https://idp.example/authorize", client_id="py-client",
            scopes=["sheets"], prompt="consent",
        ),
        metadata=TOKEN,
    )
    query = parse_qs(urlsplit(response.url).query, keep_blank_values=True)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["py-client"]
    assert query["scope"] == ["sheets offline_access"]
    assert query["prompt"] == ["consent"]
    assert query["redirect_uri"] == [os.environ["BROKER_PUBLIC_URL"] + "/oauth2/callback"]
    assert len(query["state"]) == 1 and re.fullmatch(r"[0-9a-z]+\.[A-Za-z0-9_-]{43}", query["state"][0])
    assert response.expire_time.seconds > 0


def test_errors_carry_codes_and_field_violations(channel):
    connections = connection_service_pb2_grpc.ConnectionServiceStub(channel)
    credentials = credential_service_pb2_grpc.CredentialServiceStub(channel)

    with pytest.raises(grpc.RpcError) as unauthenticated:
        credentials.ListCredentials(credential_service_pb2.ListCredentialsRequest(organisation_id="py-team"))
    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.RpcError) as invalid:
        connections.InitialiseOAuth2Connection(
            connection_service_pb2.InitialiseOAuth2ConnectionRequest(
                organisation_id="py-team", connector_id="sheets",
                credential=connection_service_pb2.CredentialReference(id="x", organisation_id="py-team"),
                authorize_url="https://idp.example/authorize", client_id="py-client",
                additional_params="state=evil",
            ),
            metadata=TOKEN,
        )
    error = invalid.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == '"additional_params" must not set "state"'
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["additional_params"]

    with pytest.raises(grpc.RpcError) as missing:
        connections.InitialiseOAuth2Connection(
            connection_service_pb2.InitialiseOAuth2ConnectionRequest(
                organisation_id="py-team", connector_id="sheets",
                credential=connection_service_pb2.CredentialReference(id="missing", organisation_id="py-team"),
                authorize_url="https://idp.example/authorize", client_id="py-client",
            ),
            metadata=TOKEN,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_client_side_rules_name_the_field_the_broker_names(channel):
    """The rules in the proto (buf.validate) travel with the generated client: the protovalidate
    package refuses the request before it is sent, naming the field the broker names."""
    request = connection_service_pb2.InitialiseOAuth2ConnectionRequest(
        organisation_id="py-team", connector_id="sheets",
        credential=connection_service_pb2.CredentialReference(id="x", organisation_id="not an identifier"),
        authorize_url="https://idp.example/authorize", client_id="py-client",
    )
    violations = protovalidate.collect_violations(request)
    assert len(violations) == 1
    client_field = ".".join(element.field_name for element in violations[0].proto.field.elements)

    with pytest.raises(grpc.RpcError) as invalid:
        connection_service_pb2_grpc.ConnectionServiceStub(channel).InitialiseOAuth2Connection(request, metadata=TOKEN)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_pb2.Status.FromString(dict(invalid.value.trailing_metadata())["grpc-status-details-bin"])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [client_field] == ["credential.organisation_id"]
