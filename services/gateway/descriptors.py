"""The gateway's contracts as FileDescriptorProtos, for whoever needs them in
descriptor form: protobuf-py (the error details' JSON), gRPC reflection and the
JavaScript clients of the tests.

They come from the same google.protobuf descriptors grpcio uses, so nothing is
generated twice."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor


def file_protos(*files: FileDescriptor) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files and everything they import, each after its dependencies."""
    found: dict[str, FileDescriptor] = {}
    for file in files:
        _add_file(found, file)
    protos = []
    for file in found.values():
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        for message_proto in proto.message_type:
            _copy_json_names(file.message_types_by_name[message_proto.name], message_proto)
        protos.append(proto)
    return protos


def descriptor_set(*files: FileDescriptor) -> descriptor_pb2.FileDescriptorSet:
    """A FileDescriptorSet with the files and everything they import, in order."""
    return descriptor_pb2.FileDescriptorSet(file=file_protos(*files))


def _add_file(found: dict[str, FileDescriptor], file: FileDescriptor) -> None:
    for dependency in file.dependencies:
        _add_file(found, dependency)
    found.setdefault(file.name, file)


def _copy_json_names(message: Descriptor, proto: descriptor_pb2.DescriptorProto) -> None:
    """CopyToProto leaves json_name out, and other runtimes (protobuf-py, protobuf-es)
    read it as given instead of deriving it."""
    for field_proto in proto.field:
        field_proto.json_name = message.fields_by_name[field_proto.name].json_name
    for nested_proto in proto.nested_type:
        _copy_json_names(message.nested_types_by_name[nested_proto.name], nested_proto)
