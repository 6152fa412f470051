from buf.validate import validate_pb2 as _validate_pb2
from oauth2broker.v1 import rules_pb2 as _rules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProviderParameterLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_PARAMETER_LEVEL_UNSPECIFIED: _ClassVar[ProviderParameterLevel]
    PROVIDER_PARAMETER_LEVEL_CREDENTIAL: _ClassVar[ProviderParameterLevel]
    PROVIDER_PARAMETER_LEVEL_CONNECTION: _ClassVar[ProviderParameterLevel]
PROVIDER_PARAMETER_LEVEL_UNSPECIFIED: ProviderParameterLevel
PROVIDER_PARAMETER_LEVEL_CREDENTIAL: ProviderParameterLevel
PROVIDER_PARAMETER_LEVEL_CONNECTION: ProviderParameterLevel

class Provider(_message.Message):
    __slots__ = ("id", "display_name", "documentation_url", "scope_separator", "parameters")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTATION_URL_FIELD_NUMBER: _ClassVar[int]
    SCOPE_SEPARATOR_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    documentation_url: str
    scope_separator: str
    parameters: _containers.RepeatedCompositeFieldContainer[ProviderParameter]
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., documentation_url: _Optional[str] = ..., scope_separator: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ProviderParameter, _Mapping]]] = ...) -> None: ...

class ProviderParameter(_message.Message):
    __slots__ = ("name", "pattern", "description", "level", "default_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    pattern: str
    description: str
    level: ProviderParameterLevel
    default_value: str
    def __init__(self, name: _Optional[str] = ..., pattern: _Optional[str] = ..., description: _Optional[str] = ..., level: _Optional[_Union[ProviderParameterLevel, str]] = ..., default_value: _Optional[str] = ...) -> None: ...

class ListProvidersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("providers", "next_page_token")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    next_page_token: str
    def __init__(self, providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetProviderRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetProviderResponse(_message.Message):
    __slots__ = ("provider",)
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    provider: Provider
    def __init__(self, provider: _Optional[_Union[Provider, _Mapping]] = ...) -> None: ...
