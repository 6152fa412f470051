import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from oauth2broker.v1 import rules_pb2 as _rules_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrganisationSettings(_message.Message):
    __slots__ = ("organisation_id", "allowed_return_urls", "update_time", "webhook_url", "webhook_secret_count", "per_organisation_callback", "webhook_deliveries_waiting")
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_RETURN_URLS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_COUNT_FIELD_NUMBER: _ClassVar[int]
    PER_ORGANISATION_CALLBACK_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_DELIVERIES_WAITING_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    allowed_return_urls: _containers.RepeatedScalarFieldContainer[str]
    update_time: _timestamp_pb2.Timestamp
    webhook_url: str
    webhook_secret_count: int
    per_organisation_callback: bool
    webhook_deliveries_waiting: bool
    def __init__(self, organisation_id: _Optional[str] = ..., allowed_return_urls: _Optional[_Iterable[str]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_url: _Optional[str] = ..., webhook_secret_count: _Optional[int] = ..., per_organisation_callback: _Optional[bool] = ..., webhook_deliveries_waiting: _Optional[bool] = ...) -> None: ...

class GetOrganisationSettingsRequest(_message.Message):
    __slots__ = ("organisation_id",)
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    def __init__(self, organisation_id: _Optional[str] = ...) -> None: ...

class GetOrganisationSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: OrganisationSettings
    def __init__(self, settings: _Optional[_Union[OrganisationSettings, _Mapping]] = ...) -> None: ...

class UpdateOrganisationSettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    settings: OrganisationSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, settings: _Optional[_Union[OrganisationSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateOrganisationSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: OrganisationSettings
    def __init__(self, settings: _Optional[_Union[OrganisationSettings, _Mapping]] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("organisation_id",)
    ORGANISATION_ID_FIELD_NUMBER: _ClassVar[int]
    organisation_id: str
    def __init__(self, organisation_id: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ("secret", "webhook_secret_count")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_COUNT_FIELD_NUMBER: _ClassVar[int]
    secret: str
    webhook_secret_count: int
    def __init__(self, secret: _Optional[str] = ..., webhook_secret_count: _Optional[int] = ...) -> None: ...

class ListOrganisationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListOrganisationsResponse(_message.Message):
    __slots__ = ("organisation_ids", "caller_is_admin")
    ORGANISATION_IDS_FIELD_NUMBER: _ClassVar[int]
    CALLER_IS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    organisation_ids: _containers.RepeatedScalarFieldContainer[str]
    caller_is_admin: bool
    def __init__(self, organisation_ids: _Optional[_Iterable[str]] = ..., caller_is_admin: _Optional[bool] = ...) -> None: ...
