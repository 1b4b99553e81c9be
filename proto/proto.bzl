"""Generates C++ protobuf and gRPC code with Debian's protoc and plugin.

Bazel cannot fetch rules_proto or gRPC's Bazel rules offline, so a genrule
runs the system `protoc` with `grpc_cpp_plugin` and a cc_library wraps the
output.
"""

def cc_grpc_proto(name, src, deps = [], visibility = None):
    """A cc_library `name` with the messages and services of `src`.

    Args:
      name: the library's name.
      src: one .proto file in this package.
      deps: extra cc deps.
      visibility: the library's visibility.
    """
    base = src[:-len(".proto")]
    outs = [
        base + ".pb.h",
        base + ".pb.cc",
        base + ".grpc.pb.h",
        base + ".grpc.pb.cc",
    ]
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=" + (native.package_name() or "."),
            "--cpp_out=$(GENDIR)/" + native.package_name(),
            "--grpc_out=$(GENDIR)/" + native.package_name(),
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
            "$(location %s)" % src,
        ]),
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc", base + ".grpc.pb.cc"],
        hdrs = [base + ".pb.h", base + ".grpc.pb.h"],
        # The generated code includes itself as "cowdb/v1/...".
        includes = ["."],
        deps = deps + ["//third_party:grpc"],
        visibility = visibility,
    )
