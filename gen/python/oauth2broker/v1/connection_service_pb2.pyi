import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from oauth2broker.v1 import rules_pb2 as _rules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATUS_UNSPECIFIED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_ACTIVE: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_REFRESH_FAILED: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_NEEDS_REAUTHORIZATION: _ClassVar[ConnectionStatus]
    CONNECTION_STATUS_PENDING: _ClassVar[ConnectionStatus]

class ConnectionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_KIND_UNSPECIFIED: _ClassVar[ConnectionKind]
    CONNECTION_KIND_AUTHORIZATION_CODE: _ClassVar[ConnectionKind]
    CONNECTION_KIND_CLIENT_CREDENTIALS: _ClassVar[ConnectionKind]
    CONNECTION_KIND_IMPORTED: _ClassVar[ConnectionKind]
    CONNECTION_KIND_DEVICE_CODE: _ClassVar[ConnectionKind]
    CONNECTION_KIND_JWT_BEARER: _ClassVar[ConnectionKind]
    CONNECTION_KIND_API_KEY: _ClassVar[ConnectionKind]
    CONNECTION_KIND_BASIC: _ClassVar[ConnectionKind]

class ApiTokenLocation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_TOKEN_LOCATION_UNSPECIFIED: _ClassVar[ApiTokenLocation]
    API_TOKEN_LOCATION_HEADER: _ClassVar[ApiTokenLocation]
    API_TOKEN_LOCATION_QUERY: _ClassVar[ApiTokenLocation]

class RevocationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_OUTCOME_UNSPECIFIED: _ClassVar[RevocationOutcome]
    REVOCATION_OUTCOME_REVOKED: _ClassVar[RevocationOutcome]
    REVOCATION_OUTCOME_FAILED: _ClassVar[RevocationOutcome]
    REVOCATION_OUTCOME_NOT_SUPPORTED: _ClassVar[RevocationOutcome]
CONNECTION_STATUS_UNSPECIFIED: ConnectionStatus
CONNECTION_STATUS_ACTIVE: ConnectionStatus
CONNECTION_STATUS_REFRESH_FAILED: ConnectionStatus
CONNECTION_STATUS_NEEDS_REAUTHORIZATION: ConnectionStatus
CONNECTION_STATUS_PENDING: ConnectionStatus
CONNECTION_KIND_UNSPECIFIED: ConnectionKind
CONNECTION_KIND_AUTHORIZATION_CODE: ConnectionKind
CONNECTION_KIND_CLIENT_CREDENTIALS: ConnectionKind
CONNECTION_KIND_IMPORTED: ConnectionKind
CONNECTION_KIND_DEVICE_CODE: ConnectionKind
CONNECTION_KIND_JWT_BEARER: ConnectionKind
CONNECTION_KIND_API_KEY: ConnectionKind
CONNECTION_KIND_BASIC: ConnectionKind
API_TOKEN_LOCATION_UNSPECIFIED: ApiTokenLocation
API_TOKEN_LOCATION_HEADER: ApiTokenLocation
API_TOKEN_LOCATION_QUERY: ApiTokenLocation
REVOCATION_OUTCOME_UNSPECIFIED: RevocationOutcome
REVOCATION_OUTCOME_REVOKED: RevocationOutcome
REVOCATION_OUTCOME_FAILED: RevocationOutcome
REVOCATION_OUTCOME_NOT_SUPPORTED: RevocationOutcome

class Connection(_message.Message):
    __slots__ = ("id", "organisation_id", "connector_id", "credential_id", "status", "status_reason", "scopes", "token_type", "access_token_expire_time", "has_refresh_token", "create_time", "update_time", "metadata", "external_account", "api_base_url", "api", "kind")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    HAS_REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    id: str
    organisation_id: str
    connector_id: str
    credential_id: str
    status: ConnectionStatus
    status_reason: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    token_type: str
    access_token_expire_time: _timestamp_pb2.Timestamp
    has_refresh_token: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    external_account: ExternalAccount
    api_base_url: str
    api: ProviderApi
    kind: ConnectionKind
    def __init__(self, id: _Optional[str] = ..., organisation_id: _Optional[str] = ..., connector_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., status: _Optional[_Union[ConnectionStatus, str]] = ..., status_reason: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., token_type: _Optional[str] = ..., access_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_refresh_token: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., external_account: _Optional[_Union[ExternalAccount, _Mapping]] = ..., api_base_url: _Optional[str] = ..., api: _Optional[_Union[ProviderApi, _Mapping]] = ..., kind: _Optional[_Union[ConnectionKind, str]] = ...) -> None: ...

