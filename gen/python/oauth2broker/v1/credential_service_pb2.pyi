from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from oauth2broker.v1 import credential_pb2 as _credential_pb2
from oauth2broker.v1 import rules_pb2 as _rules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCredentialRequest(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class CreateCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class GetCredentialRequest(_message.Message):
    __slots__ = ("organisation_id", "id")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class ListCredentialsRequest(_message.Message):
    __slots__ = ("organisation_id", "page_size", "page_token")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    page_size: int
    page_token: str
    def __init__(self, organisation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCredentialsResponse(_message.Message):
    __slots__ = ("credentials", "next_page_token")
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[_credential_pb2.Credential]
    next_page_token: str
    def __init__(self, credentials: _Optional[_Iterable[_Union[_credential_pb2.Credential, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCredentialRequest(_message.Message):
    __slots__ = ("credential", "update_mask", "move_connections")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    MOVE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    update_mask: _field_mask_pb2.FieldMask
    move_connections: bool
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., move_connections: _Optional[bool] = ...) -> None: ...

class UpdateCredentialResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class DeleteCredentialRequest(_message.Message):
    __slots__ = ("organisation_id", "id")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DeleteCredentialResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateClientSecretRequest(_message.Message):
    __slots__ = ("organisation_id", "id", "client_secret")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    client_secret: str
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ..., client_secret: _Optional[str] = ...) -> None: ...

class RotateClientSecretResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class RemovePreviousClientSecretRequest(_message.Message):
    __slots__ = ("organisation_id", "id")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    id: str
    def __init__(self, organisation_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class RemovePreviousClientSecretResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class GenerateCredentialKey(_message.Message):
    __slots__ = ("algorithm",)
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    def __init__(self, algorithm: _Optional[str] = ...) -> None: ...

class AddCredentialKeyRequest(_message.Message):
    __slots__ = ("organisation_id", "credential_id", "generate", "pem", "jwk", "google_service_account_json")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    PEM_FIELD_NUMBER: _ClassVar[int]
    JWK_FIELD_NUMBER: _ClassVar[int]
    GOOGLE_SERVICE_ACCOUNT_JSON_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    credential_id: str
    generate: GenerateCredentialKey
    pem: str
    jwk: str
    google_service_account_json: str
    def __init__(self, organisation_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., generate: _Optional[_Union[GenerateCredentialKey, _Mapping]] = ..., pem: _Optional[str] = ..., jwk: _Optional[str] = ..., google_service_account_json: _Optional[str] = ...) -> None: ...

class AddCredentialKeyResponse(_message.Message):
    __slots__ = ("key", "credential")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    key: _credential_pb2.CredentialKey
    credential: _credential_pb2.Credential
    def __init__(self, key: _Optional[_Union[_credential_pb2.CredentialKey, _Mapping]] = ..., credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...

class RemoveCredentialKeyRequest(_message.Message):
    __slots__ = ("organisation_id", "credential_id", "kid")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    credential_id: str
    kid: str
    def __init__(self, organisation_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., kid: _Optional[str] = ...) -> None: ...

class RemoveCredentialKeyResponse(_message.Message):
    __slots__ = ("credential",)
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    credential: _credential_pb2.Credential
    def __init__(self, credential: _Optional[_Union[_credential_pb2.Credential, _Mapping]] = ...) -> None: ...
