import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from oauth2broker.v1 import connection_service_pb2 as _connection_service_pb2
from oauth2broker.v1 import rules_pb2 as _rules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TokenEndpointAuthMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_ENDPOINT_AUTH_METHOD_UNSPECIFIED: _ClassVar[TokenEndpointAuthMethod]
    TOKEN_ENDPOINT_AUTH_METHOD_CLIENT_SECRET_BASIC: _ClassVar[TokenEndpointAuthMethod]
    TOKEN_ENDPOINT_AUTH_METHOD_CLIENT_SECRET_POST: _ClassVar[TokenEndpointAuthMethod]
    TOKEN_ENDPOINT_AUTH_METHOD_PRIVATE_KEY_JWT: _ClassVar[TokenEndpointAuthMethod]

class ClientSecretSlot(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLIENT_SECRET_SLOT_UNSPECIFIED: _ClassVar[ClientSecretSlot]
    CLIENT_SECRET_SLOT_CURRENT: _ClassVar[ClientSecretSlot]
    CLIENT_SECRET_SLOT_PREVIOUS: _ClassVar[ClientSecretSlot]

class CredentialKeySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDENTIAL_KEY_SOURCE_UNSPECIFIED: _ClassVar[CredentialKeySource]
    CREDENTIAL_KEY_SOURCE_GENERATED: _ClassVar[CredentialKeySource]
    CREDENTIAL_KEY_SOURCE_PEM: _ClassVar[CredentialKeySource]
    CREDENTIAL_KEY_SOURCE_JWK: _ClassVar[CredentialKeySource]
    CREDENTIAL_KEY_SOURCE_GOOGLE_SERVICE_ACCOUNT: _ClassVar[CredentialKeySource]
TOKEN_ENDPOINT_AUTH_METHOD_UNSPECIFIED: TokenEndpointAuthMethod
TOKEN_ENDPOINT_AUTH_METHOD_CLIENT_SECRET_BASIC: TokenEndpointAuthMethod
TOKEN_ENDPOINT_AUTH_METHOD_CLIENT_SECRET_POST: TokenEndpointAuthMethod
TOKEN_ENDPOINT_AUTH_METHOD_PRIVATE_KEY_JWT: TokenEndpointAuthMethod
CLIENT_SECRET_SLOT_UNSPECIFIED: ClientSecretSlot
CLIENT_SECRET_SLOT_CURRENT: ClientSecretSlot
CLIENT_SECRET_SLOT_PREVIOUS: ClientSecretSlot
CREDENTIAL_KEY_SOURCE_UNSPECIFIED: CredentialKeySource
CREDENTIAL_KEY_SOURCE_GENERATED: CredentialKeySource
CREDENTIAL_KEY_SOURCE_PEM: CredentialKeySource
CREDENTIAL_KEY_SOURCE_JWK: CredentialKeySource
CREDENTIAL_KEY_SOURCE_GOOGLE_SERVICE_ACCOUNT: CredentialKeySource

class CredentialKey(_message.Message):
    __slots__ = ("kid", "algorithm", "source", "public_jwk", "service_account_email", "token_uri", "create_time")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_JWK_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    kid: str
    algorithm: str
    source: CredentialKeySource
    public_jwk: str
    service_account_email: str
    token_uri: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, kid: _Optional[str] = ..., algorithm: _Optional[str] = ..., source: _Optional[_Union[CredentialKeySource, str]] = ..., public_jwk: _Optional[str] = ..., service_account_email: _Optional[str] = ..., token_uri: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Credential(_message.Message):
    __slots__ = ("id", "organisation_id", "name", "client_id", "client_secret", "client_secret_set", "token_url", "token_endpoint_auth_method", "disable_pkce", "issuer", "authorization_response_iss_parameter_supported", "revocation_url", "create_time", "update_time", "provider", "provider_config", "userinfo_url", "previous_client_secret_set", "client_secret_last_used", "client_secret_fallback_time", "keys", "jwks_uri", "api_base_url", "api_token_placement")
    class ProviderConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ENDPOINT_AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    DISABLE_PKCE_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_RESPONSE_ISS_PARAMETER_SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_URL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    USERINFO_URL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_CLIENT_SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_LAST_USED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FALLBACK_TIME_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    JWKS_URI_FIELD_NUMBER: _ClassVar[int]
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_TOKEN_PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organisation_id: str
    name: str
    client_id: str
    client_secret: str
    client_secret_set: bool
    token_url: str
    token_endpoint_auth_method: TokenEndpointAuthMethod
    disable_pkce: bool
    issuer: str
    authorization_response_iss_parameter_supported: bool
    revocation_url: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    provider: str
    provider_config: _containers.ScalarMap[str, str]
    userinfo_url: str
    previous_client_secret_set: bool
    client_secret_last_used: ClientSecretSlot
    client_secret_fallback_time: _timestamp_pb2.Timestamp
    keys: _containers.RepeatedCompositeFieldContainer[CredentialKey]
    jwks_uri: str
    api_base_url: str
    api_token_placement: _connection_service_pb2.ApiTokenPlacement
    def __init__(self, id: _Optional[str] = ..., organisation_id: _Optional[str] = ..., name: _Optional[str] = ..., client_id: _Optional[str] = ..., client_secret: _Optional[str] = ..., client_secret_set: _Optional[bool] = ..., token_url: _Optional[str] = ..., token_endpoint_auth_method: _Optional[_Union[TokenEndpointAuthMethod, str]] = ..., disable_pkce: _Optional[bool] = ..., issuer: _Optional[str] = ..., authorization_response_iss_parameter_supported: _Optional[bool] = ..., revocation_url: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider: _Optional[str] = ..., provider_config: _Optional[_Mapping[str, str]] = ..., userinfo_url: _Optional[str] = ..., previous_client_secret_set: _Optional[bool] = ..., client_secret_last_used: _Optional[_Union[ClientSecretSlot, str]] = ..., client_secret_fallback_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., keys: _Optional[_Iterable[_Union[CredentialKey, _Mapping]]] = ..., jwks_uri: _Optional[str] = ..., api_base_url: _Optional[str] = ..., api_token_placement: _Optional[_Union[_connection_service_pb2.ApiTokenPlacement, _Mapping]] = ...) -> None: ...