class ProviderApi(_message.Message):
    __slots__ = ("base_urls", "token_placement", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BASE_URLS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    base_urls: _containers.RepeatedCompositeFieldContainer[ApiBaseUrl]
    token_placement: ApiTokenPlacement
    headers: _containers.ScalarMap[str, str]
    def __init__(self, base_urls: _Optional[_Iterable[_Union[ApiBaseUrl, _Mapping]]] = ..., token_placement: _Optional[_Union[ApiTokenPlacement, _Mapping]] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ApiBaseUrl(_message.Message):
    __slots__ = ("name", "url", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    description: str
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ApiTokenPlacement(_message.Message):
    __slots__ = ("location", "name", "scheme")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    location: ApiTokenLocation
    name: str
    scheme: str
    def __init__(self, location: _Optional[_Union[ApiTokenLocation, str]] = ..., name: _Optional[str] = ..., scheme: _Optional[str] = ...) -> None: ...

class ExternalAccount(_message.Message):
    __slots__ = ("id", "email", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    name: str
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetConnectionRequest(_message.Message):
    __slots__ = ("organisation_id", "id")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class ListConnectionsRequest(_message.Message):
    __slots__ = ("organisation_id", "connector_id", "credential_id", "status", "page_size", "page_token")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connector_id: str
    credential_id: str
    status: ConnectionStatus
    page_size: int
    page_token: str
    def __init__(self, organisation_id: _Optional[str] = ..., connector_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., status: _Optional[_Union[ConnectionStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConnectionsResponse(_message.Message):
    __slots__ = ("connections", "next_page_token")
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    connections: _containers.RepeatedCompositeFieldContainer[Connection]
    next_page_token: str
    def __init__(self, connections: _Optional[_Iterable[_Union[Connection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAccessTokenRequest(_message.Message):
    __slots__ = ("organisation_id", "connection_id", "force_refresh")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_REFRESH_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connection_id: str
    force_refresh: bool
    def __init__(self, organisation_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., force_refresh: _Optional[bool] = ...) -> None: ...

class GetAccessTokenResponse(_message.Message):
    __slots__ = ("access_token", "token_type", "expire_time", "metadata", "api_base_url", "api")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    API_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    API_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    token_type: str
    expire_time: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    api_base_url: str
    api: ProviderApi
    def __init__(self, access_token: _Optional[str] = ..., token_type: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., api_base_url: _Optional[str] = ..., api: _Optional[_Union[ProviderApi, _Mapping]] = ...) -> None: ...

class ConfirmConnectionRequest(_message.Message):
    __slots__ = ("organisation_id", "connection_id", "end_user_id", "confirmation")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    END_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connection_id: str
    end_user_id: str
    confirmation: str
    def __init__(self, organisation_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., end_user_id: _Optional[str] = ..., confirmation: _Optional[str] = ...) -> None: ...

class ConfirmConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...

class DeleteConnectionRequest(_message.Message):
    __slots__ = ("organisation_id", "id", "revoke", "keep_if_revocation_fails")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_FIELD_NUMBER: _ClassVar[int]
    KEEP_IF_REVOCATION_FAILS_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    revoke: bool
    keep_if_revocation_fails: bool
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ..., revoke: _Optional[bool] = ..., keep_if_revocation_fails: _Optional[bool] = ...) -> None: ...

class DeleteConnectionResponse(_message.Message):
    __slots__ = ("revocation", "revocation_error")
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    revocation: RevocationOutcome
    revocation_error: str
    def __init__(self, revocation: _Optional[_Union[RevocationOutcome, str]] = ..., revocation_error: _Optional[str] = ...) -> None: ...

class WatchConnectionEventsRequest(_message.Message):
    __slots__ = ("organisation_id",)
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    def __init__(self, organisation_id: _Optional[str] = ...) -> None: ...

class WatchConnectionEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: ConnectionEvent
    def __init__(self, event: _Optional[_Union[ConnectionEvent, _Mapping]] = ...) -> None: ...

class ConnectionEvent(_message.Message):
    __slots__ = ("id", "type", "create_time", "organisation_id", "connection_id", "connector_id", "credential_id", "status", "status_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    create_time: _timestamp_pb2.Timestamp
    organisation_id: str
    connection_id: str
    connector_id: str
    credential_id: str
    status: ConnectionStatus
    status_reason: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., organisation_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., connector_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., status: _Optional[_Union[ConnectionStatus, str]] = ..., status_reason: _Optional[str] = ...) -> None: ...

class CredentialReference(_message.Message):
    __slots__ = ("id", "organisation_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    organisation_id: str
    def __init__(self, id: _Optional[str] = ..., organisation_id: _Optional[str] = ...) -> None: ...

class InitialiseOAuth2ConnectionRequest(_message.Message):
    __slots__ = ("organisation_id", "connector_id", "credential", "authorize_url", "client_id", "scopes", "disable_offline_access", "prompt", "additional_params", "return_url", "end_user_id", "connection_config", "connection_id")
    class ConnectionConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZE_URL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    DISABLE_OFFLINE_ACCESS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    END_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connector_id: str
    credential: CredentialReference
    authorize_url: str
    client_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    disable_offline_access: bool
    prompt: str
    additional_params: str
    return_url: str
    end_user_id: str
    connection_config: _containers.ScalarMap[str, str]
    connection_id: str
    def __init__(self, organisation_id: _Optional[str] = ..., connector_id: _Optional[str] = ..., credential: _Optional[_Union[CredentialReference, _Mapping]] = ..., authorize_url: _Optional[str] = ..., client_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., disable_offline_access: _Optional[bool] = ..., prompt: _Optional[str] = ..., additional_params: _Optional[str] = ..., return_url: _Optional[str] = ..., end_user_id: _Optional[str] = ..., connection_config: _Optional[_Mapping[str, str]] = ..., connection_id: _Optional[str] = ...) -> None: ...

class InitialiseOAuth2ConnectionResponse(_message.Message):
    __slots__ = ("url", "expire_time")
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    url: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, url: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConnectionEventsRequest(_message.Message):
    __slots__ = ("organisation_id", "connection_id", "page_size", "page_token")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connection_id: str
    page_size: int
    page_token: str
    def __init__(self, organisation_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConnectionEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ConnectionEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[ConnectionEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountConnectionsRequest(_message.Message):
    __slots__ = ("organisation_id",)
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    def __init__(self, organisation_id: _Optional[str] = ...) -> None: ...

class ConnectionStatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: ConnectionStatus
    count: int
    def __init__(self, status: _Optional[_Union[ConnectionStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class CountConnectionsResponse(_message.Message):
    __slots__ = ("counts", "failing_connections_by_credential")
    class FailingConnectionsByCredentialEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    FAILING_CONNECTIONS_BY_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[ConnectionStatusCount]
    failing_connections_by_credential: _containers.ScalarMap[str, int]
    def __init__(self, counts: _Optional[_Iterable[_Union[ConnectionStatusCount, _Mapping]]] = ..., failing_connections_by_credential: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StartDeviceAuthorizationRequest(_message.Message):
    __slots__ = ("organisation_id", "connector_id", "credential", "scopes")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connector_id: str
    credential: CredentialReference
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, organisation_id: _Optional[str] = ..., connector_id: _Optional[str] = ..., credential: _Optional[_Union[CredentialReference, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class StartDeviceAuthorizationResponse(_message.Message):
    __slots__ = ("connection", "user_code", "verification_uri", "verification_uri_complete", "expire_time", "interval_seconds")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    USER_CODE_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_URI_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_URI_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expire_time: _timestamp_pb2.Timestamp
    interval_seconds: int
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ..., user_code: _Optional[str] = ..., verification_uri: _Optional[str] = ..., verification_uri_complete: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_seconds: _Optional[int] = ...) -> None: ...

class CreateConnectionRequest(_message.Message):
    __slots__ = ("organisation_id", "connector_id", "client_credentials", "imported", "api_key", "basic", "jwt_bearer")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    BASIC_FIELD_NUMBER: _ClassVar[int]
    JWT_BEARER_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    connector_id: str
    client_credentials: ClientCredentialsConnection
    imported: ImportedConnection
    api_key: StaticApiKey
    basic: StaticBasic
    jwt_bearer: JwtBearerGrant
    def __init__(self, organisation_id: _Optional[str] = ..., connector_id: _Optional[str] = ..., client_credentials: _Optional[_Union[ClientCredentialsConnection, _Mapping]] = ..., imported: _Optional[_Union[ImportedConnection, _Mapping]] = ..., api_key: _Optional[_Union[StaticApiKey, _Mapping]] = ..., basic: _Optional[_Union[StaticBasic, _Mapping]] = ..., jwt_bearer: _Optional[_Union[JwtBearerGrant, _Mapping]] = ...) -> None: ...

class JwtBearerGrant(_message.Message):
    __slots__ = ("credential", "subject", "scopes", "audience", "connection_config")
    class ConnectionConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    credential: CredentialReference
    subject: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    connection_config: _containers.ScalarMap[str, str]
    def __init__(self, credential: _Optional[_Union[CredentialReference, _Mapping]] = ..., subject: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ..., connection_config: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ClientCredentialsConnection(_message.Message):
    __slots__ = ("credential", "scopes", "resource", "audience", "connection_config")
    class ConnectionConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    credential: CredentialReference
    scopes: _containers.RepeatedScalarFieldContainer[str]
    resource: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    connection_config: _containers.ScalarMap[str, str]
    def __init__(self, credential: _Optional[_Union[CredentialReference, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ..., resource: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ..., connection_config: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ImportedConnection(_message.Message):
    __slots__ = ("credential", "import_id", "access_token", "refresh_token", "expire_time", "scopes", "token_type", "external_account", "metadata", "check_refresh", "connection_config")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ConnectionConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    IMPORT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHECK_REFRESH_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    credential: CredentialReference
    import_id: str
    access_token: str
    refresh_token: str
    expire_time: _timestamp_pb2.Timestamp
    scopes: _containers.RepeatedScalarFieldContainer[str]
    token_type: str
    external_account: ExternalAccount
    metadata: _containers.ScalarMap[str, str]
    check_refresh: bool
    connection_config: _containers.ScalarMap[str, str]
    def __init__(self, credential: _Optional[_Union[CredentialReference, _Mapping]] = ..., import_id: _Optional[str] = ..., access_token: _Optional[str] = ..., refresh_token: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scopes: _Optional[_Iterable[str]] = ..., token_type: _Optional[str] = ..., external_account: _Optional[_Union[ExternalAccount, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., check_refresh: _Optional[bool] = ..., connection_config: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StaticApiKey(_message.Message):
    __slots__ = ("provider", "api_key")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    provider: str
    api_key: str
    def __init__(self, provider: _Optional[str] = ..., api_key: _Optional[str] = ...) -> None: ...

class StaticBasic(_message.Message):
    __slots__ = ("provider", "username", "password")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    provider: str
    username: str
    password: str
    def __init__(self, provider: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class CreateConnectionResponse(_message.Message):
    __slots__ = ("connection", "created")
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    created: bool
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ReplaceStaticConnectionRequest(_message.Message):
    __slots__ = ("organisation_id", "id", "api_key", "username", "password")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    api_key: str
    username: str
    password: str
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ..., api_key: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class ReplaceStaticConnectionResponse(_message.Message):
    __slots__ = ("connection",)
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    connection: Connection
    def __init__(self, connection: _Optional[_Union[Connection, _Mapping]] = ...) -> None: ...
